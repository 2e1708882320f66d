"""Supervises one cluster run on the host the scheduler chose:
``python -m rankwright.executors.cluster_wrapper HANDLE`` with ``RANKWRIGHT_DB`` set.

It takes the run's start in the store (once: a duplicate job of one claim exits at once),
recreates the run folder, runs the command, and reports through the store: heartbeats
with the run folder's small files and the log's tail, then the exit code and used CPU
time. A cancel reaches it as SIGTERM from the scheduler or as the record's
`cancel_requested`, read at each heartbeat. See `cluster.py` for the whole design.

`RANKWRIGHT_RUN_SCRATCH`, set on a host that does not see the agent's filesystem, makes it
work in ``$RANKWRIGHT_RUN_SCRATCH/HANDLE`` instead of the agent's run folder, with that
path replaced in the command, the environment and the input files.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from rankwright.executors.cluster import pack_files, unpack_files
from rankwright.executors.wrapper import ON_EXIT_RETRY_S, run_on_exit, supervise

LOG_NAME = ".rankwright-output.log"  # hidden: it travels as the log's tail, not as a file
LOG_TAIL_BYTES = 64 << 10


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def run(handle: str) -> int:
    from rankwright.store import open_store

    store = open_store()
    record = store.executor_run(handle)
    if record is None:
        print(f"no claimed run {handle!r} in the store at RANKWRIGHT_DB", file=sys.stderr)
        return 2
    if record.ended_at is not None or record.cancel_requested:
        return 0
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("RAY_JOB_SUBMISSION_ID") or record.job_id
    now = time.time()
    if not store.update_executor_run(handle, only_if="started_at", started_at=now, heartbeat_at=now,
                                     host=socket.gethostname(), **({"job_id": job_id} if job_id and not record.job_id else {})):
        return 0  # another job of this claim started it: exactly one runs
    spec = record.spec
    agent_dir = spec["run_dir"]
    scratch = os.environ.get("RANKWRIGHT_RUN_SCRATCH")
    run_dir = Path(scratch) / handle if scratch else Path(agent_dir)

    def here(text: str) -> str:
        return text.replace(agent_dir, str(run_dir)) if scratch else text

    if scratch:
        unpack_files(record.inputs, run_dir, replace=(agent_dir, str(run_dir)))
    given = {name: _read(run_dir / name) for name in record.inputs}  # inputs as this host has them

    def outputs() -> dict[str, str]:
        """What the run wrote: its folder's small files less the inputs it left as they were."""
        return {name: data for name, data in pack_files(run_dir).items()
                if name not in given or _read(run_dir / name) != given[name]}

    env = dict(os.environ)
    env.update({k: here(v) for k, v in (spec.get("env") or {}).items()})
    env["RANKWRIGHT_EXECUTOR_RUN"] = handle
    command = [here(part) for part in spec["command"]]
    log = run_dir / LOG_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    sent: dict[str, float] = {}

    def changed() -> bool:
        stamps = {p.name: p.stat().st_mtime for p in run_dir.iterdir() if p.is_file()}
        if stamps == sent:
            return False
        sent.clear()
        sent.update(stamps)
        return True

    cancel = {"asked": False}

    def beat(child_pid: int | None) -> None:
        fields = {"heartbeat_at": time.time()}
        if changed():
            fields.update(outputs=outputs(), log_tail=_tail(log))
        try:
            store.update_executor_run(handle, **fields)
            cancel["asked"] = bool(store.executor_run(handle).cancel_requested)
        except Exception as exc:  # noqa: BLE001 - the store may be down a while: the run goes on
            print(f"rankwright cluster wrapper: heartbeat not recorded: {exc}", file=sys.stderr)

    ended = supervise(command, run_dir, env, log, heartbeat_s=float(spec.get("heartbeat_s", 10.0)),
                      kill_grace_s=float(spec.get("kill_grace_s", 5.0)), delay_s=float(spec.get("delay_s") or 0.0),
                      beat=beat, stop_requested=lambda: cancel["asked"])
    end = {"ended_at": ended.ended_at, "exit_code": ended.exit_code, "cpu_seconds": ended.cpu_seconds,
           "max_rss_mb": ended.max_rss_mb, "cancelled": ended.cancelled, "heartbeat_at": time.time(),
           "outputs": outputs(), "log_tail": _tail(log)}
    for delay in (0, 1, 2, 4, 8, 16, 32, 60):  # the end must reach the store: it is the run's only report
        time.sleep(delay)
        try:
            store.update_executor_run(handle, only_if="ended_at", **end)
            break
        except Exception as exc:  # noqa: BLE001
            print(f"rankwright cluster wrapper: end not recorded yet: {exc}", file=sys.stderr)
    else:
        return 1
    if ended.cancelled or not spec.get("on_exit"):
        return 0
    on_exit = [here(part) for part in spec["on_exit"]]
    code, tries = run_on_exit(on_exit, run_dir, env, run_dir / ".rankwright-on-exit.log",
                              [float(d) for d in spec.get("on_exit_retry_s", ON_EXIT_RETRY_S)])
    if code != 0:
        print(f"rankwright cluster wrapper: on_exit exited {code} after {tries} tries; the agent's timer "
              "collects this run", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rankwright.executors.cluster_wrapper HANDLE", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
