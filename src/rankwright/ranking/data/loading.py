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
from rankwright.ranking.data.config import DataConfig
from rankwright.ranking.data.errors import DataError
from rankwright.ranking.data.files import resolve_files
from rankwright.ranking.data.processing import FeatureProcessor
from rankwright.ranking.data.sources import LABEL
from rankwright.ranking.data.splitting import frames_of
from rankwright.ranking.data.synthetic import PROBABILITY
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


def build(config: DataConfig, files: dict[str, Path], key: str = "") -> ProcessedData:
    """Everything ``load_data`` does apart from the cache."""
    frames, schema, shuffled = frames_of(config, files)
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
