"""The model zoo.

The typed configs (``configs``: one per model, ``MODEL_CONFIGS`` by name and
``ModelConfigUnion``, the union discriminated on ``name``) are torch-free and re-exported
here. The PyTorch side (``REGISTRY``, ``RankingModel``, ``build_model``, ``register``) is
imported on first use, which also registers every built-in model; so validating a config
or reading the knob schema never loads PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rankwright.ranking.models.configs import (
    MODEL_CONFIGS,
    AutoIntPlusConfig,
    DCNv2Config,
    DLRMConfig,
    DeepFMConfig,
    DNNConfig,
    FinalMLPConfig,
    FMConfig,
    LRConfig,
    ModelConfig,
    ModelConfigUnion,
)

if TYPE_CHECKING:
    from rankwright.ranking.models._base import REGISTRY, RankingModel, build_model, register

_BUILTIN_MODULES = ("autoint", "dcnv2", "dlrm", "dnn", "finalmlp", "linear")
_TORCH_NAMES = ("REGISTRY", "RankingModel", "build_model", "register")


def __getattr__(name: str) -> Any:
    """``REGISTRY`` and the other PyTorch names: import every built-in model, then hand it over."""
    if name not in _TORCH_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    base = importlib.import_module(f"{__name__}._base")
    globals().update({n: getattr(base, n) for n in _TORCH_NAMES})
    return globals()[name]


__all__ = [
    "MODEL_CONFIGS",
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
