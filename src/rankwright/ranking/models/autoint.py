"""AutoInt+ (AutoInt with a parallel DNN).

Mirrors FuxiCTR's AutoInt: stacked multi-head self-attention layers over the field
embeddings (first layer reads ``embedding_dim``, later ones ``attention_dim``), flattened ->
Linear(1); plus, when ``hidden_units`` is non-empty, an MLP(..., 1) over the flattened
embeddings; plus an optional first-order LR term without bias (``use_wide``). ``dropout``
is FuxiCTR's ``net_dropout``: it applies both to the DNN and to the attention weights.
"""

from __future__ import annotations

import torch
from torch import nn

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import RankingModel, register
from rankwright.ranking.models.configs import AutoIntPlusConfig
from rankwright.ranking.models.layers import MLP, FeatureEmbedding, LinearTerm, MultiHeadSelfAttention, reset_linear_


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
