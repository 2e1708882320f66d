"""On-disk cache of processed tensors, so a campaign's many runs parse and process once.

The key hashes what the tensors depend on: the data itself (sha256 of every input file's
bytes, or the synthetic config with the generator's version), the source, schema, split,
processing and train_fraction, and a format version. Paths are not part of the key: the
same bytes at another path are the same data. Files are written to a temporary name and
renamed into place, so a reader never sees half a file; a file that cannot be read back is
ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import torch

from rankwright.ranking.data.config import DataConfig
from rankwright.ranking.data.synthetic import GENERATOR_VERSION
from rankwright.ranking.data.types import FeatureMeta, ProcessedData, TensorSplit

FORMAT_VERSION = 1  # bump when readers or processing change what the tensors hold
_SPLITS = ("train", "valid", "test")
_TENSORS = ("categorical", "numeric", "label", "true_probability")


def file_digest(path: Path, block: int = 1 << 22) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(config: DataConfig, files: dict[str, Path]) -> str:
    """The key of the processed data of ``config`` read from ``files`` (role -> path)."""
    payload: dict[str, object] = {
        "format": FORMAT_VERSION,
        "source": config.source,
        "schema": config.schema_.model_dump(mode="json"),
        "split": config.split.model_dump(mode="json"),
        "processing": config.processing.model_dump(mode="json"),
        "train_fraction": config.train_fraction,
    }
    if config.source == "synthetic":
        payload["data"] = {"generator": GENERATOR_VERSION, "config": config.synthetic.model_dump(mode="json")}
    else:
        payload["data"] = {role: file_digest(path) for role, path in sorted(files.items())}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"data-{key}.pt"


def save(cache_dir: Path, data: ProcessedData) -> Path:
    """Write atomically (temporary file + ``os.replace``); concurrent writers are harmless."""
    path = cache_path(cache_dir, data.cache_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "key": data.cache_key,
        "meta": {
            "categorical_names": list(data.meta.categorical_names),
            "cardinalities": list(data.meta.cardinalities),
            "numeric_names": list(data.meta.numeric_names),
        },
        "splits": {
            name: {t: getattr(getattr(data, name), t) for t in _TENSORS} for name in _SPLITS
        },
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(cache_dir: Path, key: str) -> ProcessedData | None:
    """The cached data of ``key``, or None when absent or unreadable (then it is rebuilt)."""
    path = cache_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["format"] != FORMAT_VERSION or payload["key"] != key:
            return None
        meta = payload["meta"]
        feature_meta = FeatureMeta(
            tuple(meta["categorical_names"]), tuple(meta["cardinalities"]), tuple(meta["numeric_names"])
        )
        splits = {}
        for name in _SPLITS:
            tensors = payload["splits"][name]
            split = TensorSplit(*(tensors[t] for t in _TENSORS))
            if not (
                split.categorical.dtype == torch.int64
                and split.numeric.dtype == torch.float32
                and split.label.dtype == torch.float32
                and split.categorical.shape == (len(split), feature_meta.num_categorical)
                and split.numeric.shape == (len(split), feature_meta.num_numeric)
            ):
                return None
            splits[name] = split
        return ProcessedData(feature_meta, splits["train"], splits["valid"], splits["test"], cache_key=key)
    except Exception:  # any damage (truncated, not a torch file, wrong layout) means: rebuild
        return None
