"""The one entry point from a ``DataConfig`` to train/valid/test tensors.

Read (or generate), split, cut the train split to the fidelity's ``train_fraction``, fit the
feature processing on that train split, transform every split, and cache the result on disk
keyed by everything the tensors depend on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rankwright.ranking.data import cache
from rankwright.ranking.data.config import DataConfig, SchemaConfig, SplitConfig
from rankwright.ranking.data.errors import DataError
from rankwright.ranking.data.files import resolve_files
from rankwright.ranking.data.processing import FeatureProcessor
from rankwright.ranking.data.sources import LABEL, read_source
from rankwright.ranking.data.synthetic import PROBABILITY, generate_frame, synthetic_schema
from rankwright.ranking.data.types import ProcessedData



def load_data(
    config: DataConfig,
    *,
    base_dir: Path = Path("."),
    cache_dir: Path | None = Path(".rankwright/cache"),
) -> ProcessedData:
    """Processed splits of ``config``; relative file paths are resolved against ``base_dir``.

    ``cache_dir`` (relative to the working folder; None disables the cache) holds processed
    tensors; a hit returns them without reading the data files again.
    """
    files = resolve_files(config, Path(base_dir))
    key = cache.cache_key(config, files)
    if cache_dir is not None:
        hit = cache.load(Path(cache_dir), key)
        if hit is not None:
            return hit
    data = build(config, files, key)
    if cache_dir is not None:
        cache.save(Path(cache_dir), data)
    return data


def split_rows(
    n: int, split: SplitConfig, *, need_valid: bool = True, need_test: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Row indices (train, valid, test) of a deterministic split of ``n`` rows.

    ``perm = RandomState(seed).permutation(n)``; the held-out parts come from the end of
    ``perm`` (test last), each ``int(n * fraction)`` rows; train is the rest, in ``perm``
    order. A part that is not needed (its file is given) is None. Benchmarks reproduce this
    rule, so keep it stable.
    """
    perm = np.random.RandomState(split.seed).permutation(n)
    n_test = int(n * split.test_fraction) if need_test else 0
    n_valid = int(n * split.valid_fraction) if need_valid else 0
    n_train = n - n_valid - n_test
    train = perm[:n_train]
    valid = perm[n_train : n_train + n_valid] if need_valid else None
    test = perm[n_train + n_valid :] if need_test else None
    return train, valid, test


def build(config: DataConfig, files: dict[str, Path], key: str = "") -> ProcessedData:
    """Everything ``load_data`` does apart from the cache."""
    frames, schema, shuffled = _frames(config, files)
    train = _train_fraction(frames["train"], config, shuffled)
    if len(train) == 0:
        raise DataError("the train split is empty: more rows or smaller valid/test fractions are needed")
    if len(frames["valid"]) == 0:
        raise DataError(
            f"the valid split is empty: split.valid_fraction={config.split.valid_fraction} of "
            f"{len(frames['train']) + len(frames['valid'])} rows is below one row"
        )
    for role, frame in (("train", train), ("valid", frames["valid"]), ("test", frames["test"])):
        labels = set(np.unique(frame[LABEL].to_numpy())) if len(frame) else set()
        if len(frame) and len(labels) < 2:
            only = int(next(iter(labels)))
            raise DataError(f"every label of the {role} split is {only}: a click model needs both 0 and 1, and AUC "
                            f"and NE are undefined without them ({len(frame)} rows); check the label column")
    processor = FeatureProcessor(config.processing, schema.categorical, schema.numeric).fit(train)
    probability = PROBABILITY if config.source == "synthetic" else None
    splits = {"train": train, "valid": frames["valid"], "test": frames["test"]}
    tensors = {
        role: processor.transform(frame, true_probability=probability, where=f"{role} split")
        for role, frame in splits.items()
    }
    return ProcessedData(processor.meta, tensors["train"], tensors["valid"], tensors["test"], cache_key=key)


def _frames(config: DataConfig, files: dict[str, Path]) -> tuple[dict[str, pd.DataFrame], SchemaConfig, bool]:
    """Frames per role, their schema, and whether the train frame is already shuffled."""
    if config.source == "synthetic":
        whole = generate_frame(config.synthetic)
        schema = _subset(synthetic_schema(config.synthetic), config.schema_, "synthetic data")
        read: dict[str, pd.DataFrame] = {"train": whole}
    else:
        read = {}
        schema = config.schema_
        for role, path in files.items():
            read[role], found = read_source(config.source, path, config.schema_)
            if role == "train":
                schema = found
            else:
                read[role] = _conform(read[role], schema, path)
    need_valid, need_test = "valid" not in read, "test" not in read
    if not (need_valid or need_test):
        return read, schema, False
    whole = read["train"]
    train, valid, test = split_rows(len(whole), config.split, need_valid=need_valid, need_test=need_test)
    frames = {"train": whole.iloc[train].reset_index(drop=True)}
    frames["valid"] = read["valid"] if valid is None else whole.iloc[valid].reset_index(drop=True)
    frames["test"] = read["test"] if test is None else whole.iloc[test].reset_index(drop=True)
    return frames, schema, True


def _subset(implied: SchemaConfig, declared: SchemaConfig, where: str) -> SchemaConfig:
    if not declared.features:
        return implied
    unknown = [c for c in declared.features if c not in implied.features]
    if unknown:
        raise DataError(f"schema: {where} has no column(s) {unknown}; its columns are {list(implied.features)}")
    return SchemaConfig(label=implied.label, categorical=declared.categorical, numeric=declared.numeric)


def _conform(frame: pd.DataFrame, schema: SchemaConfig, path: Path) -> pd.DataFrame:
    """Give a valid/test frame the train frame's columns (a sparse libsvm file may lack a field)."""
    missing = [c for c in schema.features if c not in frame.columns]
    if missing and any(c in schema.numeric for c in missing):
        raise DataError(f"{path}: missing column(s) {missing} that the train file has")
    for name in missing:
        frame[name] = pd.arrays.IntegerArray(np.zeros(len(frame), np.int64), np.ones(len(frame), bool))
    return frame


def _train_fraction(train: pd.DataFrame, config: DataConfig, shuffled: bool) -> pd.DataFrame:
    """The leading ``train_fraction`` of the shuffled train split (a cheap, unbiased fidelity).

    The feature processing is then fitted on this smaller split, as it would be if only this
    much data existed, so vocabulary sizes shrink with the fraction.
    """
    if config.train_fraction >= 1.0:
        return train
    keep = max(1, int(len(train) * config.train_fraction))
    if shuffled:
        return train.iloc[:keep].reset_index(drop=True)
    order = np.random.RandomState(config.split.seed).permutation(len(train))[:keep]
    return train.iloc[order].reset_index(drop=True)
