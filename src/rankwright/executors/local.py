"""Runs on this machine, each as a detached process group that outlives the agent.

Each key owns one folder ``root/<slug-of-key>-<sha>``; its name is the handle. Submitting
claims the folder by creating ``claim`` with O_CREAT|O_EXCL (under a lock on
``root/.submit.lock`` so the parallelism and GPU checks and the claim are one step), writes
``spec.json``, and starts ``python -m rankwright.executors.wrapper <folder>`` in a new
session. Everything ``status`` says is read back from the folder (see ``_files``) and from
whether the wrapper process is alive, so any process that opens the same root sees the same
runs.

Active runs are indexed in ``root/.active``: one empty file per claimed, not-yet-ended run,
created with the claim and removed by the wrapper right after it writes ``exit.json`` (or by
the next count, for a run found terminal otherwise, e.g. LOST). Counting runs against
``max_parallel`` reads this index, not every run folder, so it stays cheap with thousands of
finished runs; and a removal there is the event `rankwright run` waits on.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from rankwright.executors import _files as F
from rankwright.executors._base import Executor, ExecutorFull, RunInfo, RunSpec, RunStatus


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def _visible_gpus() -> list[str]:
    """GPU ids this process may hand out: CUDA_VISIBLE_DEVICES if set, else torch's count."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch  # lazy: heavy, and only needed when a run asks for a GPU
    except ImportError:  # pragma: no cover
        return []
    try:
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - broken driver reads as no GPU
        return []


class LocalExecutor(Executor):
    """Local detached processes, at most ``max_parallel`` not-terminal runs at once.

    GPUs: a run with ``spec.gpus > 0`` gets that many device ids not held by another
    not-terminal run, passed as ``CUDA_VISIBLE_DEVICES``; too few free ids raises
    ``ExecutorFull``. The ids come from ``gpu_ids`` if given, else from this process's
    ``CUDA_VISIBLE_DEVICES``, else ``torch.cuda.device_count()`` (imported only then). When
    no GPU is visible at all, the run goes on the CPU and ``CUDA_VISIBLE_DEVICES`` is left
    as it is (never set to an empty string); runs with ``gpus == 0`` leave it as it is too.

    ``heartbeat_s`` is how often the wrapper rewrites its heartbeat; ``kill_grace_s`` how
    long ``cancel`` waits after SIGTERM before SIGKILL of the whole process group;
    ``on_exit_retry_s`` the back-off between tries of a failing ``on_exit`` (default: the
    wrapper's, about 8 minutes in all).
    A claim whose submitter died before launching reads PENDING; submitting the same key
    again launches it (exactly once: the wrapper takes an O_EXCL start marker).
    """

    def __init__(
        self,
        root: Path,
        max_parallel: int,
        *,
        gpu_ids: Sequence[str] | None = None,
        heartbeat_s: float = 5.0,
        kill_grace_s: float = 10.0,
        python: str = sys.executable,
        on_exit_retry_s: Sequence[float] | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_parallel = max_parallel
        self._gpu_ids = None if gpu_ids is None else [str(g) for g in gpu_ids]
        self.heartbeat_s = heartbeat_s
        self.kill_grace_s = kill_grace_s
        self.python = python
        self.on_exit_retry_s = None if on_exit_retry_s is None else [float(d) for d in on_exit_retry_s]
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- naming -----------------------------------------------------------------------
    @staticmethod
    def handle_for(key: str) -> str:
        """The folder name (and handle) of ``key``: readable slug plus a hash of the key."""
        slug = re.sub(r"[^a-z0-9._-]+", "-", key.lower()).strip("-.")[:48] or "run"
        return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def _folder(self, handle: str) -> Path:
        if not handle or "/" in handle or handle.startswith("."):
            raise KeyError(handle)
        return self.root / handle

    def _claimed(self, handle: str) -> Path:
        folder = self._folder(handle)
        if not (folder / F.CLAIM).exists():
            raise KeyError(handle)
        return folder

    @contextmanager
    def _lock(self) -> Iterator[None]:
        fd = os.open(self.root / ".submit.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- contract -----------------------------------------------------------------------
    def submit(self, key: str, spec: RunSpec) -> str:
        handle = self.handle_for(key)
        folder = self.root / handle
        with self._lock():
            if (folder / F.CLAIM).exists():
                if (folder / F.LAUNCH).exists() or (folder / F.STARTED).exists() or (folder / F.CANCEL).exists():
                    return handle
                # Claimed but never launched, and we hold the submit lock: the submitter died
                # between claim and launch. Launch it now (the wrapper's O_EXCL start marker
                # keeps a launch that did happen from running twice).
                cuda = self._assign_gpus(spec.gpus, [h for h in self._active() if h != handle])
                (self._index / handle).touch()
                self._launch(folder, handle, key, spec, cuda)
                return handle
            active = self._active()
            if len(active) >= self.max_parallel:
                raise ExecutorFull(f"{len(active)} runs active, max_parallel={self.max_parallel}")
            cuda = self._assign_gpus(spec.gpus, active)
            folder.mkdir(exist_ok=True)
            try:
                fd = os.open(folder / F.CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:  # only without working flock (e.g. some network filesystems)
                return handle
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(key)
            (self._index / handle).touch()
            self._launch(folder, handle, key, spec, cuda)
        return handle

    def _launch(self, folder: Path, handle: str, key: str, spec: RunSpec, cuda: str | None) -> None:
        """Write the spec and start the detached wrapper (caller holds the submit lock)."""
        F.write_json_atomic(
            folder / F.SPEC,
            {
                "key": key,
                "command": list(spec.command),
                "run_dir": str(Path(spec.run_dir).absolute()),
                "env": dict(spec.env),
                "gpus": spec.gpus,
                "cuda_visible_devices": cuda,
                "on_exit": None if spec.on_exit is None else list(spec.on_exit),
                "delay_s": spec.delay_s,
                **({} if self.on_exit_retry_s is None else {"on_exit_retry_s": self.on_exit_retry_s}),
                "heartbeat_s": self.heartbeat_s,
                "kill_grace_s": max(0.0, self.kill_grace_s / 2),
            },
        )
        with open(folder / F.WRAPPER_LOG, "ab") as log:
            proc = subprocess.Popen(
                [self.python, "-m", "rankwright.executors.wrapper", str(folder)],
                start_new_session=True, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, close_fds=True,
            )
        self._children[handle] = proc
        F.write_json_atomic(folder / F.LAUNCH, {"pid": proc.pid, "start_stamp": F.start_stamp(proc.pid), "time": time.time()})

    def status(self, handle: str) -> RunInfo:
        folder = self._claimed(handle)
        child = self._children.get(handle)
        if child is not None and child.poll() is not None:  # reap our own finished wrappers
            del self._children[handle]
        heartbeat = F.read_json(folder / F.HEARTBEAT) or {}
        last_beat = _utc(heartbeat.get("time"))
        ended = F.read_json(folder / F.EXIT)
        if ended is not None:
            if ended.get("cancelled"):
                status = RunStatus.CANCELLED
            else:
                status = RunStatus.SUCCEEDED if ended.get("exit_code") == 0 else RunStatus.FAILED
            return RunInfo(
                handle=handle, status=status, exit_code=ended.get("exit_code"),
                started_at=_utc(ended.get("started_at")), ended_at=_utc(ended.get("ended_at")),
                cpu_seconds=ended.get("cpu_seconds"), max_rss_mb=ended.get("max_rss_mb"),
                last_heartbeat=last_beat,
            )
        # The wrapper's own start marker wins: after a relaunch race, launch.json may name a
        # wrapper that found the marker taken and quietly exited.
        launch = F.read_json(folder / F.STARTED) or F.read_json(folder / F.LAUNCH)
        if launch is None and heartbeat.get("pid"):
            launch = {"pid": heartbeat["pid"], "start_stamp": None}
        if launch is None:
            # Claimed, never launched (or the wrapper is starting): submitting the key again
            # launches it, so it stays PENDING rather than failing.
            status = RunStatus.CANCELLED if (folder / F.CANCEL).exists() else RunStatus.PENDING
            return RunInfo(handle=handle, status=status)
        if F.pid_alive(int(launch["pid"]), launch.get("start_stamp")):
            status = RunStatus.RUNNING
        elif (folder / F.CANCEL).exists():
            status = RunStatus.CANCELLED
        else:
            status = RunStatus.LOST
        return RunInfo(handle=handle, status=status, started_at=_utc(launch.get("time")), last_heartbeat=last_beat)

    def find(self, key: str) -> str | None:
        handle = self.handle_for(key)
        return handle if (self.root / handle / F.CLAIM).exists() else None

    def cancel(self, handle: str) -> None:
        folder = self._claimed(handle)
        if self.status(handle).status.is_terminal:
            return
        with self._lock():  # waits for a submit in flight to record its launch
            F.write_json_atomic(folder / F.CANCEL, {"time": time.time()})
            launch = F.read_json(folder / F.LAUNCH)
        if launch is None:  # the submitter died between claim and launch: nothing runs
            return
        pgid = int(launch["pid"])  # the wrapper leads its own session and process group
        if not F.pid_alive(pgid, launch.get("start_stamp")):
            return
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.kill_grace_s
        while time.monotonic() < deadline:
            child = self._children.get(handle)
            if child is not None:
                child.poll()
            if not F.group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        child = self._children.pop(handle, None)
        if child is not None:
            try:
                child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    def logs(self, handle: str, tail_lines: int = 100) -> str:
        folder = self._claimed(handle)
        parts = [_tail(folder / F.OUTPUT, tail_lines)]
        wrapper = _tail(folder / F.WRAPPER_LOG, tail_lines)
        if wrapper:
            parts.append(f"--- wrapper ---\n{wrapper}")
        return "".join(parts)

    def unhanded_ends(self, prefix: str = "") -> list[str]:
        """Keys (starting with `prefix`) of runs that ended but whose on_exit kept failing:
        their end reached no agent, so a wake is owed."""
        out = []
        for marker in self.root.glob(f"*/{F.ON_EXIT_FAILED}"):
            spec = F.read_json(marker.parent / F.SPEC) or {}
            if str(spec.get("key", "")).startswith(prefix):
                out.append(str(spec.get("key")))
        return sorted(out)

    def change_paths(self) -> list[Path]:
        self._index.mkdir(exist_ok=True)
        return [self._index]

    # -- helpers --------------------------------------------------------------------------
    @property
    def _index(self) -> Path:
        return self.root / F.ACTIVE_INDEX

    def _handles(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / F.CLAIM).exists())

    def _active(self) -> list[str]:
        """Handles of the not-terminal runs, from the index (caller holds the submit lock).

        A root written before the index existed is indexed once by a full scan; entries of
        runs that ended without their wrapper removing them (LOST, cancelled before launch)
        are pruned here.
        """
        if not self._index.is_dir():
            self._index.mkdir()
            for handle in self._handles():
                if not self.status(handle).status.is_terminal:
                    (self._index / handle).touch()
        active = []
        for entry in sorted(os.listdir(self._index)):
            if entry.startswith("."):
                continue
            try:
                terminal = self.status(entry).status.is_terminal
            except KeyError:  # an entry without a claimed folder: nothing runs there
                terminal = True
            if terminal:
                (self._index / entry).unlink(missing_ok=True)
            else:
                active.append(entry)
        return active

    def _assign_gpus(self, wanted: int, active: list[str]) -> str | None:
        if wanted <= 0:
            return None
        visible = self._gpu_ids if self._gpu_ids is not None else _visible_gpus()
        if not visible:
            return None  # no GPU on this machine: run on the CPU, leave CUDA_VISIBLE_DEVICES alone
        used: set[str] = set()
        for h in active:
            taken = (F.read_json(self.root / h / F.SPEC) or {}).get("cuda_visible_devices")
            if taken:
                used.update(taken.split(","))
        free = [g for g in visible if g not in used]
        if len(free) < wanted:
            raise ExecutorFull(f"run wants {wanted} GPUs, {len(free)} of {len(visible)} free")
        return ",".join(free[:wanted])


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept)
