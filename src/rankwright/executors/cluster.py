"""Runs on a cluster (Slurm, Ray), with the store as the place where runs report.

A cluster runs each job on a host of its choosing, which may share no filesystem with the
agent's. So a run does not report through its folder as a local run does: its wrapper
(`python -m rankwright.executors.cluster_wrapper HANDLE`, started by the scheduler) writes
to the store the agent uses (`RANKWRIGHT_DB`, which the run's host must reach):

- the agent claims the key in `executor_runs` (unique: a key is claimed once, ever) with
  the run's spec and its input files (the config the command reads), then asks the
  scheduler for a job named after the handle and records the job's id;
- the wrapper takes the start (once: a second job of one claim exits at once), recreates
  the run folder (at the same path, or under `RANKWRIGHT_RUN_SCRATCH` on a host without
  the agent's filesystem, with the agent's path replaced in the command, the environment
  and the input files), runs the command, and writes heartbeats, the small files the run
  writes (result, metrics, heartbeat), the log's tail, and at the end its exit code and
  used CPU time;
- `status` reads that record, and asks the scheduler only what the record cannot tell:
  whether a job not yet started is still queued, and whether a started one whose
  heartbeats stopped is gone (then it is LOST, which the runbook triages as preemption);
- `fetch` writes the run's files into the agent's run folder before it is read.

While the scheduler cannot be reached, runs that report go on being seen; a run is never
judged lost on the scheduler's silence, and nothing new is submitted (`ExecutorFull`). After
one unanswered question the scheduler is left alone for `QUIET_S` (a wake during an outage
costs one command's timeout, not one per run). A run is judged lost on the record as read
after the scheduler's answer, so a short run that ended meanwhile is not run again.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
import uuid
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

from rankwright.executors._base import Executor, ExecutorFull, RunInfo, RunSpec, RunStatus
from rankwright.executors._files import pid_alive
from rankwright.executors.local import LocalExecutor, _utc

JobState = Literal["queued", "running", "ended", "unknown"]  # "unknown": the scheduler does not know the job
MAX_FILE_BYTES = 1 << 20  # a run folder's files that travel through the store: each at most this ...
MAX_TOTAL_BYTES = 8 << 20  # ... and all together at most this
HEARTBEAT_S = 10.0
LAUNCH_GRACE_S = 60.0  # a claim from another host without a job yet: its submitter may still be launching it
SILENCE_BEATS = 3.0  # a started run whose job the scheduler no longer has, silent this many beats: lost
QUIET_S = 20.0  # a scheduler that did not answer is not asked again for this long (each try can take 30 s)


class SchedulerUnavailable(RuntimeError):
    """The scheduler did not answer (controller down, head restarting): ask again later."""


FETCHED = ".rankwright-fetched"  # in the agent's run folder: the names that came from a run, not for it


def pack_files(folder: Path, inputs_only: bool = False) -> dict[str, str]:
    """The folder's small top-level files, base64 by name (hidden files and oversize ones
    stay behind: checkpoints are not carried). `inputs_only` leaves out what an earlier
    attempt's run wrote there (fetched), so that a new attempt starts from its inputs."""
    out: dict[str, str] = {}
    total = 0
    if not folder.is_dir():
        return out
    fetched: set[str] = set()
    if inputs_only:
        try:
            fetched = set(json.loads((folder / FETCHED).read_text()))
        except (OSError, ValueError, TypeError):
            fetched = set()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.name in fetched:
            continue
        size = path.stat().st_size
        if size > MAX_FILE_BYTES or total + size > MAX_TOTAL_BYTES:
            continue
        out[path.name] = base64.b64encode(path.read_bytes()).decode("ascii")
        total += size
    return out


def unpack_files(files: dict[str, str], folder: Path, replace: tuple[str, str] | None = None,
                 remember: bool = False) -> int:
    """Write `files` into `folder` where they differ; `replace` swaps a path prefix in the
    text files (the agent's run folder for this host's); `remember` notes their names as
    fetched (see `pack_files`). Returns how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    if remember:
        try:
            known = set(json.loads((folder / FETCHED).read_text()))
        except (OSError, ValueError, TypeError):
            known = set()
        if not set(files) <= known:
            (folder / FETCHED).write_text(json.dumps(sorted(known | set(files))))
    written = 0
    for name, encoded in files.items():
        if "/" in name or name.startswith("."):
            continue
        data = base64.b64decode(encoded)
        if replace is not None and replace[0] != replace[1]:
            try:
                data = data.decode("utf-8").replace(replace[0], replace[1]).encode("utf-8")
            except UnicodeDecodeError:
                pass
        target = folder / name
        try:
            if target.read_bytes() == data:
                continue
        except OSError:
            pass
        tmp = folder / f".{name}.fetch.tmp"
        tmp.write_bytes(data)
        tmp.replace(target)
        written += 1
    return written


def _submitter_alive(submitter: str, claimed_at: float) -> bool:
    """Whether the process that claimed a key may still be launching its job: itself never
    (it retries its own launch), a live process on this host, or one on another host for
    a minute after its claim."""
    host, _, pid = submitter.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) != os.getpid() and pid_alive(int(pid), None)
    return bool(submitter) and time.time() - claimed_at < LAUNCH_GRACE_S


class ClusterExecutor(Executor):
    """The part every cluster shares: claims, records, status and files through the store.

    A subclass says how to start a job for a handle (`_launch`), find one again by its
    handle (`_find_job`), ask how it stands (`_job_state`), end it (`_cancel_job`) and read
    the scheduler's own log of it (`_job_log`). `scope` is the key prefix whose runs count
    against `max_parallel` (a campaign's: `name/`).
    """

    engine = "cluster"

    def __init__(self, store: Any, max_parallel: int, *, scope: str = "", store_url: str | None = None,
                 python: str = sys.executable, heartbeat_s: float = HEARTBEAT_S, kill_grace_s: float = 10.0,
                 cpus_per_run: int = 1, memory_mb: int | None = None, time_limit_s: float | None = None,
                 on_exit_retry_s: list[float] | None = None) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
        self.store, self.max_parallel, self.scope = store, max_parallel, scope
        self.store_url = store_url or store.engine.url.render_as_string(hide_password=False)
        self.python, self.heartbeat_s, self.kill_grace_s = python, heartbeat_s, kill_grace_s
        self.cpus_per_run, self.memory_mb, self.time_limit_s = cpus_per_run, memory_mb, time_limit_s
        self.on_exit_retry_s = on_exit_retry_s
        self._quiet_until, self._quiet_why = 0.0, ""

    handle_for = staticmethod(LocalExecutor.handle_for)

    # -- what a scheduler says -------------------------------------------------------------
    @abstractmethod
    def _launch(self, handle: str, claim: str, spec: RunSpec) -> str:
        """Start a job that runs the cluster wrapper for `handle`, marked with `claim` (a
        token of this claim: another store's run of the same key is another job); return
        the job's id."""

    @abstractmethod
    def _find_job(self, handle: str, claim: str) -> str | None:
        """The id of a job started for `handle` under `claim` that the scheduler still
        knows, or None."""

    @abstractmethod
    def _job_state(self, job_id: str) -> JobState:
        """How the job stands; raises SchedulerUnavailable when the scheduler does not answer."""

    @abstractmethod
    def _cancel_job(self, job_id: str) -> None: ...

    def _job_log(self, job_id: str) -> str:
        return ""

    def wrapper_command(self, handle: str) -> list[str]:
        return [self.python, "-m", "rankwright.executors.cluster_wrapper", handle]

    def job_env(self) -> dict[str, str]:
        """What the job needs from the agent's side: where to report."""
        return {"RANKWRIGHT_DB": self.store_url}

    # -- contract ----------------------------------------------------------------------------
    def submit(self, key: str, spec: RunSpec) -> str:
        handle = self.handle_for(key)
        record = self.store.executor_run(handle)
        claimed = False
        if record is None:
            active = self._active()
            if len(active) >= self.max_parallel:
                raise ExecutorFull(f"{len(active)} runs active, max_parallel={self.max_parallel}")
            claimed = self.store.claim_run(handle, key, self.engine, self._spec_json(spec),
                                           pack_files(Path(spec.run_dir), inputs_only=True), time.time())
            record = self.store.executor_run(handle)
        if record.job_id or record.started_at or record.ended_at or record.cancel_requested:
            return handle
        if not claimed and _submitter_alive(record.spec.get("submitter", ""), record.claimed_at):
            raise ExecutorFull(f"{key} is being launched by another submitter")
        try:  # claimed, no job recorded: a submitter may have died between the launch and its record
            claim = str(record.spec.get("claim", ""))
            job = self._ask(self._find_job, handle, claim)
            if job is None:
                job = self._ask(self._launch, handle, claim, spec)
        except SchedulerUnavailable as exc:
            raise ExecutorFull(f"the scheduler did not answer: {exc}") from None
        self.store.update_executor_run(handle, only_if="job_id", job_id=job)
        return handle

    def status(self, handle: str) -> RunInfo:
        record = self.store.executor_run(handle)
        if record is None:
            raise KeyError(handle)
        info = self._status(handle, record)
        if info.status is RunStatus.LOST:
            # The scheduler answers after the record was read: a short run may have started,
            # run and ended in between, and its job then reads as ended. Lost only if the
            # record, read after that answer, still shows no progress.
            again = self.store.executor_run(handle)
            if again is not None and (again.ended_at, again.started_at, again.heartbeat_at) != (
                    record.ended_at, record.started_at, record.heartbeat_at):
                return self._status(handle, again)
        return info

    def _status(self, handle: str, record: Any) -> RunInfo:
        beat = _utc(record.heartbeat_at)
        if record.ended_at is not None:
            if record.cancelled:
                status = RunStatus.CANCELLED
            else:
                status = RunStatus.SUCCEEDED if record.exit_code == 0 else RunStatus.FAILED
            return RunInfo(handle, status, record.exit_code, _utc(record.started_at), _utc(record.ended_at),
                           record.cpu_seconds, record.max_rss_mb, beat)
        if record.job_id is None and record.started_at is None:
            status = RunStatus.CANCELLED if record.cancel_requested else RunStatus.PENDING
            return RunInfo(handle, status)
        silent_s = time.time() - (record.heartbeat_at or record.started_at or record.claimed_at)
        if record.started_at is not None and silent_s < SILENCE_BEATS * self._beat_s(record):
            return RunInfo(handle, RunStatus.RUNNING, started_at=_utc(record.started_at), last_heartbeat=beat)
        try:
            job = record.job_id or self._ask(self._find_job, handle, str(record.spec.get("claim", "")))
            state = self._ask(self._job_state, job) if job else "unknown"
        except SchedulerUnavailable:
            state = None  # cannot tell: never lost on the scheduler's silence
        if state in ("queued", None) and record.started_at is None:
            return RunInfo(handle, RunStatus.PENDING)
        if state in ("running", "queued", None):
            return RunInfo(handle, RunStatus.RUNNING, started_at=_utc(record.started_at or record.claimed_at),
                           last_heartbeat=beat)
        status = RunStatus.CANCELLED if record.cancel_requested else RunStatus.LOST
        return RunInfo(handle, status, started_at=_utc(record.started_at), last_heartbeat=beat)

    def find(self, key: str) -> str | None:
        handle = self.handle_for(key)
        return handle if self.store.executor_run(handle) is not None else None

    def cancel(self, handle: str) -> None:
        record = self.store.executor_run(handle)
        if record is None:
            raise KeyError(handle)
        if record.ended_at is not None:
            return
        self.store.update_executor_run(handle, cancel_requested=True)
        if record.job_id is not None:
            try:
                self._ask(self._cancel_job, record.job_id)
            except SchedulerUnavailable:
                pass  # the wrapper sees the request at its next heartbeat and ends the run itself

    def logs(self, handle: str, tail_lines: int = 100) -> str:
        record = self.store.executor_run(handle)
        if record is None:
            raise KeyError(handle)
        text = record.log_tail
        if record.started_at is None and record.job_id:  # the job never reached the wrapper: the scheduler's log
            try:
                text = self._ask(self._job_log, record.job_id) or text
            except SchedulerUnavailable:
                pass
        lines = text.splitlines(keepends=True)
        return "".join(lines[-tail_lines:]) if tail_lines > 0 else ""

    def fetch(self, handle: str, run_dir: Path) -> None:
        record = self.store.executor_run(handle)
        if record is not None and record.outputs:
            unpack_files(record.outputs, Path(run_dir), remember=True)

    # -- helpers -----------------------------------------------------------------------------
    def _ask(self, question: Any, *args: Any) -> Any:
        """Ask the scheduler, unless it did not answer a moment ago: during an outage each
        try can take the command's whole timeout, and a wake asks about many runs."""
        if time.monotonic() < self._quiet_until:
            raise SchedulerUnavailable(self._quiet_why)
        try:
            return question(*args)
        except SchedulerUnavailable as exc:
            self._quiet_until = time.monotonic() + QUIET_S
            self._quiet_why = f"{exc} (not asked again for {QUIET_S:g} s)"
            raise

    def _beat_s(self, record: Any) -> float:
        return float(record.spec.get("heartbeat_s", self.heartbeat_s))

    def _spec_json(self, spec: RunSpec) -> dict[str, Any]:
        return {"submitter": f"{socket.gethostname()}:{os.getpid()}", "claim": uuid.uuid4().hex, "command": list(spec.command), "run_dir": str(Path(spec.run_dir).absolute()), "env": dict(spec.env),
                "gpus": spec.gpus, "on_exit": None if spec.on_exit is None else list(spec.on_exit),
                "delay_s": spec.delay_s, "heartbeat_s": self.heartbeat_s, "kill_grace_s": self.kill_grace_s,
                **({} if self.on_exit_retry_s is None else {"on_exit_retry_s": self.on_exit_retry_s})}

    def _active(self) -> list[str]:
        return [r.handle for r in self.store.open_executor_runs(self.engine, self.scope)
                if not self.status(r.handle).status.is_terminal]
