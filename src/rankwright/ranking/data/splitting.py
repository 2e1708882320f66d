"""Reading (or generating) the rows and splitting them into train, valid and test, with
nothing but pandas and numpy: what the data loader and the preflight's shift report share
(the preflight must not import PyTorch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rankwright.ranking.data.config import DataConfig, SchemaConfig, SplitConfig
from rankwright.ranking.data.errors import DataError
from rankwright.ranking.data.sources import read_source
from rankwright.ranking.data.synthetic import generate_frame, synthetic_schema


def split_rows(
    n: int, split: SplitConfig, *, need_valid: bool = True, need_test: bool = True,
    times: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Row indices (train, valid, test) of a deterministic split of ``n`` rows.

    ``perm = RandomState(seed).permutation(n)``; the held-out parts come from the end of
    ``perm`` (test last), each ``int(n * fraction)`` rows; train is the rest, in ``perm``
    order. A part that is not needed (its file is given) is None. Benchmarks reproduce this
    rule, so keep it stable.
    """
    if split.order == "random":
        perm = np.random.RandomState(split.seed).permutation(n)
    elif split.order == "file":
        perm = np.arange(n)
    else:  # by the time column; ties keep file order
        perm = np.argsort(times, kind="stable") if times is not None else np.arange(n)
    n_test = int(n * split.test_fraction) if need_test else 0
    n_valid = int(n * split.valid_fraction) if need_valid else 0
    n_train = n - n_valid - n_test
    train = perm[:n_train]
    valid = perm[n_train : n_train + n_valid] if need_valid else None
    test = perm[n_train + n_valid :] if need_test else None
    return train, valid, test



def frames_of(config: DataConfig, files: dict[str, Path]) -> tuple[dict[str, pd.DataFrame], SchemaConfig, bool]:
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
    times = _times(config, files.get("train")) if config.split.order == "column" else None
    train, valid, test = split_rows(len(whole), config.split, need_valid=need_valid, need_test=need_test,
                                    times=times)
    frames = {"train": whole.iloc[train].reset_index(drop=True)}
    frames["valid"] = read["valid"] if valid is None else whole.iloc[valid].reset_index(drop=True)
    frames["test"] = read["test"] if test is None else whole.iloc[test].reset_index(drop=True)
    return frames, schema, config.split.order == "random"  # an ordered train split is not shuffled



def _times(config: DataConfig, path: Path) -> np.ndarray:
    """The time column of the train file, as sortable numbers (numbers, or dates and times)."""
    column = config.split.time_column
    if config.source not in ("csv", "tsv", "parquet"):
        raise DataError(f"split.order: column needs a file with named columns (csv, tsv, parquet), not "
                        f"{config.source}; use order: file when the rows are already in time order")
    try:
        if config.source == "parquet":
            raw = pd.read_parquet(path, columns=[column])[column]
        else:
            raw = pd.read_csv(path, sep="," if config.source == "csv" else "\t", usecols=[column])[column]
    except ValueError as exc:
        raise DataError(f"{path}: split.time_column {column!r} is not a column of the file ({exc})") from None
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.notna().mean() > 0.5:  # a column of numbers (seconds, days, ...)
        values, bad = numbers, numbers.isna()
    else:  # a column of dates and times
        values = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        bad = values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path} line {i + 2}: time column {column!r} value {raw.iloc[i]!r} is neither a "
                        f"number nor a date ({int(bad.sum())} such values)")
    return values.astype("int64").to_numpy() if values.dtype.kind == "M" else values.to_numpy(dtype=np.float64)



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
