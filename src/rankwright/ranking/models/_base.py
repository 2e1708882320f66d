"""The model contract: a typed config, a module that maps features to logits, a registry.

Each model declares its knobs as a frozen Pydantic config with types and ranges, so the
agent can read the knob schema and a config error names the field and what is allowed. The
configs live apart from PyTorch, in ``_config`` (``ModelConfig``) and ``configs``.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

from rankwright.ranking.data.types import FeatureMeta
from rankwright.ranking.models._config import ModelConfig


class RankingModel(nn.Module):
    """Maps a batch of (categorical ids, numeric values) to click logits of shape [B]."""

    config: ModelConfig

    def __init__(self, meta: FeatureMeta, config: ModelConfig) -> None:
        super().__init__()
        self.meta = meta
        self.config = config
        # A constant added to every logit; the trainer may set it to logit(train click
        # rate) so that training starts at the base rate instead of p = 0.5.
        self.register_buffer("logit_offset", torch.zeros(()))

    def logits(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return self(categorical, numeric) + self.logit_offset

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters that ``embedding_l2`` applies to (every FeatureEmbedding table)."""
        from rankwright.ranking.models.layers import FeatureEmbedding

        return [p for m in self.modules() if isinstance(m, FeatureEmbedding) for p in m.parameters()]

    def regularization(self) -> torch.Tensor:
        """The penalty added to the training loss, per step."""
        total = torch.zeros((), device=next(self.parameters()).device)
        emb = self.embedding_parameters()
        if self.config.embedding_l2 > 0:
            for p in emb:
                total = total + 0.5 * self.config.embedding_l2 * p.pow(2).sum()
        if self.config.net_l2 > 0:
            emb_ids = {id(p) for p in emb}
            for p in self.parameters():
                if id(p) not in emb_ids:
                    total = total + 0.5 * self.config.net_l2 * p.pow(2).sum()
        return total


_C = TypeVar("_C", bound=type[RankingModel])

REGISTRY: dict[str, tuple[type[ModelConfig], type[RankingModel]]] = {}


def register(name: str, config_cls: type[ModelConfig]) -> Callable[[_C], _C]:
    """Class decorator: ``@register("dcnv2", DCNv2Config)``."""

    def wrap(model_cls: _C) -> _C:
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        REGISTRY[name] = (config_cls, model_cls)
        return model_cls

    return wrap


def build_model(meta: FeatureMeta, config: ModelConfig) -> RankingModel:
    try:
        _, model_cls = REGISTRY[config.name]
    except KeyError:
        raise ValueError(f"unknown model {config.name!r}; known: {sorted(REGISTRY)}") from None
    return model_cls(meta, config)
