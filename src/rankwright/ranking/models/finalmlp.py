"""FinalMLP.

Mirrors FuxiCTR's FinalMLP: flattened field embeddings feed two MLP streams (no output
layer); with ``use_fs`` each stream sees the embeddings multiplied by its own gate
``2 * sigmoid(MLP(context))`` (gate MLP: ``fs_hidden_units`` ReLU layers, no BN/dropout,
output width = flat embedding width); the context is the flattened embeddings of the
``fs1_context`` / ``fs2_context`` fields from a separate embedding table, or a learned
vector (zero-initialised) when empty. The streams are fused by multi-head bilinear
aggregation ``w_x.h1 + w_y.h2 + sum_h h1_h^T W_h h2_h``. No first-order LR term (FuxiCTR has
none). Defaults follow BARS FinalMLP_frappe_x1 except the context fields, which are
dataset-specific (BARS frappe uses ``fs1_context=("user",)``, ``fs2_context=("item",)``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import ModelConfig, RankingModel, register
from rankwright.ranking.models._knobs import Activation, Width, activation, batch_norm, dropout, hidden_units
from rankwright.ranking.models.layers import (
    MLP,
    FeatureEmbedding,
    FeatureSelection,
    InteractionAggregation,
    reset_linear_,
)

FieldName = Annotated[str, Field(min_length=1, max_length=200)]


class FinalMLPConfig(ModelConfig):
    """Two-stream MLP with feature selection gates and bilinear fusion."""

    name: Literal["finalmlp"] = "finalmlp"
    mlp1_hidden_units: tuple[Width, ...] = hidden_units((400,), "stream 1")
    mlp1_activation: Activation = activation("stream 1")
    mlp1_dropout: float = dropout(0.4, "stream 1")
    mlp1_batch_norm: bool = batch_norm(True, "stream 1")
    mlp2_hidden_units: tuple[Width, ...] = hidden_units((100,), "stream 2")
    mlp2_activation: Activation = activation("stream 2")
    mlp2_dropout: float = dropout(0.4, "stream 2")
    mlp2_batch_norm: bool = batch_norm(True, "stream 2")
    use_fs: bool = Field(True, description="gate each stream's input with its own feature-selection weights")
    fs_hidden_units: tuple[Width, ...] = hidden_units((400,), "each feature-selection gate MLP", allow_empty=True)
    fs1_context: tuple[FieldName, ...] = Field(
        (), max_length=64, description="feature names whose embeddings drive stream 1's gate (empty: a learned vector)"
    )
    fs2_context: tuple[FieldName, ...] = Field(
        (), max_length=64, description="feature names whose embeddings drive stream 2's gate (empty: a learned vector)"
    )
    num_heads: int = Field(
        5, ge=1, le=64, description="heads of the bilinear fusion (must divide both streams' last widths)"
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> "FinalMLPConfig":
        for units in (self.mlp1_hidden_units, self.mlp2_hidden_units):
            if units[-1] % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} must divide the last stream widths, got {units[-1]}")
        return self


@register("finalmlp", FinalMLPConfig)
class FinalMLP(RankingModel):
    def __init__(self, meta: FeatureMeta, config: FinalMLPConfig) -> None:
        super().__init__(meta, config)
        c = config
        flat = meta.num_fields * c.embedding_dim
        self.embedding = FeatureEmbedding(meta, c.embedding_dim, c.embedding_init_std)
        self.mlp1 = MLP(flat, c.mlp1_hidden_units, c.mlp1_activation, c.mlp1_dropout, c.mlp1_batch_norm)
        self.mlp2 = MLP(flat, c.mlp2_hidden_units, c.mlp2_activation, c.mlp2_dropout, c.mlp2_batch_norm)
        self.fs = (
            FeatureSelection(
                meta, flat, c.embedding_dim, c.fs_hidden_units, (c.fs1_context, c.fs2_context), c.embedding_init_std
            )
            if c.use_fs
            else None
        )
        self.fusion = InteractionAggregation(self.mlp1.out_dim, self.mlp2.out_dim, c.num_heads)
        reset_linear_(self)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        flat = self.embedding(categorical, numeric).flatten(1)
        if self.fs is None:
            x1 = x2 = flat
        else:
            x1, x2 = self.fs(flat, categorical, numeric)
        return self.fusion(self.mlp1(x1), self.mlp2(x2))
