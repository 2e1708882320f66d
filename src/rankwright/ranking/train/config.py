"""Typed training knobs. Every field has a type and a range so the agent can read them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """How a model is fitted: optimizer, schedule, batch, clipping, stopping, precision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    optimizer: Literal["adam", "adamw", "adagrad"] = Field("adam", description="optimizer")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="peak learning rate")
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="optimizer weight decay (decoupled for adamw)"
    )
    batch_size: int = Field(4096, ge=1, le=1_048_576, description="training rows per step")
    epochs: int = Field(30, ge=1, le=1000, description="maximum number of epochs")
    schedule: Literal["plateau", "constant", "cosine", "linear"] = Field(
        "plateau",
        description="plateau: multiply the rate by plateau_factor when validation stalls; "
        "cosine/linear: decay to min_learning_rate over all epochs",
    )
    warmup_steps: int = Field(0, ge=0, le=1_000_000, description="linear warm-up steps")
    plateau_factor: float = Field(0.1, gt=0.0, lt=1.0, description="rate multiplier on a stall")
    min_learning_rate: float = Field(1e-6, ge=0.0, le=1.0, description="floor of any decay")
    grad_clip_norm: float | None = Field(
        10.0, gt=0.0, le=1e6, description="clip the global gradient norm (null: off)"
    )
    base_rate_offset: bool = Field(
        True,
        description="start every model at the training click rate (a fixed logit offset); "
        "off reproduces FuxiCTR, whose models start at p = 0.5",
    )
    early_stopping_patience: int | None = Field(
        2, ge=1, le=1000, description="stop after this many epochs without improvement (null: off)"
    )
    monitor: Literal["auc", "logloss", "ne"] = Field(
        "auc", description="validation metric for early stopping and best weights"
    )
    min_delta: float = Field(1e-6, ge=0.0, le=1.0, description="smallest change that counts")
    restore_best: bool = Field(True, description="evaluate the best epoch's weights, not the last")
    mixed_precision: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto",
        description="autocast: on CUDA auto = bf16 where supported, else fp16 with loss scaling; "
        "on CPU only bf16 applies (auto and fp16 stay fp32 there)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    num_threads: int | None = Field(
        None, ge=1, le=512, description="CPU threads for torch (null: torch's default)"
    )
    eval_batch_size: int = Field(65536, ge=1, le=4_194_304, description="rows per evaluation batch")
    seed: int = Field(2024, ge=0, le=2**31 - 1, description="seed of init, shuffling and dropout")
    heartbeat_seconds: float = Field(5.0, gt=0.0, le=3600.0, description="heartbeat period")
