"""The executor contract: where runs happen, seen from the agent.

An executor starts a run for an idempotency key and afterwards only *observes and reports*:
it never changes the agent's state. Every answer is derived from what the executor itself
holds (run folders, a scheduler's queue), never from a copy kept elsewhere, so a fresh
process that builds the same executor sees the same runs.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType


class ExecutorFull(RuntimeError):
    """Raised by ``submit`` when the run cannot start now (parallelism limit, no free GPU).

    Nothing was claimed: the same key may be submitted again later.
    """


@dataclass(frozen=True)
class RunSpec:
    """What to run.

    ``command`` runs with ``run_dir`` as its working folder (created if missing) and with
    the executor's environment plus ``env``. ``gpus`` is how many GPUs the run wants
    (0: CPU). ``on_exit``, when given, is a command run after the run ended and its result
    is recorded (the agent uses ``rankwright wake``); it is not run for a cancelled run.
    ``delay_s`` holds the start back (a retry's back-off): the run is in flight meanwhile,
    so no agent process needs to stay up to start it later.
    """

    command: tuple[str, ...]
    run_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    gpus: int = 0
    on_exit: tuple[str, ...] | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("RunSpec.command must not be empty")
        if self.delay_s < 0:
            raise ValueError(f"RunSpec.delay_s must be >= 0, got {self.delay_s}")
        if self.gpus < 0:
            raise ValueError(f"RunSpec.gpus must be >= 0, got {self.gpus}")
        object.__setattr__(self, "command", tuple(str(c) for c in self.command))
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "env", MappingProxyType({str(k): str(v) for k, v in self.env.items()}))
        if self.on_exit is not None:
            object.__setattr__(self, "on_exit", tuple(str(c) for c in self.on_exit))


class RunStatus(enum.Enum):
    PENDING = "pending"  # claimed, not started yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exit code 0
    FAILED = "failed"  # non-zero exit code
    CANCELLED = "cancelled"  # ended by ``cancel``
    LOST = "lost"  # the run's supervisor died without recording how the run ended

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


@dataclass(frozen=True)
class RunInfo:
    """One observation of a run. Times are timezone-aware UTC; usage is of the command's
    process tree (CPU seconds user+system, peak resident set of its largest process)."""

    handle: str
    status: RunStatus
    exit_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cpu_seconds: float | None = None
    max_rss_mb: float | None = None
    last_heartbeat: datetime | None = None


class Executor(ABC):
    """Runs commands for idempotency keys.

    Contract:
    - ``submit(key, spec)`` starts at most one run per key, ever: submitting a key again,
      from this process or any other, also concurrently, returns the first handle and
      starts nothing. It raises ``ExecutorFull`` (claiming nothing) when the run cannot
      start now. The run outlives the process that submitted it.
    - ``status(handle)`` is derived from the executor's own records on each call; a run
      whose supervisor vanished without a record reads ``LOST``. Unknown handles raise
      ``KeyError``.
    - ``find(key)`` returns the handle a key was submitted under, or None; the agent uses
      it for an intent whose handle was never recorded.
    - ``cancel(handle)`` ends a run and its whole process tree; a finished run is left as it
      is. ``logs(handle)`` returns the last lines of the command's output.
    All methods are safe to call from several processes at once.
    """

    @abstractmethod
    def submit(self, key: str, spec: RunSpec) -> str: ...

    @abstractmethod
    def status(self, handle: str) -> RunInfo: ...

    @abstractmethod
    def find(self, key: str) -> str | None: ...

    @abstractmethod
    def cancel(self, handle: str) -> None: ...

    @abstractmethod
    def logs(self, handle: str, tail_lines: int = 100) -> str: ...

    def fetch(self, handle: str, run_dir: Path) -> None:
        """Bring the run's files (result, metrics, heartbeat) into `run_dir` on this host
        before they are read. Runs that write there themselves need nothing (the default);
        a cluster whose hosts share no filesystem with the agent's copies them."""

    def change_paths(self) -> list[Path]:
        """Folders whose contents change when a run ends, for a waiting agent to watch.

        An executor without such a place returns none (the default); the agent then
        wakes on its timer alone, which is always correct, only slower.
        """
        return []


def thread_env(max_parallel: int) -> dict[str, str]:
    """Runs side by side share the cores: each gets its share as OMP/MKL threads
    (oversubscribed thread pools made an epoch 7x slower)."""
    import os

    n = str(max(1, (os.cpu_count() or 1) // max_parallel))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
