"""Optimizers and the learning-rate rule (warm-up x decay x plateau scale)."""

from __future__ import annotations

import math

import torch

from rankwright.ranking.train.config import TrainConfig


def build_optimizer(params, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    # foreach kernels are the fastest correct choice on CPU; fused where CUDA offers it.
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, **fast)
    return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay, **fast)


def learning_rate(config: TrainConfig, step: int, total_steps: int, plateau_scale: float) -> float:
    """The rate for optimizer step `step` (0-based) of `total_steps`."""
    base = config.learning_rate * plateau_scale
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule in ("plateau", "constant"):
        decay = 1.0
    else:
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if config.schedule == "cosine" else 1.0 - progress
    value = base * warm * decay
    if config.schedule in ("cosine", "linear") and warm >= 1.0:
        value = max(min(config.min_learning_rate, base), value)
    return value
