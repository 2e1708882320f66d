"""The files a run leaves in its folder for people and for the agent.

- `metrics.jsonl`: one JSON object per line (`start`, `epoch`, `resumed`, `result`).
- `heartbeat.json`: rewritten atomically every few seconds; a stale one means a hung run.
- `result.json`: the final result, written last; its presence means the run finished.
- `checkpoints/last.pt`: everything needed to resume after a kill.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

METRICS = "metrics.jsonl"
HEARTBEAT = "heartbeat.json"
RESULT = "result.json"
CONFIG = "config.yaml"
CHECKPOINT = "checkpoints/last.pt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


class MetricsLog:
    """Append-only JSON lines; on resume, lines past the checkpoint are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line torn by a kill is the last one
        return records

    def truncate_after_epoch(self, epoch: int) -> None:
        kept = [r for r in self.read() if not (r.get("event") == "epoch" and r.get("epoch", 0) > epoch)]
        kept = [r for r in kept if r.get("event") != "result"]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def append(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": time.time(), **fields}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()


class Heartbeat:
    def __init__(self, path: Path, period: float) -> None:
        self.path = path
        self.period = period
        self._last = 0.0

    def beat(self, force: bool = False, **fields: Any) -> None:
        now = time.time()
        if force or now - self._last >= self.period:
            self._last = now
            atomic_write_json(self.path, {"time": now, "pid": os.getpid(), **fields})
