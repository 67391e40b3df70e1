"""train.py produces the four example checkpoints with the promised quality ordering."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import train
from model_io import Checkpoint, load_checkpoint, load_eval_split, resolve_checkpoint, store_path

from e2e.harness.model_servers import CHECKPOINT_DIR, EVAL_SPLIT, Samples

NAMES = ("v1-good", "v2-better", "v3-regressed", "v4-slow")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checkpoints")
    assert train.main(["--out", str(out)]) == 0
    return out


def _accuracy(ckpt: Checkpoint) -> float:
    split = load_eval_split(EVAL_SPLIT)
    return ckpt.accuracy(split.features, split.labels)


def test_accuracies_are_ordered(trained: Path) -> None:
    acc = {name: _accuracy(load_checkpoint(trained / f"{name}.npz")) for name in NAMES}
    assert acc["v2-better"] > acc["v1-good"] > acc["v3-regressed"]
    assert acc["v2-better"] >= 0.95
    assert 0.90 <= acc["v1-good"] <= 0.94
    assert acc["v3-regressed"] <= 0.75
    assert acc["v4-slow"] == acc["v2-better"]


def test_recorded_accuracy_matches_recomputed(trained: Path) -> None:
    for name in NAMES:
        ckpt = load_checkpoint(trained / f"{name}.npz")
        assert ckpt.metadata["heldout_accuracy"] == pytest.approx(_accuracy(ckpt), abs=1e-4)


def test_slow_checkpoint_is_v2_with_extra_latency(trained: Path) -> None:
    better, slow = (load_checkpoint(trained / f"{n}.npz") for n in ("v2-better", "v4-slow"))
    np.testing.assert_array_equal(slow.weights, better.weights)
    assert slow.extra_latency_seconds == pytest.approx(0.040)
    assert better.extra_latency_seconds == 0.0


def test_committed_checkpoints_are_reproducible(trained: Path) -> None:
    """Catches committed checkpoints that no longer match train.py (tolerant to BLAS rounding)."""
    split = load_eval_split(EVAL_SPLIT)
    for name in NAMES:
        fresh, committed = load_checkpoint(trained / f"{name}.npz"), load_checkpoint(CHECKPOINT_DIR / f"{name}.npz")
        np.testing.assert_allclose(committed.weights, fresh.weights, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(committed.predict(split.features), fresh.predict(split.features))


def test_eval_split_is_fixed_and_held_out(trained: Path) -> None:
    fresh, committed = load_eval_split(trained / "eval-split.npz"), load_eval_split(EVAL_SPLIT)
    np.testing.assert_array_equal(fresh.indices, committed.indices)
    data = train.load_data()
    train_rows = {tuple(row) for row in data.x_train.astype(int)}
    assert not any(tuple(row) in train_rows for row in committed.features.astype(int))
    assert len(set(committed.indices.tolist())) == len(committed.labels) == 450
    samples = Samples.load()
    assert samples.labels == committed.labels.tolist()


def test_loading_never_unpickles(tmp_path: Path) -> None:
    """An object array in a checkpoint is refused instead of being unpickled."""
    evil = tmp_path / "evil.npz"
    np.savez(evil, metadata=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_checkpoint(evil)
    assert zipfile.is_zipfile(evil)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///models/v2-better.npz", Path("/models/v2-better.npz")),
        ("/models/v2-better.npz", Path("/models/v2-better.npz")),
        ("checkpoints/v1-good.npz", Path("checkpoints/v1-good.npz")),
        ("s3://models/digits/v3-regressed", CHECKPOINT_DIR / "v3-regressed.npz"),
        ("gs://bucket/v4-slow.npz", CHECKPOINT_DIR / "v4-slow.npz"),
    ],
)
def test_resolve_checkpoint(uri: str, expected: Path) -> None:
    assert resolve_checkpoint(uri, CHECKPOINT_DIR) == expected


def test_resolve_from_a_model_store_first(tmp_path: Path) -> None:
    store = tmp_path / "store"
    stored = store / "s3" / "models" / "digits" / "v2.npz"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"")
    assert store_path("s3://models/digits/v2", store) == store / "s3" / "models" / "digits" / "v2"
    assert resolve_checkpoint("s3://models/digits/v2", CHECKPOINT_DIR, store) == stored
    # Not in the store: the image's checkpoint directory, by last segment.
    assert resolve_checkpoint("s3://models/digits/v4-slow", CHECKPOINT_DIR, store) == CHECKPOINT_DIR / "v4-slow.npz"
    with pytest.raises(FileNotFoundError, match="store"):
        resolve_checkpoint("s3://models/digits/v9", None, store)
    with pytest.raises(ValueError):
        store_path("s3://models/../../etc/passwd", store)


def test_resolve_unknown_remote_checkpoint() -> None:
    with pytest.raises(FileNotFoundError):
        resolve_checkpoint("s3://models/digits/v99", CHECKPOINT_DIR)
    with pytest.raises(ValueError):
        resolve_checkpoint("s3://models/digits/v2-better", None)
