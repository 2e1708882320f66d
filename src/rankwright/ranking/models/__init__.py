"""The model zoo: importing this package registers every built-in model.

``ModelConfigUnion`` is the discriminated union (on ``name``) of all model configs, for
reading a model config from a dict, JSON or YAML.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from rankwright.ranking.models._base import REGISTRY, ModelConfig, RankingModel, build_model, register
from rankwright.ranking.models.autoint import AutoIntPlusConfig
from rankwright.ranking.models.dcnv2 import DCNv2Config
from rankwright.ranking.models.dlrm import DLRMConfig
from rankwright.ranking.models.dnn import DeepFMConfig, DNNConfig
from rankwright.ranking.models.finalmlp import FinalMLPConfig
from rankwright.ranking.models.linear import FMConfig, LRConfig

ModelConfigUnion = Annotated[
    Union[
        LRConfig,
        FMConfig,
        DNNConfig,
        DeepFMConfig,
        DCNv2Config,
        DLRMConfig,
        AutoIntPlusConfig,
        FinalMLPConfig,
    ],
    Field(discriminator="name"),
]

__all__ = [
    "REGISTRY",
    "AutoIntPlusConfig",
    "DCNv2Config",
    "DLRMConfig",
    "DNNConfig",
    "DeepFMConfig",
    "FMConfig",
    "FinalMLPConfig",
    "LRConfig",
    "ModelConfig",
    "ModelConfigUnion",
    "RankingModel",
    "build_model",
    "register",
]
