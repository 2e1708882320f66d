"""DLRM.

Mirrors FuxiCTR's DLRM: categorical fields are embedded; numeric fields are *not* embedded
but go through a bottom MLP whose output layer (width ``embedding_dim``) also has the
activation; that dense vector joins the field embeddings, then ``dot`` takes the pairwise
inner products (upper triangle) concatenated with the dense vector, or ``cat`` flattens all
vectors; a top MLP maps to the logit. Without numeric fields the bottom MLP is skipped.
"""

from __future__ import annotations

import torch
from torch import nn

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._base import RankingModel, register
from rankwright.ranking.models.configs import DLRMConfig
from rankwright.ranking.models.layers import MLP, DotInteraction, FeatureEmbedding, make_activation, reset_linear_


@register("dlrm", DLRMConfig)
class DLRM(RankingModel):
    def __init__(self, meta: FeatureMeta, config: DLRMConfig) -> None:
        super().__init__(meta, config)
        c = config
        self.interaction = c.interaction
        categorical_only = FeatureMeta(meta.categorical_names, meta.cardinalities, ())
        self.embedding = FeatureEmbedding(categorical_only, c.embedding_dim, c.embedding_init_std)
        self.has_dense = meta.num_numeric > 0
        self.bottom = (
            nn.Sequential(
                MLP(meta.num_numeric, c.bottom_hidden_units, c.activation, c.bottom_dropout, c.batch_norm,
                    out_dim=c.embedding_dim),
                make_activation(c.activation, c.embedding_dim),
            )
            if self.has_dense
            else None
        )
        n_vectors = meta.num_categorical + int(self.has_dense)
        if c.interaction == "dot":
            if n_vectors < 2:
                raise ValueError("dlrm with interaction='dot' needs at least two field vectors")
            self.dot = DotInteraction(n_vectors)
            top_in = self.dot.out_dim + c.embedding_dim * int(self.has_dense)
        else:
            self.dot = None
            top_in = n_vectors * c.embedding_dim
        self.top = MLP(top_in, c.top_hidden_units, c.activation, c.top_dropout, c.batch_norm, out_dim=1)
        reset_linear_(self)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(categorical, numeric)
        if self.bottom is not None:
            dense = self.bottom(numeric)
            vectors = torch.cat([vectors, dense.unsqueeze(1)], dim=1)
        if self.dot is None:
            inter = vectors.flatten(1)
        else:
            inter = self.dot(vectors)
            if self.bottom is not None:
                inter = torch.cat([inter, dense], dim=1)
        return self.top(inter).squeeze(-1)
