"""DCNv2 (Deep & Cross Network v2).

Mirrors FuxiCTR's DCNv2: x0 = flattened field embeddings; the cross network is CrossNetV2
(or CrossNetMix with ``use_low_rank_mixture``); ``parallel`` = Linear(concat(cross(x0),
MLP(x0))), ``stacked`` = Linear(MLP(cross(x0))), ``crossnet_only`` = Linear(cross(x0)). The
MLP is an MLP_Block without an output layer, so its last hidden layer keeps BN, activation
and dropout before the final Linear. FuxiCTR's extra ``stacked_parallel`` is not offered.
"""

from __future__ import annotations

import torch
from torch import nn

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import RankingModel, register
from rankwright.ranking.models.configs import DCNv2Config
from rankwright.ranking.models.layers import MLP, CrossNetMix, CrossNetV2, FeatureEmbedding, reset_linear_


@register("dcnv2", DCNv2Config)
class DCNv2(RankingModel):
    def __init__(self, meta: FeatureMeta, config: DCNv2Config) -> None:
        super().__init__(meta, config)
        c = config
        self.structure = c.structure
        dim = meta.num_fields * c.embedding_dim
        self.embedding = FeatureEmbedding(meta, c.embedding_dim, c.embedding_init_std)
        self.cross: nn.Module = (
            CrossNetMix(dim, c.num_cross_layers, c.low_rank, c.num_experts)
            if c.use_low_rank_mixture
            else CrossNetV2(dim, c.num_cross_layers)
        )
        self.dnn = (
            None
            if c.structure == "crossnet_only"
            else MLP(dim, c.hidden_units, c.activation, c.dropout, c.batch_norm)
        )
        final = {"parallel": dim + c.hidden_units[-1], "stacked": c.hidden_units[-1], "crossnet_only": dim}
        self.fc = nn.Linear(final[c.structure], 1)
        reset_linear_(self)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        x0 = self.embedding(categorical, numeric).flatten(1)
        cross = self.cross(x0)
        if self.structure == "parallel":
            out = torch.cat([cross, self.dnn(x0)], dim=1)
        elif self.structure == "stacked":
            out = self.dnn(cross)
        else:
            out = cross
        return self.fc(out).squeeze(-1)
