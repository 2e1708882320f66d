"""One training run end to end: config -> data -> trainer -> run folder.

A run folder belongs to one configuration. Starting the same configuration again in the
same folder resumes from its last checkpoint (or returns the finished result); a different
configuration there is refused, so a resumed run can never silently mix two settings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch
import yaml

from rankwright.ranking.config import ConfigError, RunConfig
from rankwright.ranking.data import load_data
from rankwright.ranking.train import run_files as files
from rankwright.ranking.train.trainer import Trainer, TrainResult


def default_run_dir(config: RunConfig, root: Path = Path(".rankwright/runs")) -> Path:
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.model.name}"


def check_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Refuse a folder that holds another configuration's run."""
    stored = run_dir / files.CONFIG
    if stored.exists():
        previous = yaml.safe_load(stored.read_text())
        if previous != config.to_yaml_dict():
            raise ConfigError(
                f"{run_dir}: this run folder holds a run of a different configuration; "
                "choose another --run-dir (or delete the folder to start over)"
            )


def train_from_config(
    config: RunConfig,
    run_dir: Path,
    *,
    base_dir: Path = Path("."),
    cache_dir: Path | None = Path(".rankwright/cache"),
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train (or resume) and return the result dictionary written to `result.json`."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, config)
    finished = run_dir / files.RESULT
    if finished.exists():
        return json.loads(finished.read_text())
    if config.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' was asked for but no CUDA device is visible (use 'auto' or 'cpu')")
    data = load_data(config.data, base_dir=base_dir, cache_dir=cache_dir)
    try:  # some model settings can only be checked against the data (e.g. FinalMLP context fields)
        trainer = Trainer(data, config.model, config.train, run_dir=run_dir, log=log)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / files.CONFIG
    if not config_path.exists():
        files.atomic_write_bytes(config_path, yaml.safe_dump(config.to_yaml_dict(), sort_keys=False).encode())
    result: TrainResult = trainer.fit()
    return result.to_dict()
