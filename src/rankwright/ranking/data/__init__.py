"""Data for the built-in ranking codebase: sources, feature processing, synthetic logs, cache.

``load_data(DataConfig(...))`` is the entry point; it returns ``ProcessedData`` (see
``types``), the contract between data and the models and trainer.
"""

from rankwright.ranking.data.config import (
    DataConfig,
    NumericTransform,
    ProcessingConfig,
    SchemaConfig,
    SplitConfig,
    SyntheticConfig,
)
from rankwright.ranking.data.errors import DataError
from rankwright.ranking.data.loading import load_data, split_rows
from rankwright.ranking.data.processing import FeatureProcessor
from rankwright.ranking.data.synthetic import bayes_metrics, generate_frame, synthetic_schema
from rankwright.ranking.data.types import FeatureMeta, ProcessedData, TensorSplit

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
