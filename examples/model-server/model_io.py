"""Checkpoint format of the digits example: a plain .npz of arrays plus JSON metadata.

Nothing is pickled, so loading a checkpoint can never run code (`np.load(..., allow_pickle=False)`).
Only numpy is needed here, so the serving image stays small.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

FORMAT = "modelratchet-digits/v1"
ARRAYS = ("weights", "bias", "classes", "mean", "scale")
# A fixed timestamp inside the zip keeps re-trained checkpoints byte-identical (no git churn).
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Checkpoint:
    """A linear softmax classifier: logits = ((x - mean) / scale) @ weights.T + bias."""

    weights: np.ndarray  # (n_classes, n_features)
    bias: np.ndarray  # (n_classes,)
    classes: np.ndarray  # (n_classes,) class label of each row
    mean: np.ndarray  # (n_features,)
    scale: np.ndarray  # (n_features,), never zero
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def extra_latency_seconds(self) -> float:
        """Artificial per-request delay the checkpoint asks for (demonstrates latency regressions)."""
        return float(self.metadata.get("extra_latency_ms", 0.0)) / 1000.0

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class labels for a (n_samples, n_features) or (n_features,) array."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        logits = ((x - self.mean) / self.scale) @ self.weights.T + self.bias
        labels: np.ndarray = self.classes[np.argmax(logits, axis=1)]
        return labels

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but deterministic: sorted members, fixed timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    meta = {"format": FORMAT, **ckpt.metadata}
    arrays = {name: getattr(ckpt, name) for name in ARRAYS}
    # A 0-d unicode array needs no pickle, unlike an object array or a dict.
    arrays["metadata"] = np.array(json.dumps(meta, sort_keys=True))
    _write_npz(path, arrays)


def load_checkpoint(path: str | Path) -> Checkpoint:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
        arrays = {name: np.array(data[name]) for name in ARRAYS}
    ckpt = Checkpoint(**arrays, metadata=meta)
    _validate(path, ckpt)
    return ckpt


def _validate(path: str | Path, ckpt: Checkpoint) -> None:
    n_classes, n_features = ckpt.weights.shape
    shapes_ok = (
        ckpt.bias.shape == (n_classes,)
        and ckpt.classes.shape == (n_classes,)
        and ckpt.mean.shape == (n_features,)
        and ckpt.scale.shape == (n_features,)
    )
    if not shapes_ok:
        raise ValueError(f"{path}: inconsistent array shapes")
    if np.any(ckpt.scale == 0):
        raise ValueError(f"{path}: scale contains zeros")


@dataclass(frozen=True)
class EvalSplit:
    """The fixed held-out samples: checkpoints are scored on them and traffic is drawn from them."""

    features: np.ndarray  # (n, 64), pixel intensities 0..16
    labels: np.ndarray  # (n,)
    indices: np.ndarray  # (n,) rows of sklearn's load_digits()


def save_eval_split(path: Path, split: EvalSplit) -> None:
    _write_npz(
        path,
        {
            "features": split.features.astype(np.uint8),  # digits pixels are integers 0..16
            "labels": split.labels.astype(np.int64),
            "indices": split.indices.astype(np.int64),
        },
    )


def load_eval_split(path: str | Path) -> EvalSplit:
    with np.load(path, allow_pickle=False) as data:
        return EvalSplit(
            features=data["features"].astype(np.float64),
            labels=np.array(data["labels"]),
            indices=np.array(data["indices"]),
        )


def store_path(uri: str, store: str | Path) -> Path:
    """Where a model store keeps the checkpoint `uri`: `<store>/<scheme>/<bucket or host>/<path>`.

    A store is a local mirror of the object store (a volume synced from the bucket, or a directory a test
    harness fills), so `s3://models/digits/v2` is `<store>/s3/models/digits/v2`, with or without `.npz`.
    """
    parsed = urlparse(uri)
    parts = [parsed.scheme, parsed.netloc, *Path(unquote(parsed.path)).parts]
    parts = [p for p in parts if p not in ("", "/")]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"checkpoint {uri!r} does not name a file in a model store")
    return Path(store).joinpath(*parts)


def resolve_checkpoint(uri: str, search_dir: str | Path | None = None, store: str | Path | None = None) -> Path:
    """Maps a checkpoint reference to a local file.

    `file:///models/v2.npz` and bare paths are used as they are. Any other URI (`s3://models/digits/v2`) is
    looked up in the model `store` first, by its whole path (see store_path), then in `search_dir` by its
    last path segment (a checkpoint shipped into the image), each with or without `.npz`: the URI stays what
    the operator and the metrics call it.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme:
        return Path(uri)
    if search_dir is None and store is None:
        raise ValueError(f"checkpoint {uri!r} is not a local path and neither a model store nor a checkpoint "
                         "directory is set")
    tried = []
    if store is not None:
        path = store_path(uri, store)
        tried.append(str(path))
        for candidate in (path, path.with_name(path.name + ".npz")):
            if candidate.is_file():
                return candidate
    if search_dir is not None:
        name = Path(unquote(parsed.path)).name or parsed.netloc
        tried.append(str(Path(search_dir) / name))
        for candidate in (Path(search_dir) / name, Path(search_dir) / f"{name}.npz"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"checkpoint {uri!r}: none of {', '.join(tried)} (with or without .npz) exists")
