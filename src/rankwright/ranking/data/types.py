"""What processed data looks like to the models and the trainer.

Every categorical field is mapped to local ids ``0..cardinality-1`` where id 0 is the
out-of-vocabulary / missing bucket; numeric fields are already transformed floats.
Keeping the whole split as three tensors lets the trainer batch by indexing instead of
running a DataLoader, which is most of our speed on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FeatureMeta:
    """The shape of the feature space a model is built for."""

    categorical_names: tuple[str, ...]
    cardinalities: tuple[int, ...]  # one per categorical field, OOV bucket included
    numeric_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.categorical_names) != len(self.cardinalities):
            raise ValueError("one cardinality per categorical field is required")
        if any(c < 1 for c in self.cardinalities):
            raise ValueError("every cardinality must be at least 1")

    @property
    def num_categorical(self) -> int:
        return len(self.categorical_names)

    @property
    def num_numeric(self) -> int:
        return len(self.numeric_names)

    @property
    def num_fields(self) -> int:
        return self.num_categorical + self.num_numeric

    @property
    def total_vocabulary(self) -> int:
        return int(sum(self.cardinalities))


@dataclass(frozen=True)
class TensorSplit:
    """One split (train, valid or test) held in memory."""

    categorical: torch.Tensor  # int64 [N, num_categorical]
    numeric: torch.Tensor  # float32 [N, num_numeric]
    label: torch.Tensor  # float32 [N]
    true_probability: torch.Tensor | None = None  # float32 [N], only for synthetic data

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def subset(self, index: torch.Tensor) -> "TensorSplit":
        return TensorSplit(
            self.categorical[index],
            self.numeric[index],
            self.label[index],
            None if self.true_probability is None else self.true_probability[index],
        )


@dataclass(frozen=True)
class ProcessedData:
    """Train, validation and test splits plus the feature space they share."""

    meta: FeatureMeta
    train: TensorSplit
    valid: TensorSplit
    test: TensorSplit
    cache_key: str = ""
