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
from pathlib import Path
from types import FrameType

from rankwright.executors import _files as F

ON_EXIT_RETRY_S = (2, 4, 8, 16, 32, 60, 120, 240)  # about 8 minutes of back-off in all


def _max_rss_mb(ru_maxrss: int) -> float:
    # Linux reports kilobytes, macOS bytes.
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


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
    heartbeat_s = float(spec.get("heartbeat_s", 5.0))
    kill_grace_s = float(spec.get("kill_grace_s", 5.0))

    terminated = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal terminated
        terminated = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)

    env = dict(os.environ)
    env.update(spec.get("env") or {})
    env["RANKWRIGHT_EXECUTOR_RUN"] = str(folder)
    if spec.get("cuda_visible_devices") is not None:
        env["CUDA_VISIBLE_DEVICES"] = spec["cuda_visible_devices"]
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)

    def beat() -> None:
        F.write_json_atomic(
            folder / F.HEARTBEAT,
            {"pid": os.getpid(), "child_pid": child.pid if child else None, "time": time.time()},
        )

    delay_until = time.monotonic() + float(spec.get("delay_s") or 0.0)
    while not terminated and time.monotonic() < delay_until:  # a retry's back-off; a cancel ends it
        beat()
        time.sleep(min(heartbeat_s, max(0.0, delay_until - time.monotonic()), 0.5))
    started = time.time()
    with open(folder / F.OUTPUT, "ab") as out:
        try:
            if not terminated:
                child = subprocess.Popen(
                    spec["command"], cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                )
        except OSError as exc:  # command not found, not executable, ...
            out.write(f"rankwright wrapper: cannot start {spec['command']!r}: {exc}\n".encode())
    if child is not None:
        if terminated and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        kill_at: float | None = None
        while True:
            beat()
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
    ended = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    F.write_json_atomic(
        folder / F.EXIT,
        {
            "exit_code": exit_code,
            "started_at": started,
            "ended_at": ended,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": _max_rss_mb(usage.ru_maxrss),
            "cancelled": terminated,
        },
    )
    # Leave the executor's index of active runs; the removal is also the event that wakes a
    # `rankwright run` waiting on the index folder.
    (folder.parent / F.ACTIVE_INDEX / folder.name).unlink(missing_ok=True)
    if terminated or not spec.get("on_exit"):
        return 0
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The wake that on_exit starts may fail for a while (the store unreachable or locked):
    # try again with back-off, so that a run's end is not lost to a short outage.
    delays = [float(d) for d in spec.get("on_exit_retry_s", ON_EXIT_RETRY_S)]
    for attempt in range(len(delays) + 1):
        try:
            with open(folder / F.ON_EXIT_LOG, "ab") as log:
                done = subprocess.run(
                    spec["on_exit"], cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, close_fds=True, check=False,
                )
            code = done.returncode
        except Exception as exc:  # noqa: BLE001 - on_exit must never change the run's record
            print(f"on_exit failed: {exc!r}", file=sys.stderr)
            code = -1
        if code in (0, 2) or attempt == len(delays):  # 2: a user's mistake, which waiting does not fix
            if code != 0:  # said where `status` looks, so that a person (or cron) wakes the campaign
                F.write_json_atomic(folder / F.ON_EXIT_FAILED, {"exit_code": code, "tries": attempt + 1,
                                                                 "time": time.time()})
            break
        with open(folder / F.ON_EXIT_LOG, "ab") as log:
            log.write(f"rankwright wrapper: on_exit exited {code}; trying again in {delays[attempt]:g} s\n".encode())
        time.sleep(delays[attempt])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rankwright.executors.wrapper RUN_FOLDER", file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
