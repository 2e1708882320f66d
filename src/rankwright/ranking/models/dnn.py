"""DNN and DeepFM.

Mirrors FuxiCTR: ``DNN`` = field embeddings flattened -> MLP_Block(..., output_dim=1);
``DeepFM`` = FactorizationMachine (its own 1-d LR table with bias + FM second-order term on
the shared embeddings) + the same MLP over the flattened shared embeddings, summed as logits.
"""

from __future__ import annotations

import torch

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import RankingModel, register
from rankwright.ranking.models.configs import DeepFMConfig, DNNConfig
from rankwright.ranking.models.layers import MLP, FeatureEmbedding, LinearTerm, fm_interaction, reset_linear_


@register("dnn", DNNConfig)
class DNN(RankingModel):
    def __init__(self, meta: FeatureMeta, config: DNNConfig) -> None:
        super().__init__(meta, config)
        c = config
        self.embedding = FeatureEmbedding(meta, c.embedding_dim, c.embedding_init_std)
        self.mlp = MLP(meta.num_fields * c.embedding_dim, c.hidden_units, c.activation, c.dropout, c.batch_norm, 1)
        reset_linear_(self)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embedding(categorical, numeric).flatten(1)).squeeze(-1)


@register("deepfm", DeepFMConfig)
class DeepFM(RankingModel):
    def __init__(self, meta: FeatureMeta, config: DeepFMConfig) -> None:
        super().__init__(meta, config)
        c = config
        self.embedding = FeatureEmbedding(meta, c.embedding_dim, c.embedding_init_std)
        self.linear = LinearTerm(meta, c.embedding_init_std)
        self.mlp = MLP(meta.num_fields * c.embedding_dim, c.hidden_units, c.activation, c.dropout, c.batch_norm, 1)
        reset_linear_(self)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(categorical, numeric)
        deep = self.mlp(emb.flatten(1)).squeeze(-1)
        return self.linear(categorical, numeric) + fm_interaction(emb) + deep
