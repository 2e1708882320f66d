"""Feature processing: categorical values to ids, numeric values to model-ready floats.

Everything is fitted on the train split only, so the validation and test splits see exactly
what serving would see: unseen categorical values go to the OOV id 0 and numeric
statistics come from train. All steps are vectorized (factorize / get_indexer /
searchsorted), never a Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

from rankwright.ranking.data.config import ProcessingConfig
from rankwright.ranking.data.errors import DataError
from rankwright.ranking.data.sources import LABEL
from rankwright.ranking.data.types import FeatureMeta, TensorSplit

KeyKind = Literal["int", "str"]


def _keys(values: pd.Series) -> tuple[KeyKind, np.ndarray | pd.api.extensions.ExtensionArray]:
    """Categorical values in one canonical form: integers (missing allowed) or text.

    Integral floats (an integer column with gaps, as csv and parquet readers produce) are
    integers, so ``7`` and ``7.0`` are the same value.
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "int", values.astype("Int64").array
    if pd.api.types.is_integer_dtype(dtype):
        return "int", values.array if isinstance(dtype, pd.api.extensions.ExtensionDtype) else values.to_numpy()
    if pd.api.types.is_float_dtype(dtype):
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = ~np.isfinite(x)
        whole = np.where(missing, 0.0, x)
        if np.all(whole == np.round(whole)) and np.all(np.abs(whole) < 2**62):
            return "int", pd.arrays.IntegerArray(whole.astype(np.int64), missing)
    return "str", values.astype("str").array


def _as_kind(values: pd.Series, kind: KeyKind) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column in the kind its field was fitted with (files may be read with other dtypes)."""
    got, keys = _keys(values)
    if got == kind:
        return keys
    if kind == "str":
        return pd.Series(keys).astype("str").array
    numbers = pd.to_numeric(pd.Series(keys), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = ~np.isfinite(numbers) | (numbers != np.round(numbers))  # text that is no integer: unseen
    return pd.arrays.IntegerArray(np.where(missing, 0, numbers).astype(np.int64), missing)


def _stable_hash(keys: np.ndarray | pd.api.extensions.ExtensionArray, kind: KeyKind) -> tuple[np.ndarray, np.ndarray]:
    """A seed-free 64-bit hash (pandas' fixed-key SipHash), never Python's salted ``hash``."""
    missing = np.asarray(pd.isna(keys), dtype=bool)
    if kind == "int":
        ints = np.asarray(pd.Series(keys).fillna(0).to_numpy(dtype=np.int64))
        return pd.util.hash_array(ints), missing
    text = pd.Series(keys).fillna("").to_numpy(dtype=object)
    return pd.util.hash_array(text, categorize=True), missing


@dataclass
class CategoricalField:
    """One fitted categorical field: a vocabulary (ids 1..V) or a hashed one (ids 1..buckets)."""

    name: str
    kind: KeyKind
    vocabulary: pd.Index | None  # None when hashed
    hash_buckets: int = 0
    distinct: int = 0  # distinct non-missing train values

    @property
    def hashed(self) -> bool:
        return self.vocabulary is None

    @property
    def cardinality(self) -> int:
        return self.hash_buckets + 1 if self.hashed else len(self.vocabulary) + 1  # type: ignore[arg-type]

    def ids(self, values: pd.Series) -> np.ndarray:
        keys = _as_kind(values, self.kind)
        if self.hashed:
            h, missing = _stable_hash(keys, self.kind)
            out = (h % np.uint64(self.hash_buckets)).astype(np.int64) + 1
            out[missing] = 0
            return out
        return self.vocabulary.get_indexer(keys).astype(np.int64) + 1  # type: ignore[union-attr]


@dataclass
class NumericField:
    """One fitted numeric field; ``edges`` is set when it is bucketized into a categorical."""

    name: str
    transform: str
    mean: float = 0.0
    std: float = 1.0
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def bucketized(self) -> bool:
        return self.transform == "bucketize"

    @property
    def cardinality(self) -> int:
        return int(self.edges.size) + 2  # id 0 missing, ids 1..edges+1 buckets

    def values(self, raw: pd.Series) -> np.ndarray:
        x = _finite_or_nan(raw)
        if self.transform in ("log", "log_standardize"):
            x = _signed_log1p(x)
        if self.transform in ("standardize", "log_standardize"):
            x = (x - self.mean) / self.std
        return np.nan_to_num(x, nan=0.0).astype(np.float32)

    def ids(self, raw: pd.Series) -> np.ndarray:
        x = _finite_or_nan(raw)
        out = np.searchsorted(self.edges, x, side="right").astype(np.int64) + 1
        out[np.isnan(x)] = 0
        return out


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _finite_or_nan(raw: pd.Series) -> np.ndarray:
    x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(x), x, np.nan)


class FeatureProcessor:
    """Fit on the train frame, then ``transform`` any split of the same columns to tensors.

    Categorical ids: 1..V ordered by descending train count, then by value (deterministic);
    values seen fewer than ``min_count`` times, unseen values and missing values get id 0.
    A field with more than ``hash_threshold`` distinct train values is hashed instead
    (``1 + hash % hash_buckets``; ``min_count`` does not apply). Numeric fields follow
    ``ProcessingConfig.transform_of``; non-finite values count as missing and missing values
    become 0 after the transform. Bucketized numeric fields become categorical fields placed
    after the declared categorical ones, keeping their names.
    """

    def __init__(self, config: ProcessingConfig, categorical: tuple[str, ...], numeric: tuple[str, ...]) -> None:
        unknown = sorted(set(config.numeric_overrides) - set(numeric))
        if unknown:
            raise DataError(
                f"processing.numeric_overrides: {unknown} are not numeric columns of this data {list(numeric)}"
            )
        self.config = config
        self.categorical_columns = tuple(categorical)
        self.numeric_columns = tuple(numeric)
        self.categorical: list[CategoricalField] = []
        self.numeric: list[NumericField] = []
        self._fitted = False

    # ----------------------------------------------------------------- fit
    def fit(self, frame: pd.DataFrame) -> "FeatureProcessor":
        _require_columns(frame, (*self.categorical_columns, *self.numeric_columns), "train split")
        if len(frame) == 0:
            raise DataError("train split: no rows to fit the feature processing on")
        self.categorical = [self._fit_categorical(name, frame[name]) for name in self.categorical_columns]
        self.numeric = [self._fit_numeric(name, frame[name]) for name in self.numeric_columns]
        self._fitted = True
        return self

    def _fit_categorical(self, name: str, values: pd.Series) -> CategoricalField:
        kind, keys = _keys(values)
        codes, uniques = pd.factorize(keys)
        uniques = pd.Index(uniques)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        if len(uniques) > self.config.hash_threshold:
            return CategoricalField(name, kind, None, self.config.hash_buckets, len(uniques))
        value_rank = np.empty(len(uniques), dtype=np.int64)
        value_rank[uniques.argsort()] = np.arange(len(uniques))
        order = np.lexsort((value_rank, -counts))
        order = order[counts[order] >= self.config.min_count]
        return CategoricalField(name, kind, uniques[order], 0, len(uniques))

    def _fit_numeric(self, name: str, raw: pd.Series) -> NumericField:
        transform = self.config.transform_of(name)
        x = _finite_or_nan(raw)
        x = x[~np.isnan(x)]
        fitted = NumericField(name, transform)
        if transform == "log_standardize":
            x = _signed_log1p(x)
        if transform in ("standardize", "log_standardize") and x.size:
            fitted.mean = float(x.mean())
            std = float(x.std())
            fitted.std = std if std > 0 else 1.0
        elif transform == "bucketize" and x.size:
            quantiles = np.linspace(0.0, 1.0, self.config.buckets + 1)[1:-1]
            fitted.edges = np.unique(np.quantile(x, quantiles))
        return fitted

    # ----------------------------------------------------------------- results
    @property
    def meta(self) -> FeatureMeta:
        self._check_fitted()
        bucketized = [f for f in self.numeric if f.bucketized]
        return FeatureMeta(
            categorical_names=tuple(f.name for f in self.categorical) + tuple(f.name for f in bucketized),
            cardinalities=tuple(f.cardinality for f in self.categorical) + tuple(f.cardinality for f in bucketized),
            numeric_names=tuple(f.name for f in self.numeric if not f.bucketized),
        )

    def transform(self, frame: pd.DataFrame, *, true_probability: str | None = None, where: str = "split") -> TensorSplit:
        """Tensors of one split; ``true_probability`` names a column of known click probabilities."""
        self._check_fitted()
        wanted = (LABEL, *self.categorical_columns, *self.numeric_columns)
        _require_columns(frame, wanted + ((true_probability,) if true_probability else ()), where)
        bucketized = [f for f in self.numeric if f.bucketized]
        dense = [f for f in self.numeric if not f.bucketized]
        n = len(frame)
        categorical = np.empty((n, len(self.categorical) + len(bucketized)), dtype=np.int64)
        for j, cat in enumerate(self.categorical):
            categorical[:, j] = cat.ids(frame[cat.name])
        for j, num in enumerate(bucketized, start=len(self.categorical)):
            categorical[:, j] = num.ids(frame[num.name])
        numeric = np.empty((n, len(dense)), dtype=np.float32)
        for j, num in enumerate(dense):
            numeric[:, j] = num.values(frame[num.name])
        label = frame[LABEL].to_numpy(dtype=np.float32, copy=True)
        probability = None
        if true_probability:
            probability = torch.from_numpy(frame[true_probability].to_numpy(dtype=np.float32, copy=True))
        return TensorSplit(torch.from_numpy(categorical), torch.from_numpy(numeric), torch.from_numpy(label), probability)

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("FeatureProcessor.fit must run before transform/meta")


def _require_columns(frame: pd.DataFrame, names: tuple[str, ...], where: str) -> None:
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}")
