"""How a hibernating `rankwright run` is woken: a run ended, a person acted, or the timer.

A person's act (approve, pause, resume, stop) rings the campaign's doorbell: it rewrites
``<root>/.doorbell/<campaign>``. Executors name the folders that change when a run ends
(``Executor.change_paths``). `Alarm` waits on all of them with the operating system's file
notifications (inotify on Linux, through `watchfiles`), so the waiting process uses no CPU
and wakes within a fraction of a second; the timer is the fallback for what no file says
(a lost run, a change made on another machine through a shared PostgreSQL store).

Waking is only a hint: `wake` reads the whole state, so a spurious or merged ring is
harmless and a missed one costs at most one timer interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rankwright.executors._files import write_json_atomic

DOORBELL_DIR = ".doorbell"


def doorbell_path(root: Path, campaign: str) -> Path:
    return Path(root) / DOORBELL_DIR / campaign


def ring(root: Path, campaign: str, why: str) -> None:
    """Tell an agent waiting on `campaign` that something changed (atomic rewrite)."""
    path = doorbell_path(root, campaign)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"why": why, "time": time.time()})


class Alarm:
    """Waits until a watched folder changes or ``timeout`` passes.

    Changes that happen while the caller is busy (inside a wake) are kept by the watcher
    and end the next `wait` at once, so no run end is slept through.
    """

    def __init__(self, folders: Sequence[Path], *, tick_s: float = 1.0, debounce_ms: int = 200) -> None:
        """With no folders it is a plain timer (for filesystems without notifications,
        e.g. NFS, where another machine's writes raise no local event)."""
        for folder in folders:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._watch: Iterator[set] | None = None
        if folders:
            import watchfiles  # lazy: only a staying-up `run` needs it

            self._watch = watchfiles.watch(
                *folders, debounce=debounce_ms, step=50, stop_event=self._stop,
                rust_timeout=max(50, int(tick_s * 1000)), yield_on_timeout=True, recursive=False,
                ignore_permission_denied=True,
            )

    def wait(self, timeout_s: float) -> list[str]:
        """Block up to ``timeout_s``; return what changed (paths), empty on the timer."""
        if self._watch is None:
            self._stop.wait(timeout_s)
            return []
        deadline = time.monotonic() + timeout_s
        while True:
            changes = next(self._watch)  # returns at the latest after one tick
            if changes:
                return sorted({path for _, path in changes})
            if time.monotonic() >= deadline:
                return []

    def close(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.close()

    def __enter__(self) -> "Alarm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
