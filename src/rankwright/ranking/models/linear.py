"""Shallow baselines: logistic regression and the factorization machine.

Mirrors FuxiCTR's ``LR`` (sum of 1-d feature weights + bias) and ``FM`` (that LR term plus
the FM second-order term of the ``embedding_dim`` embeddings).
"""

from __future__ import annotations

import torch

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import RankingModel, register
from rankwright.ranking.models.configs import FMConfig, LRConfig
from rankwright.ranking.models.layers import FeatureEmbedding, LinearTerm, fm_interaction


@register("lr", LRConfig)
class LR(RankingModel):
    def __init__(self, meta: FeatureMeta, config: LRConfig) -> None:
        super().__init__(meta, config)
        self.linear = LinearTerm(meta, config.embedding_init_std)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return self.linear(categorical, numeric)


@register("fm", FMConfig)
class FM(RankingModel):
    def __init__(self, meta: FeatureMeta, config: FMConfig) -> None:
        super().__init__(meta, config)
        self.embedding = FeatureEmbedding(meta, config.embedding_dim, config.embedding_init_std)
        self.linear = LinearTerm(meta, config.embedding_init_std)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(categorical, numeric)
        return self.linear(categorical, numeric) + fm_interaction(emb)
