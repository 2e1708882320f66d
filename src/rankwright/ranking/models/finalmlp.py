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

import torch

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import RankingModel, register
from rankwright.ranking.models.configs import FinalMLPConfig
from rankwright.ranking.models.layers import (
    MLP,
    FeatureEmbedding,
    FeatureSelection,
    InteractionAggregation,
    reset_linear_,
)

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
