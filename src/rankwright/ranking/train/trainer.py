"""The trainer: fits one model on in-memory tensors, checkpointing every epoch.

Why it is fast on CPU: the whole split lives in three tensors, a batch is one index
operation (no DataLoader, no per-field Python), and the optimizer uses foreach kernels.
Why a resumed run equals an uninterrupted one: the epoch's shuffle comes from a generator
seeded by (seed, epoch), and the checkpoint holds model, optimizer, the rate state, the
early-stopping state and torch's global RNG (dropout).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from rankwright.ranking import metrics as M
from rankwright.ranking.data.synthetic import bayes_metrics
from rankwright.ranking.data.types import ProcessedData, TensorSplit
from rankwright.ranking.models import build_model
from rankwright.ranking.models._base import ModelConfig, RankingModel
from rankwright.ranking.train import run_files as files
from rankwright.ranking.train.config import TrainConfig
from rankwright.ranking.train.optim import build_optimizer, learning_rate


def resolve_device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is visible")
    if config.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def _autocast(config: TrainConfig, device: torch.device) -> tuple[Callable[[], Any], bool]:
    """(context factory, needs a grad scaler) for the configured precision.

    CUDA: "auto" picks bf16 where supported, else fp16 with a grad scaler. CPU: only an
    explicit "bf16" turns autocast on (matrix multiplies in bf16, weights and optimizer in
    fp32); "auto" stays fp32 there so results do not depend on the CPU model.
    """
    mode = config.mixed_precision
    if mode == "off":
        return contextlib.nullcontext, False
    if device.type == "cpu":
        if mode != "bf16":
            return contextlib.nullcontext, False
        return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), False
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), mode == "fp16"


def _is_better(config: TrainConfig, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    if config.monitor == "auc":
        return value > best + config.min_delta
    return value < best - config.min_delta


@dataclass
class _State:
    """What changes between epochs; all of it goes into the checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0
    plateau_scale: float = 1.0
    best_value: float | None = None
    best_epoch: int = 0
    stall: int = 0
    stopped_early: bool = False
    train_samples: int = 0
    train_seconds: float = 0.0
    fit_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TrainResult:
    valid: M.Metrics
    test: M.Metrics
    bayes_test: M.Metrics | None
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_samples: int
    train_seconds: float
    fit_seconds: float
    parameters: int
    device: str
    embedding_parameters: int = 0  # of `parameters`, the embedding tables (what embedding_l2 penalizes)

    @property
    def train_samples_per_s(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else float("nan")

    @property
    def fit_samples_per_s(self) -> float:
        return self.train_samples / self.fit_seconds if self.fit_seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid.to_dict(),
            "test": self.test.to_dict(),
            "bayes_test": None if self.bayes_test is None else self.bayes_test.to_dict(),
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "train_samples": self.train_samples,
            "train_seconds": self.train_seconds,
            "fit_seconds": self.fit_seconds,
            "train_samples_per_s": self.train_samples_per_s,
            "fit_samples_per_s": self.fit_samples_per_s,
            "parameters": self.parameters,
            "embedding_parameters": self.embedding_parameters,
            "device": self.device,
        }


class Trainer:
    """Fits `model_config` on `data` with `train_config`; `run_dir` makes it resumable."""

    def __init__(
        self,
        data: ProcessedData,
        model_config: ModelConfig,
        train_config: TrainConfig,
        run_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.data = data
        self.model_config = model_config
        self.config = train_config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log = log or (lambda message: None)
        self.device = resolve_device(train_config)
        if train_config.num_threads:
            torch.set_num_threads(train_config.num_threads)
        torch.manual_seed(train_config.seed)
        self.model: RankingModel = build_model(data.meta, model_config).to(self.device)
        if train_config.base_rate_offset:
            rate = float(data.train.label.double().mean().clamp(1e-6, 1 - 1e-6))
            self.model.logit_offset.fill_(math.log(rate / (1 - rate)))
        self.optimizer = build_optimizer(self.model.parameters(), train_config, self.device)
        self.autocast, needs_scaler = _autocast(train_config, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
        self.state = _State()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self._train = self._to_device(data.train)
        self._valid = self._to_device(data.valid)

    # ---------------------------------------------------------------- helpers
    def _to_device(self, split: TensorSplit) -> TensorSplit:
        if self.device.type == "cpu":
            return split
        return TensorSplit(
            split.categorical.to(self.device), split.numeric.to(self.device), split.label.to(self.device)
        )

    def _files(self, name: str) -> Path | None:
        return None if self.run_dir is None else self.run_dir / name

    @torch.no_grad()
    def predict(self, split: TensorSplit) -> torch.Tensor:
        """Click probabilities for a whole split, on the CPU, in float64."""
        self.model.eval()
        out = []
        step = self.config.eval_batch_size
        for start in range(0, len(split), step):
            cat = split.categorical[start : start + step].to(self.device, non_blocking=True)
            num = split.numeric[start : start + step].to(self.device, non_blocking=True)
            with self.autocast():
                logits = self.model.logits(cat, num)
            out.append(torch.sigmoid(logits.float()).cpu())
        return torch.cat(out).double() if out else torch.empty(0, dtype=torch.float64)

    def evaluate(self, split: TensorSplit) -> M.Metrics:
        return M.evaluate(split.label.cpu().numpy(), self.predict(split).numpy())

    def _monitor_value(self, metrics: M.Metrics) -> float:
        return {"auc": metrics.auc, "logloss": metrics.logloss, "ne": metrics.ne}[self.config.monitor]

    def _embedding_parameters(self) -> int:
        return sum(p.numel() for p in self.model.embedding_parameters())

    def _total_steps(self) -> int:
        return self.config.epochs * math.ceil(len(self._train) / self.config.batch_size)

    # ------------------------------------------------------------- checkpoint
    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "best_weights": self.best_weights,
            "state": self.state.__dict__,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.best_weights = checkpoint["best_weights"]
        self.state = _State(**checkpoint["state"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if checkpoint.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])

    # ------------------------------------------------------------------ train
    def _train_epoch(self, heartbeat: files.Heartbeat | None) -> float:
        cfg, split, model = self.config, self._train, self.model
        model.train()
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.state.epoch)
        order = torch.randperm(len(split), generator=generator)
        if self.device.type != "cpu":
            order = order.to(self.device)
        total_steps = self._total_steps()
        loss_sum = torch.zeros((), device=self.device)
        batches = 0
        started = time.perf_counter()
        for start in range(0, len(split), cfg.batch_size):
            index = order[start : start + cfg.batch_size]
            rate = learning_rate(cfg, self.state.step, total_steps, self.state.plateau_scale)
            for group in self.optimizer.param_groups:
                group["lr"] = rate
            with self.autocast():
                logits = model.logits(split.categorical[index], split.numeric[index])
                loss = F.binary_cross_entropy_with_logits(logits.float(), split.label[index])
                total = loss + model.regularization()
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(total).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                total.backward()
            if cfg.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm, foreach=True)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            loss_sum += loss.detach()
            batches += 1
            self.state.step += 1
            self.state.train_samples += int(index.shape[0])
            if heartbeat is not None:
                heartbeat.beat(epoch=self.state.epoch + 1, step=self.state.step)
        self.state.train_seconds += time.perf_counter() - started
        mean_loss = float(loss_sum) / max(1, batches)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss is {mean_loss} in epoch {self.state.epoch + 1}")
        return mean_loss

    def fit(self) -> TrainResult:
        cfg = self.config
        metrics_log = heartbeat = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            metrics_log = files.MetricsLog(self.run_dir / files.METRICS)
            heartbeat = files.Heartbeat(self.run_dir / files.HEARTBEAT, cfg.heartbeat_seconds)
            checkpoint = files.load_checkpoint(self.run_dir / files.CHECKPOINT)
            if checkpoint is not None:
                self._restore(checkpoint)
                metrics_log.truncate_after_epoch(self.state.epoch)
                metrics_log.append("resumed", from_epoch=self.state.epoch)
                self.log(f"resumed after epoch {self.state.epoch}")
            else:
                metrics_log.append(
                    "start",
                    model=self.model_config.name,
                    parameters=sum(p.numel() for p in self.model.parameters()),
                    embedding_parameters=self._embedding_parameters(),
                    device=str(self.device),
                    train_rows=len(self._train),
                    valid_rows=len(self._valid),
                )
            heartbeat.beat(force=True, epoch=self.state.epoch, step=self.state.step)

        while self.state.epoch < cfg.epochs and not self.state.stopped_early:
            epoch_started = time.perf_counter()
            train_loss = self._train_epoch(heartbeat)
            valid = self.evaluate(self._valid)
            value = self._monitor_value(valid)
            improved = _is_better(cfg, value, self.state.best_value)
            if improved:
                self.state.best_value, self.state.best_epoch, self.state.stall = value, self.state.epoch + 1, 0
                if cfg.restore_best:
                    self.best_weights = copy.deepcopy(self.model.state_dict())
            else:
                self.state.stall += 1
                if cfg.schedule == "plateau":
                    floor = cfg.min_learning_rate / cfg.learning_rate
                    self.state.plateau_scale = max(self.state.plateau_scale * cfg.plateau_factor, floor)
                if cfg.early_stopping_patience is not None and self.state.stall >= cfg.early_stopping_patience:
                    self.state.stopped_early = True
            self.state.epoch += 1
            self.state.fit_seconds += time.perf_counter() - epoch_started
            record = {
                "epoch": self.state.epoch,
                "train_loss": train_loss,
                "valid": valid.to_dict(),
                "learning_rate": self.optimizer.param_groups[0]["lr"],
                "improved": improved,
                "train_samples": self.state.train_samples,
                "train_seconds": self.state.train_seconds,
            }
            self.state.history.append(record)
            self.log(
                f"epoch {self.state.epoch}: train loss {train_loss:.5f}  valid auc {valid.auc:.5f}"
                f"  logloss {valid.logloss:.5f}  ne {valid.ne:.5f}{'  *' if improved else ''}"
            )
            if self.run_dir is not None:
                metrics_log.append("epoch", **record)
                files.save_checkpoint(self.run_dir / files.CHECKPOINT, self._checkpoint_state())
                heartbeat.beat(force=True, epoch=self.state.epoch, step=self.state.step)

        if cfg.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        result = TrainResult(
            valid=self.evaluate(self._valid),
            test=self.evaluate(self.data.test),
            bayes_test=None if self.data.test.true_probability is None else bayes_metrics(self.data.test),
            best_epoch=self.state.best_epoch,
            epochs_run=self.state.epoch,
            stopped_early=self.state.stopped_early,
            train_samples=self.state.train_samples,
            train_seconds=self.state.train_seconds,
            fit_seconds=self.state.fit_seconds,
            parameters=sum(p.numel() for p in self.model.parameters()),
            device=str(self.device),
            embedding_parameters=self._embedding_parameters(),
        )
        if self.run_dir is not None:
            metrics_log.append("result", **result.to_dict())
            files.atomic_write_json(self.run_dir / files.RESULT, result.to_dict())
            heartbeat.beat(force=True, epoch=self.state.epoch, step=self.state.step, finished=True)
        return result
