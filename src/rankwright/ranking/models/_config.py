"""The config every model shares and the knob definitions several configs reuse.

Torch-free on purpose, like ``configs``: validating a run config or listing the knob
schema must not load PyTorch (a ``rankwright wake`` stays light).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """Knobs every model shares. Subclasses add their own and fix ``name``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    embedding_dim: int = Field(10, ge=1, le=512, description="width of every field embedding")
    embedding_l2: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="L2 penalty (lambda/2)*||E||^2 on the whole embedding table each step "
        "(FuxiCTR's embedding_regularizer)",
    )
    net_l2: float = Field(0.0, ge=0.0, le=10.0, description="L2 penalty on non-embedding weights")
    embedding_init_std: float = Field(1e-4, gt=0.0, le=1.0, description="normal init std of embeddings")


Activation = Literal["relu", "gelu", "silu", "prelu"]
Width = Annotated[int, Field(ge=1, le=8192)]


def hidden_units(default: tuple[int, ...], what: str = "the DNN", allow_empty: bool = False):  # noqa: ANN201
    """A tuple-of-widths field, e.g. ``(400, 400, 400)``."""
    return Field(
        default,
        min_length=0 if allow_empty else 1,
        max_length=16,
        description=f"hidden layer widths of {what}, input side first"
        + (" (empty: no such tower)" if allow_empty else ""),
    )


def activation(what: str = "the DNN"):  # noqa: ANN201
    return Field("relu", description=f"hidden activation of {what}")


def dropout(default: float, what: str = "the DNN"):  # noqa: ANN201
    return Field(default, ge=0.0, lt=1.0, description=f"dropout rate after each hidden layer of {what}")


def batch_norm(default: bool = True, what: str = "the DNN"):  # noqa: ANN201
    return Field(default, description=f"BatchNorm1d after each hidden Linear of {what}")


class DeepConfig(ModelConfig):
    """Knobs of a model with one MLP tower (FuxiCTR/BARS frappe_x1 defaults)."""

    hidden_units: tuple[Width, ...] = hidden_units((400, 400, 400))
    activation: Activation = activation()
    dropout: float = dropout(0.2)
    batch_norm: bool = batch_norm(True)
