"""Training runs as every method gets them: through the local executor, with the cores split
between the runs side by side, charged the CPU seconds of the run's process tree.

Rankwright's campaigns charge their runs the same way (the executor's measured CPU time),
so a baseline-run equivalent means the same compute on both sides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rankwright.executors import ExecutorFull, LocalExecutor, RunSpec, RunStatus, thread_env
from rankwright.targets import Target

POLL_S = 0.5


@dataclass
class Finished:
    """One ended run: its status, its compute and what it measured."""

    key: str
    status: str
    cpu_seconds: float
    wall_seconds: float
    objective: float | None
    test: Mapping[str, float]
    bayes_ne: float | None
    curve: list[float]
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Runner:
    """Submits keyed runs of one target and reads them back; a key already run in this
    folder (before a stop) is found again and reused, never run twice."""

    def __init__(self, target: Target, folder: Path, max_parallel: int) -> None:
        self.target = target
        self.folder = Path(folder)
        self.executor = LocalExecutor(self.folder, max_parallel)
        # one processed-data cache per work folder, as a campaign's runs share theirs: every
        # method's runs are charged the same way
        self.env = {**thread_env(max_parallel), "RANKWRIGHT_CACHE_DIR": str(self.folder / "cache")}
        self.reused_at_start = {path.parent.name for path in self.folder.glob("*/exit.json")}

    def run_dir(self, key: str) -> Path:
        return self.folder / LocalExecutor.handle_for(key) / "work"

    def submit(self, key: str, changes: Mapping[str, Any]) -> str | None:
        """Start the run of `key` (or find it again); None when both slots are busy."""
        handle = self.executor.find(key)
        if handle is not None:
            return handle
        run_dir = self.run_dir(key)
        command, config = self.target.render(dict(changes), run_dir)
        self.target.write_config(run_dir, config)
        try:
            return self.executor.submit(key, RunSpec(command=command, run_dir=run_dir, env=self.env))
        except ExecutorFull:
            return None

    def ended(self, key: str, handle: str) -> Finished | None:
        info = self.executor.status(handle)
        if not info.status.is_terminal:
            return None
        result = None
        if info.status is RunStatus.SUCCEEDED:
            try:
                result = self.target.read_result(self.run_dir(key))
            except ValueError:
                result = None
        metrics = (result or {}).get("metrics") or {}
        wall = ((info.ended_at - info.started_at).total_seconds()
                if info.ended_at is not None and info.started_at is not None else 0.0)
        return Finished(key=key, status=info.status.value if result or info.status is not RunStatus.SUCCEEDED
                        else "failed", cpu_seconds=float(info.cpu_seconds or 0.0), wall_seconds=wall,
                        objective=None if result is None else result["objective"],
                        test={k: v for k, v in (metrics.get("test") or {}).items() if isinstance(v, (int, float))},
                        bayes_ne=(metrics.get("bayes_test") or {}).get("ne"), curve=self.curve(key),
                        reused=handle in self.reused_at_start)

    def curve(self, key: str) -> list[float]:
        return self.target.read_curve(self.run_dir(key))

    def cancel(self, handle: str) -> None:
        self.executor.cancel(handle)

    def run_all(self, jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, Finished]:
        """Run every (key, changes) to its end, `max_parallel` at a time."""
        waiting, running, done = list(jobs), {}, {}
        while waiting or running:
            while waiting:
                handle = self.submit(waiting[0], jobs[waiting[0]])
                if handle is None:
                    break
                running[waiting.pop(0)] = handle
            for key, handle in list(running.items()):
                finished = self.ended(key, handle)
                if finished is not None:
                    done[key] = finished
                    del running[key]
            if running:
                time.sleep(POLL_S)
        return done
