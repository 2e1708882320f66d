"""Every built-in model's typed config, the name -> config mapping and the union over them.

Torch-free on purpose: ``rankwright.ranking.config`` (validating a run config) and
``rankwright.ranking.knobs`` (the knob schema) read only this module, so neither loads
PyTorch. The model modules import their config from here; ``REGISTRY`` in ``_base`` pairs
each config with its module for the trainer.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import Field, model_validator

from rankwright.ranking.models._config import (
    Activation,
    DeepConfig,
    ModelConfig,
    Width,
    activation,
    batch_norm,
    dropout,
    hidden_units,
)


class LRConfig(ModelConfig):
    """Logistic regression over one-hot features (``embedding_dim`` is unused)."""

    name: Literal["lr"] = "lr"


class FMConfig(ModelConfig):
    """Factorization machine: LR term + pairwise inner products of field embeddings."""

    name: Literal["fm"] = "fm"


class DNNConfig(DeepConfig):
    """Plain MLP over concatenated field embeddings."""

    name: Literal["dnn"] = "dnn"


class DeepFMConfig(DeepConfig):
    """LR + FM + DNN sharing the field embeddings, logits summed."""

    name: Literal["deepfm"] = "deepfm"


class DCNv2Config(DeepConfig):
    """Cross network v2 with an optional DNN, parallel or stacked."""

    name: Literal["dcnv2"] = "dcnv2"
    structure: Literal["parallel", "stacked", "crossnet_only"] = Field(
        "parallel",
        description="parallel: concat(cross(x0), dnn(x0)) -> Linear; stacked: dnn(cross(x0)) -> "
        "Linear; crossnet_only: cross(x0) -> Linear (the DNN knobs are then unused)",
    )
    num_cross_layers: int = Field(4, ge=1, le=16, description="number of cross layers")
    use_low_rank_mixture: bool = Field(
        False, description="use the low-rank mixture-of-experts cross network (DCN-Mix) instead of full rank"
    )
    low_rank: int = Field(32, ge=1, le=1024, description="rank of each expert (low-rank mixture only)")
    num_experts: int = Field(4, ge=1, le=16, description="number of experts (low-rank mixture only)")
    dropout: float = dropout(0.4)


class DLRMConfig(ModelConfig):
    """Bottom MLP over numeric fields, dot (or concat) interaction, top MLP."""

    name: Literal["dlrm"] = "dlrm"
    interaction: Literal["dot", "cat"] = Field(
        "dot", description="dot: pairwise inner products of field vectors plus the dense vector; cat: flatten all"
    )
    bottom_hidden_units: tuple[Width, ...] = hidden_units(
        (64, 64, 64), "the bottom MLP over numeric fields (its output width is embedding_dim)", allow_empty=True
    )
    top_hidden_units: tuple[Width, ...] = hidden_units((400, 400, 400), "the top MLP")
    activation: Activation = activation("both MLPs")
    bottom_dropout: float = dropout(0.0, "the bottom MLP")
    top_dropout: float = dropout(0.4, "the top MLP")
    batch_norm: bool = batch_norm(True, "both MLPs")


class AutoIntPlusConfig(ModelConfig):
    """Self-attentive field interactions plus a parallel DNN."""

    name: Literal["autoint_plus"] = "autoint_plus"
    attention_layers: int = Field(3, ge=1, le=12, description="number of stacked self-attention layers")
    num_heads: int = Field(2, ge=1, le=16, description="attention heads per layer (must divide attention_dim)")
    attention_dim: int = Field(64, ge=1, le=1024, description="output width of every attention layer")
    use_residual: bool = Field(True, description="add a (projected) residual around each attention layer")
    use_scale: bool = Field(False, description="scale attention scores by 1/sqrt(head width)")
    layer_norm: bool = Field(False, description="LayerNorm at the end of each attention layer")
    use_wide: bool = Field(False, description="add a first-order (LR) term")
    hidden_units: tuple[Width, ...] = hidden_units((400, 400, 400), "the parallel DNN", allow_empty=True)
    activation: Activation = activation("the parallel DNN")
    dropout: float = dropout(0.2, "the parallel DNN (also applied to attention weights)")
    batch_norm: bool = batch_norm(True, "the parallel DNN")

    @model_validator(mode="after")
    def _heads_divide(self) -> "AutoIntPlusConfig":
        if self.attention_dim % self.num_heads:
            raise ValueError(f"attention_dim={self.attention_dim} must be divisible by num_heads={self.num_heads}")
        return self


FieldName = Annotated[str, Field(min_length=1, max_length=200)]


class FinalMLPConfig(ModelConfig):
    """Two-stream MLP with feature selection gates and bilinear fusion."""

    name: Literal["finalmlp"] = "finalmlp"
    mlp1_hidden_units: tuple[Width, ...] = hidden_units((400,), "stream 1")
    mlp1_activation: Activation = activation("stream 1")
    mlp1_dropout: float = dropout(0.4, "stream 1")
    mlp1_batch_norm: bool = batch_norm(True, "stream 1")
    mlp2_hidden_units: tuple[Width, ...] = hidden_units((100,), "stream 2")
    mlp2_activation: Activation = activation("stream 2")
    mlp2_dropout: float = dropout(0.4, "stream 2")
    mlp2_batch_norm: bool = batch_norm(True, "stream 2")
    use_fs: bool = Field(True, description="gate each stream's input with its own feature-selection weights")
    fs_hidden_units: tuple[Width, ...] = hidden_units((400,), "each feature-selection gate MLP", allow_empty=True)
    fs1_context: tuple[FieldName, ...] = Field(
        (), max_length=64, description="feature names whose embeddings drive stream 1's gate (empty: a learned vector)"
    )
    fs2_context: tuple[FieldName, ...] = Field(
        (), max_length=64, description="feature names whose embeddings drive stream 2's gate (empty: a learned vector)"
    )
    num_heads: int = Field(
        5, ge=1, le=64, description="heads of the bilinear fusion (must divide both streams' last widths)"
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> "FinalMLPConfig":
        for units in (self.mlp1_hidden_units, self.mlp2_hidden_units):
            if units[-1] % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} must divide the last stream widths, got {units[-1]}")
        return self


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
"""Any model config, told apart by ``name``: for reading one from a dict, JSON or YAML."""

MODEL_CONFIGS: dict[str, type[ModelConfig]] = {
    cls.model_fields["name"].default: cls for cls in get_args(get_args(ModelConfigUnion)[0])
}
"""Model name -> its config class, for every built-in model (the same pairs as ``REGISTRY``)."""

__all__ = [
    "MODEL_CONFIGS",
    "AutoIntPlusConfig",
    "DCNv2Config",
    "DLRMConfig",
    "DNNConfig",
    "DeepConfig",
    "DeepFMConfig",
    "FMConfig",
    "FinalMLPConfig",
    "LRConfig",
    "ModelConfig",
    "ModelConfigUnion",
]
