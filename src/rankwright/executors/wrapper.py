"""Supervises one run: ``python -m rankwright.executors.wrapper RUN_FOLDER``.

The local executor starts this as the leader of a new session, detached from the agent.
It reads ``spec.json``, starts the command as a child in its own process group, rewrites
``executor_heartbeat.json`` every ``heartbeat_s`` seconds (also while it holds the start
back for ``delay_s``, a retry's back-off), and when the command ends
writes ``exit.json`` (exit code, start and end time, CPU seconds and peak RSS of the
command's process tree) atomically, removes the run from the executor's active index, then
runs ``on_exit`` (whose failure changes nothing
in ``exit.json``; a failing one is tried again with back-off, ``ON_EXIT_RETRY_S``). On SIGTERM it forwards the signal to the command, kills it after
``kill_grace_s`` if it is still there, records ``cancelled: true`` and exits without
running ``on_exit``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Callable

from rankwright.executors import _files as F

ON_EXIT_RETRY_S = (2, 4, 8, 16, 32, 60, 120, 240)  # about 8 minutes of back-off in all


def _max_rss_mb(ru_maxrss: int) -> float:
    # Linux reports kilobytes, macOS bytes.
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


@dataclass(frozen=True)
class Ended:
    """How a supervised command ended: exit code, start and end time, CPU seconds (user and
    system) and peak resident set of its process tree, and whether it was cancelled."""

    exit_code: int
    started_at: float
    ended_at: float
    cpu_seconds: float
    max_rss_mb: float
    cancelled: bool


def supervise(command: list[str], run_dir: Path, env: dict[str, str], output: Path, *, heartbeat_s: float,
              kill_grace_s: float, delay_s: float, beat: Callable[[int | None], None],
              stop_requested: Callable[[], bool] = lambda: False) -> Ended:
    """Run `command` in `run_dir` (output appended to `output`), calling `beat(child_pid)`
    every `heartbeat_s` seconds, also while the start is held back `delay_s` seconds (a
    retry's back-off). SIGTERM, or `stop_requested()` turning true at a beat, forwards
    SIGTERM to the command and kills it `kill_grace_s` later if it is still there. Shared by
    the local wrapper (run folders) and the cluster wrapper (the store)."""
    terminated = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal terminated
        terminated = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    run_dir.mkdir(parents=True, exist_ok=True)

    def tick() -> None:
        nonlocal terminated
        beat(child.pid if child else None)
        if not terminated and stop_requested():
            terminated = True
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)

    delay_until = time.monotonic() + delay_s
    while not terminated and time.monotonic() < delay_until:  # a retry's back-off; a cancel ends it
        tick()
        time.sleep(min(heartbeat_s, max(0.0, delay_until - time.monotonic()), 0.5))
    started = time.time()
    with open(output, "ab") as out:
        try:
            if not terminated:
                child = subprocess.Popen(
                    command, cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                )
        except OSError as exc:  # command not found, not executable, ...
            out.write(f"rankwright wrapper: cannot start {command!r}: {exc}\n".encode())
    if child is not None:
        if terminated and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        kill_at: float | None = None
        while True:
            tick()
            if terminated and kill_at is None:
                kill_at = time.monotonic() + kill_grace_s
            wait_s = heartbeat_s if kill_at is None else max(0.0, min(heartbeat_s, kill_at - time.monotonic()))
            try:
                child.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                if kill_at is not None and time.monotonic() >= kill_at:
                    child.kill()
        exit_code: int = child.returncode
    else:
        exit_code = 127
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Ended(exit_code, started, time.time(), usage.ru_utime + usage.ru_stime, _max_rss_mb(usage.ru_maxrss),
                 terminated)


def run(folder: Path) -> int:
    spec = F.read_json(folder / F.SPEC)
    if spec is None:
        print(f"no readable {F.SPEC} in {folder}", file=sys.stderr)
        return 2
    try:  # exactly one wrapper runs a claim, even if a relaunch raced a slow first start
        fd = os.open(folder / F.STARTED, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return 0
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"pid": os.getpid(), "start_stamp": F.start_stamp(os.getpid()), "time": time.time()}, handle)
    env = dict(os.environ)
    env.update(spec.get("env") or {})
    env["RANKWRIGHT_EXECUTOR_RUN"] = str(folder)
    if spec.get("cuda_visible_devices") is not None:
        env["CUDA_VISIBLE_DEVICES"] = spec["cuda_visible_devices"]

    def beat(child_pid: int | None) -> None:
        F.write_json_atomic(folder / F.HEARTBEAT, {"pid": os.getpid(), "child_pid": child_pid, "time": time.time()})

    ended = supervise(spec["command"], Path(spec["run_dir"]), env, folder / F.OUTPUT,
                      heartbeat_s=float(spec.get("heartbeat_s", 5.0)), kill_grace_s=float(spec.get("kill_grace_s", 5.0)),
                      delay_s=float(spec.get("delay_s") or 0.0), beat=beat)
    terminated = ended.cancelled
    F.write_json_atomic(
        folder / F.EXIT,
        {
            "exit_code": ended.exit_code,
            "started_at": ended.started_at,
            "ended_at": ended.ended_at,
            "cpu_seconds": ended.cpu_seconds,
            "max_rss_mb": ended.max_rss_mb,
            "cancelled": terminated,
        },
    )
    # Leave the executor's index of active runs; the removal is also the event that wakes a
    # `rankwright run` waiting on the index folder.
    (folder.parent / F.ACTIVE_INDEX / folder.name).unlink(missing_ok=True)
    if terminated or not spec.get("on_exit"):
        return 0
    code, tries = run_on_exit(spec["on_exit"], Path(spec["run_dir"]), env, folder / F.ON_EXIT_LOG,
                              [float(d) for d in spec.get("on_exit_retry_s", ON_EXIT_RETRY_S)])
    if code != 0:  # said where `status` looks, so that a person (or cron) wakes the campaign
        F.write_json_atomic(folder / F.ON_EXIT_FAILED, {"exit_code": code, "tries": tries, "time": time.time()})
    return 0


def run_on_exit(command: list[str], run_dir: Path, env: dict[str, str], log_path: Path,
                delays: list[float]) -> tuple[int, int]:
    """Run the run's on_exit (a wake) and return (exit code, tries). The wake may fail for a
    while (the store unreachable or locked): it is tried again with back-off, so that a
    run's end is not lost to a short outage; exit 2 (a user's mistake) is not retried."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for attempt in range(len(delays) + 1):
        try:
            with open(log_path, "ab") as log:
                done = subprocess.run(command, cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, close_fds=True, check=False)
            code = done.returncode
        except Exception as exc:  # noqa: BLE001 - on_exit must never change the run's record
            print(f"on_exit failed: {exc!r}", file=sys.stderr)
            code = -1
        if code in (0, 2) or attempt == len(delays):
            return code, attempt + 1
        with open(log_path, "ab") as log:
            log.write(f"rankwright wrapper: on_exit exited {code}; trying again in {delays[attempt]:g} s\n".encode())
        time.sleep(delays[attempt])
    return -1, len(delays) + 1  # pragma: no cover - the loop always returns


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rankwright.executors.wrapper RUN_FOLDER", file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
