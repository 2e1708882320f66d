"""AutoInt+ (AutoInt with a parallel DNN).

Mirrors FuxiCTR's AutoInt: stacked multi-head self-attention layers over the field
embeddings (first layer reads ``embedding_dim``, later ones ``attention_dim``), flattened ->
Linear(1); plus, when ``hidden_units`` is non-empty, an MLP(..., 1) over the flattened
embeddings; plus an optional first-order LR term without bias (``use_wide``). ``dropout``
is FuxiCTR's ``net_dropout``: it applies both to the DNN and to the attention weights.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import ModelConfig, RankingModel, register
from rankwright.ranking.models._knobs import Activation, Width, activation, batch_norm, dropout, hidden_units
from rankwright.ranking.models.layers import MLP, FeatureEmbedding, LinearTerm, MultiHeadSelfAttention, reset_linear_


class AutoIntPlusConfig(ModelConfig):
    """Self-attentive field interactions plus a parallel DNN."""

    name: Literal["autoint_plus"] = "autoint_plus"
    attention_layers: int = Field(3, ge=1, le=12, description="number of stacked self-attention layers")
    num_heads: int = Field(2, ge=1, le=16, description="attention heads per layer (must divide attention_dim)")
    attention_dim: int = Field(64, ge=1, le=1024, description="output width of every attention layer")
    use_residual: bool = Field(True, description="add a (projected) residual around each attention layer")
    use_scale: bool = Field(False, description="scale attention scores by 1/sqrt(head width)")
    layer_norm: bool = Field(False, description="LayerNorm at the end of each attention layer")
    use_wide: bool = Field(False, description="add a first-order (LR) term")
    hidden_units: tuple[Width, ...] = hidden_units((400, 400, 400), "the parallel DNN", allow_empty=True)
    activation: Activation = activation("the parallel DNN")
    dropout: float = dropout(0.2, "the parallel DNN (also applied to attention weights)")
    batch_norm: bool = batch_norm(True, "the parallel DNN")

    @model_validator(mode="after")
    def _heads_divide(self) -> "AutoIntPlusConfig":
        if self.attention_dim % self.num_heads:
            raise ValueError(f"attention_dim={self.attention_dim} must be divisible by num_heads={self.num_heads}")
        return self


@register("autoint_plus", AutoIntPlusConfig)
class AutoIntPlus(RankingModel):
    def __init__(self, meta: FeatureMeta, config: AutoIntPlusConfig) -> None:
        super().__init__(meta, config)
        c = config
        self.embedding = FeatureEmbedding(meta, c.embedding_dim, c.embedding_init_std)
        self.attention = nn.Sequential(
            *(
                MultiHeadSelfAttention(
                    c.embedding_dim if i == 0 else c.attention_dim,
                    c.attention_dim,
                    c.num_heads,
                    c.dropout,
                    c.use_residual,
                    c.use_scale,
                    c.layer_norm,
                )
                for i in range(c.attention_layers)
            )
        )
        self.fc = nn.Linear(meta.num_fields * c.attention_dim, 1)
        flat = meta.num_fields * c.embedding_dim
        self.dnn = (
            MLP(flat, c.hidden_units, c.activation, c.dropout, c.batch_norm, out_dim=1) if c.hidden_units else None
        )
        self.linear = LinearTerm(meta, c.embedding_init_std, bias=False) if c.use_wide else None
        reset_linear_(self)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(categorical, numeric)
        out = self.fc(self.attention(emb).flatten(1)).squeeze(-1)
        if self.dnn is not None:
            out = out + self.dnn(emb.flatten(1)).squeeze(-1)
        if self.linear is not None:
            out = out + self.linear(categorical, numeric)
        return out
