"""The run-folder layout shared by the local executor and its wrapper, and small helpers.

A run folder holds (written in this order):
``claim`` (the key; created with O_EXCL), ``spec.json``, ``launch.json`` (wrapper pid and
its start stamp), ``executor_heartbeat.json`` (rewritten every few seconds),
``output.log`` (the command's stdout and stderr), ``exit.json`` (how the run ended),
``on_exit.log``; ``cancel_requested.json`` once ``cancel`` was called; ``wrapper.log``
holds the wrapper's own output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CLAIM = "claim"
SPEC = "spec.json"
LAUNCH = "launch.json"
HEARTBEAT = "executor_heartbeat.json"
EXIT = "exit.json"
OUTPUT = "output.log"
WRAPPER_LOG = "wrapper.log"
ON_EXIT_LOG = "on_exit.log"
ON_EXIT_FAILED = "on_exit_failed.json"  # the run's end could not be handed on (its on_exit kept failing)
CANCEL = "cancel_requested.json"
ACTIVE_INDEX = ".active"  # in the executor root: one empty file per run not yet ended
STARTED = "started.json"  # created with O_EXCL by the one wrapper that owns the run


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_stamp(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown.

    Together with the pid it names one process: a reused pid has another stamp.
    """
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int, stamp: int | None) -> bool:
    """Whether the process ``pid`` that started at ``stamp`` still runs (zombies do not)."""
    if pid <= 0:
        return False
    if os.path.isdir("/proc"):
        fields = _proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return stamp is None or int(fields[19]) == stamp
    try:  # pragma: no cover - systems without /proc
        os.kill(pid, 0)
    except ProcessLookupError:  # pragma: no cover
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True  # pragma: no cover


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group ``pgid``."""
    if os.path.isdir("/proc"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            fields = _proc_stat(int(entry))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False
    try:  # pragma: no cover
        os.killpg(pgid, 0)
    except ProcessLookupError:  # pragma: no cover
        return False
    return True  # pragma: no cover
