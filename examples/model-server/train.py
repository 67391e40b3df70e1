"""Trains the example digits checkpoints (softmax regression on scikit-learn's bundled digits).

    python examples/model-server/train.py [--out examples/model-server/checkpoints]

Writes four checkpoints that tell a rollout story, plus the held-out evaluation split that both the
accuracy below and the e2e traffic driver use:

    v1-good       trained on an early 200-row snapshot of the training data
    v2-better     trained on all training rows
    v3-regressed  all rows, but a label-mapping bug rotated the labels of digits 3 -> 5 -> 8 -> 3
    v4-slow       v2's weights, with metadata asking the server for +40 ms per request

Everything is deterministic (fixed split and seeds, fixed zip timestamps), so re-running it
reproduces the committed files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from model_io import Checkpoint, EvalSplit, save_checkpoint, save_eval_split
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "checkpoints"
EVAL_SPLIT_FILE = "eval-split.npz"
SEED = 0
EVAL_FRACTION = 0.25
C = 0.1  # inverse L2 strength; the best of a small sweep for the full training set
EARLY_SNAPSHOT_ROWS = 200
LABEL_BUG = {3: 5, 5: 8, 8: 3}
SLOW_EXTRA_LATENCY_MS = 40.0


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    split: EvalSplit


def load_data() -> Data:
    digits = load_digits()
    x, y = digits.data.astype(np.float64), digits.target.astype(np.int64)
    train_idx, eval_idx = train_test_split(np.arange(len(y)), test_size=EVAL_FRACTION, random_state=SEED, stratify=y)
    split = EvalSplit(features=x[eval_idx], labels=y[eval_idx], indices=np.asarray(eval_idx))
    return Data(x_train=x[train_idx], y_train=y[train_idx], split=split)


def fit(x: np.ndarray, y: np.ndarray, metadata: dict[str, object]) -> Checkpoint:
    """Standardises features, then fits multinomial logistic regression (lbfgs, deterministic)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # constant border pixels: leave them unscaled instead of dividing by 0
    model = LogisticRegression(C=C, max_iter=1000, random_state=SEED)
    model.fit((x - mean) / scale, y)
    return Checkpoint(
        weights=model.coef_.astype(np.float64),
        bias=model.intercept_.astype(np.float64),
        classes=model.classes_.astype(np.int64),
        mean=mean,
        scale=scale,
        metadata={"model": "digits", "train_rows": len(y), "C": C, **metadata},
    )


def train_good(data: Data) -> Checkpoint:
    n = EARLY_SNAPSHOT_ROWS
    return fit(data.x_train[:n], data.y_train[:n], {"description": f"early {n}-row snapshot of the training data"})


def train_better(data: Data) -> Checkpoint:
    return fit(data.x_train, data.y_train, {"description": "all training rows"})


def train_regressed(data: Data) -> Checkpoint:
    buggy = np.array([LABEL_BUG.get(int(v), int(v)) for v in data.y_train])
    return fit(data.x_train, buggy, {"description": "label-mapping bug rotated digits 3 -> 5 -> 8 -> 3"})


def slow_variant(ckpt: Checkpoint) -> Checkpoint:
    meta = {**ckpt.metadata, "extra_latency_ms": SLOW_EXTRA_LATENCY_MS, "description": "v2 served with +40 ms"}
    return replace(ckpt, metadata=meta)


def train_all(data: Data) -> dict[str, Checkpoint]:
    better = train_better(data)
    trainers: dict[str, Callable[[], Checkpoint]] = {
        "v1-good": lambda: train_good(data),
        "v2-better": lambda: better,
        "v3-regressed": lambda: train_regressed(data),
        "v4-slow": lambda: slow_variant(better),
    }
    checkpoints: dict[str, Checkpoint] = {}
    for name, train in trainers.items():
        ckpt = train()
        accuracy = ckpt.accuracy(data.split.features, data.split.labels)
        checkpoints[name] = replace(ckpt, metadata={**ckpt.metadata, "heldout_accuracy": round(accuracy, 4)})
    return checkpoints


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    data = load_data()
    save_eval_split(args.out / EVAL_SPLIT_FILE, data.split)
    print(f"eval split: {len(data.split.labels)} held-out samples -> {args.out / EVAL_SPLIT_FILE}")
    for name, ckpt in train_all(data).items():
        path = args.out / f"{name}.npz"
        save_checkpoint(path, ckpt)
        extra = ckpt.metadata.get("extra_latency_ms", 0)
        print(f"{name:13s} held-out accuracy {ckpt.metadata['heldout_accuracy']:.4f}  +{extra:g} ms  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
