"""Typed, ranged configuration of where data comes from and how it becomes tensors.

Every config is frozen so it can be hashed into the processed-data cache key, and every
field has a range so the agent can read the knob schema and a bad value is refused with a
message naming the field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NumericTransform = Literal["log_standardize", "none", "log", "standardize", "bucketize"]
"""How a numeric field is turned into model input.

- ``none``: the raw value.
- ``log``: signed log1p, ``sign(x) * log(1 + |x|)``. For ``x >= 0`` this is exactly the
  ``log(1 + x)`` of DLRM's Criteo preprocessing; unlike DLRM we keep negative values (Criteo
  I2 has some) instead of clamping them to 0. It stays a float, it is not bucketized.
- ``standardize``: ``(x - mean) / std`` with the train split's mean and std.
- ``log_standardize`` (default): ``log`` then ``standardize``; heavy-tailed counts and
  prices end up centred with unit variance, which every model (LR and FM included) trains
  well on without tuning the learning rate.
- ``bucketize``: quantile buckets fitted on the train split; the field becomes a
  categorical field (id 0 = missing).

Missing values become 0 after the transform (for ``standardize`` that is the train mean).
"""

DataSource = Literal["synthetic", "csv", "tsv", "parquet", "criteo", "libsvm"]
FILE_SOURCES: tuple[str, ...] = ("csv", "tsv", "parquet", "criteo", "libsvm")
SCHEMA_SOURCES: tuple[str, ...] = ("csv", "tsv", "parquet")  # formats whose columns must be declared

Structure = Literal["default", "wide", "pairwise", "higher_order", "numeric"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SchemaConfig(_Frozen):
    """Which columns are the label and the features.

    Required for csv/tsv/parquet. For criteo, libsvm and synthetic data the format implies
    the columns; declaring some there selects that subset of the implied ones.
    """

    label: str = Field("label", min_length=1, description="label column (0/1, or -1/1)")
    categorical: tuple[str, ...] = Field((), description="categorical feature columns")
    numeric: tuple[str, ...] = Field((), description="numeric feature columns")

    @model_validator(mode="after")
    def _distinct(self) -> "SchemaConfig":
        names = (self.label, *self.categorical, *self.numeric)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"schema columns must be distinct (label, categorical, numeric); repeated: {repeated}")
        return self

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.categorical, *self.numeric)


class SplitConfig(_Frozen):
    """How one file is split when the validation or test file is not given.

    ``order``: ``random`` (a seeded permutation), ``file`` (the file's row order is time
    order) or ``column`` (sorted by ``time_column``). Ordered splits hold out the *latest*
    rows, test last and validation just before it, as a model is trained on the past and
    served on the future; a random cut on a time-ordered log overstates what a model will do.
    """

    valid_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of rows held out for validation")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of rows held out for test")
    seed: int = Field(2024, ge=0, description="seed of the split permutation")
    order: Literal["random", "file", "column"] = Field("random", description="random, or by time: file order or "
                                                                             "a time column")
    time_column: str | None = Field(None, min_length=1, description="the column that orders rows in time (order: column)")

    @model_validator(mode="after")
    def _leave_train(self) -> "SplitConfig":
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("valid_fraction + test_fraction must leave some rows for training (< 1)")
        if self.order == "column" and not self.time_column:
            raise ValueError("order: column needs time_column (the column that orders rows in time)")
        if self.time_column and self.order != "column":
            raise ValueError(f"time_column is set but order is {self.order!r}: set order: column to use it")
        return self


class ProcessingConfig(_Frozen):
    """Feature processing, fitted on the train split only."""

    min_count: int = Field(1, ge=1, description="values seen fewer times in train go to the OOV id 0")
    hash_threshold: int = Field(
        1_000_000, ge=1, description="a field with more distinct train values than this is hashed"
    )
    hash_buckets: int = Field(1_000_000, ge=2, description="hash buckets of a hashed field (plus id 0)")
    numeric_transform: NumericTransform = Field("log_standardize", description="transform of every numeric field")
    numeric_overrides: dict[str, NumericTransform] = Field(
        default_factory=dict, description="per-field transform overriding numeric_transform"
    )
    buckets: int = Field(20, ge=2, le=1000, description="quantile buckets of a bucketized field")

    def transform_of(self, field: str) -> str:
        return self.numeric_overrides.get(field, self.numeric_transform)


class SyntheticConfig(_Frozen):
    """The built-in ad-click log: a known generating process, so the Bayes limit is known.

    The generator's tables and weights depend only on ``seed``, ``structure`` and the shape
    knobs (cardinalities, latent_dim, zipf_exponent); ``rows`` only says how many rows to
    draw, and the first rows of a larger log are the rows of a smaller one. The strengths
    multiply the preset of ``structure`` and set the logit standard deviation each effect
    contributes.
    """

    rows: int = Field(200_000, ge=10_000, le=10_000_000, description="rows generated (before splitting)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the task (tables and rows)")
    structure: Structure = Field(
        "default",
        description="generating structure: default (all effects), wide (first order), pairwise "
        "(user x ad factors), higher_order (3-way), numeric (non-linear numeric effects)",
    )
    base_rate: float = Field(0.1, gt=0.001, lt=0.5, description="mean true click probability")
    zipf_exponent: float = Field(1.05, ge=0.5, le=2.0, description="popularity skew of id fields")
    user_scale: float = Field(1.0, ge=0.01, le=20.0, description="scales user_id and geo cardinalities")
    ad_scale: float = Field(1.0, ge=0.01, le=20.0, description="scales ad_id and advertiser_id cardinalities")
    context_scale: float = Field(1.0, ge=0.01, le=20.0, description="scales the site cardinality")
    latent_dim: int = Field(8, ge=1, le=64, description="rank of the pairwise and 3-way latent factors")
    first_order: float = Field(1.0, ge=0.0, le=10.0, description="multiplier of first-order effects")
    pairwise: float = Field(1.0, ge=0.0, le=10.0, description="multiplier of pairwise interactions")
    higher_order: float = Field(1.0, ge=0.0, le=10.0, description="multiplier of 3-way interactions")
    numeric: float = Field(1.0, ge=0.0, le=10.0, description="multiplier of non-linear numeric effects")


class DataConfig(_Frozen):
    """Where the data comes from and how it is split and processed.

    ``schema`` is the YAML key of the column schema (the attribute is ``schema_`` because
    ``schema`` is taken on pydantic models); both spellings are accepted on input and dumps
    use ``schema``. Relative file paths are resolved against the ``base_dir`` given to
    ``load_data``.
    """

    # serialize_by_alias needs pydantic >= 2.11; older versions dump "schema_", which still loads.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True)

    source: DataSource = Field("synthetic", description="where rows come from")
    train: str | None = Field(None, description="train file (file sources)")
    valid: str | None = Field(None, description="validation file; split from train when absent")
    test: str | None = Field(None, description="test file; split from train when absent")
    schema_: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    split: SplitConfig = Field(default_factory=SplitConfig)
    processing: ProcessingConfig = Field(default_factory=ProcessingConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    train_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="fidelity: use only this leading share of the shuffled train split"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "DataConfig":
        if self.source in FILE_SOURCES and not self.train:
            raise ValueError(f"source {self.source!r} needs a 'train' file")
        if self.source == "synthetic" and (self.train or self.valid or self.test):
            raise ValueError("source 'synthetic' takes no train/valid/test files")
        if self.source in SCHEMA_SOURCES and not self.schema_.features:
            raise ValueError(
                f"source {self.source!r} needs schema.categorical or schema.numeric columns declared"
            )
        return self
