"""Data for the built-in ranking codebase: sources, feature processing, synthetic logs, cache.

``load_data(DataConfig(...))`` is the entry point; it returns ``ProcessedData`` (see
``types``), the contract between data and the models and trainer.

The configs and ``DataError`` are torch-free and imported here eagerly; everything else is
imported on first use, so that ``rankwright.ranking.data.config`` (which runs this file
first) can be read without loading PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rankwright.ranking.data.config import (
    DataConfig,
    NumericTransform,
    ProcessingConfig,
    SchemaConfig,
    SplitConfig,
    SyntheticConfig,
)
from rankwright.ranking.data.errors import DataError

if TYPE_CHECKING:
    from rankwright.ranking.data.loading import load_data
    from rankwright.ranking.data.splitting import split_rows
    from rankwright.ranking.data.processing import FeatureProcessor
    from rankwright.ranking.data.synthetic import bayes_metrics, generate_frame, synthetic_schema
    from rankwright.ranking.data.types import FeatureMeta, ProcessedData, TensorSplit

_LAZY = {
    "load_data": "loading",
    "split_rows": "splitting",
    "FeatureProcessor": "processing",
    "bayes_metrics": "synthetic",
    "generate_frame": "synthetic",
    "synthetic_schema": "synthetic",
    "FeatureMeta": "types",
    "ProcessedData": "types",
    "TensorSplit": "types",
}


def __getattr__(name: str) -> Any:
    """The names that need PyTorch (or pandas), imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DataConfig",
    "DataError",
    "FeatureMeta",
    "FeatureProcessor",
    "NumericTransform",
    "ProcessedData",
    "ProcessingConfig",
    "SchemaConfig",
    "SplitConfig",
    "SyntheticConfig",
    "TensorSplit",
    "bayes_metrics",
    "generate_frame",
    "load_data",
    "split_rows",
    "synthetic_schema",
]
