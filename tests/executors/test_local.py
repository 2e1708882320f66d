"""Executor contract suite, written once and parametrized over every executor.

Only the local executor exists so far; tests that reach into its run folders are at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rankwright.executors import Executor, ExecutorFull, LocalExecutor, RunInfo, RunSpec, RunStatus
from rankwright.executors import _files as F

PY = sys.executable
SRC = str(Path(__file__).resolve().parents[2] / "src")


class LocalBackend:
    """How the suite builds a local executor, here and in another process."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def make(self, max_parallel: int = 4, **kw: object) -> LocalExecutor:
        return LocalExecutor(self.root, max_parallel, heartbeat_s=0.2, kill_grace_s=2.0, **kw)  # type: ignore[arg-type]

    def snippet(self, max_parallel: int = 4) -> str:
        """Python source that binds ``ex`` to an executor equal to ``make()``."""
        return (
            "from rankwright.executors import LocalExecutor\n"
            f"ex = LocalExecutor({str(self.root)!r}, {max_parallel}, heartbeat_s=0.2, kill_grace_s=2.0)\n"
        )


BACKENDS = {"local": LocalBackend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalBackend]:
    b = BACKENDS[request.param](tmp_path / "runs")
    yield b
    # Never leave runs behind: cancel whatever a test left running.
    cleaner = b.make()
    for handle in cleaner._handles():
        cleaner.cancel(handle)


@pytest.fixture
def ex(backend: LocalBackend) -> Executor:
    return backend.make()


def wait_for(ex: Executor, handle: str, pred: Callable[[RunInfo], bool], timeout: float = 15.0) -> RunInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = ex.status(handle)
        if pred(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {handle}: {info}\nlogs:\n{ex.logs(handle)}")
        time.sleep(0.05)


def wait_terminal(ex: Executor, handle: str, timeout: float = 15.0) -> RunInfo:
    return wait_for(ex, handle, lambda i: i.status.is_terminal, timeout)


def py(code: str, run_dir: Path, **kw: object) -> RunSpec:
    return RunSpec(command=(PY, "-c", textwrap.dedent(code)), run_dir=run_dir, **kw)  # type: ignore[arg-type]


def pid_gone(pid: int) -> bool:
    return not F.pid_alive(pid, None)


# -- contract -------------------------------------------------------------------------------


def test_success_records_exit_code_usage_and_logs(ex: Executor, tmp_path: Path) -> None:
    spec = py(
        """
        import os, time
        block = bytearray(60_000_000)  # touch ~60 MB so max RSS shows it
        for i in range(0, len(block), 4096): block[i] = 1
        t = time.process_time()
        while time.process_time() - t < 0.2: pass
        open('made_here.txt', 'w').write(os.environ['RW_TEST'])
        print('hello from the run')
        """,
        tmp_path / "out",
        env={"RW_TEST": "env-ok"},
    )
    handle = ex.submit("exp-1", spec)
    info = wait_terminal(ex, handle)
    assert info.status is RunStatus.SUCCEEDED
    assert info.exit_code == 0
    assert info.cpu_seconds is not None and info.cpu_seconds >= 0.2
    assert info.max_rss_mb is not None and info.max_rss_mb > 50
    assert info.started_at is not None and info.ended_at is not None and info.started_at <= info.ended_at
    assert (tmp_path / "out" / "made_here.txt").read_text() == "env-ok"
    assert "hello from the run" in ex.logs(handle)


def test_failure_is_failed_with_exit_code(ex: Executor, tmp_path: Path) -> None:
    handle = ex.submit("exp-fail", py("import sys; print('boom', file=sys.stderr); sys.exit(3)", tmp_path))
    info = wait_terminal(ex, handle)
    assert info.status is RunStatus.FAILED
    assert info.exit_code == 3
    assert "boom" in ex.logs(handle)


def test_missing_program_is_failed(ex: Executor, tmp_path: Path) -> None:
    handle = ex.submit("exp-missing", RunSpec(command=("/nonexistent/program",), run_dir=tmp_path))
    info = wait_terminal(ex, handle)
    assert info.status is RunStatus.FAILED
    assert "cannot start" in ex.logs(handle)


def test_a_delayed_start_holds_the_run_back_and_a_cancel_ends_the_wait(ex: Executor, tmp_path: Path) -> None:
    """A retry's back-off: the run is in flight (running) while its start is held back."""
    started = time.time()
    handle = ex.submit("exp-delay", py("import time; open('t', 'w').write(str(time.time()))", tmp_path / "d",
                                       delay_s=1.5))
    assert not ex.status(handle).status.is_terminal
    assert wait_terminal(ex, handle).status is RunStatus.SUCCEEDED
    assert float((tmp_path / "d" / "t").read_text()) - started >= 1.5
    waiting = ex.submit("exp-delay-cancel", py("open('ran', 'w')", tmp_path / "c", delay_s=30))
    time.sleep(0.3)
    ex.cancel(waiting)
    assert wait_terminal(ex, waiting, timeout=10).status is RunStatus.CANCELLED
    assert not (tmp_path / "c" / "ran").exists()


def test_a_failing_on_exit_is_tried_again_with_back_off(backend: LocalBackend, tmp_path: Path) -> None:
    """The wake a run's end starts may fail for a while (store locked or down); its end
    must not be lost to that. A user's mistake (exit 2) is not retried."""
    ex = backend.make(on_exit_retry_s=[0.2, 0.2, 0.2])
    counter = tmp_path / "tries"
    flaky = (f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) if p.exists() else 0; "
             "p.write_text('x' * (n + 1)); sys.exit(0 if n >= 2 else 1)")
    handle = ex.submit("exp-on-exit", py("pass", tmp_path / "r", on_exit=(PY, "-c", flaky)))
    wait_terminal(ex, handle)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (not counter.exists() or len(counter.read_text()) < 3):
        time.sleep(0.1)
    assert len(counter.read_text()) == 3  # failed twice, worked the third time
    assert ex.unhanded_ends() == []
    failing = ex.submit("camp/x/seed1", py("pass", tmp_path / "u", on_exit=(PY, "-c", "import sys; sys.exit(1)")))
    wait_terminal(ex, failing)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not ex.unhanded_ends("camp/"):
        time.sleep(0.1)
    assert ex.unhanded_ends("camp/") == ["camp/x/seed1"]  # its end reached no agent: a wake is owed
    mistaken = tmp_path / "mistaken"
    handle = ex.submit("exp-on-exit-2", py("pass", tmp_path / "s", on_exit=(
        PY, "-c", f"import pathlib, sys; p = pathlib.Path({str(mistaken)!r}); "
                  "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); sys.exit(2)")))
    wait_terminal(ex, handle)
    time.sleep(1.0)
    assert mistaken.read_text() == "x"


def test_same_key_twice_starts_one_run(backend: LocalBackend, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    spec = py(f"open({str(ledger)!r}, 'a').write('ran\\n')", tmp_path)
    first = backend.make().submit("exp-dup", spec)
    again = backend.make().submit("exp-dup", spec)  # a fresh executor object, as after a restart
    assert again == first
    wait_terminal(backend.make(), first)
    assert backend.make().submit("exp-dup", py("raise SystemExit(9)", tmp_path)) == first
    time.sleep(0.3)
    assert ledger.read_text() == "ran\n"
    assert backend.make().status(first).status is RunStatus.SUCCEEDED


def test_two_processes_racing_on_one_key_start_one_run(backend: LocalBackend, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    go_at = time.time() + 1.0
    code = backend.snippet() + textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from rankwright.executors import RunSpec
        spec = RunSpec(command=({PY!r}, '-c', "open({str(ledger)!r}, 'a').write('ran\\\\n')"), run_dir=Path({str(tmp_path)!r}))
        time.sleep(max(0.0, {go_at!r} - time.time()))
        print(ex.submit('exp-race', spec))
        """
    )
    procs = [subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    handles = {p.communicate(timeout=20)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(handles) == 1
    ex = backend.make()
    wait_terminal(ex, handles.pop())
    time.sleep(0.2)
    assert ledger.read_text() == "ran\n"


def test_run_outlives_the_submitting_process(backend: LocalBackend, tmp_path: Path) -> None:
    code = backend.snippet() + textwrap.dedent(
        f"""
        from pathlib import Path
        from rankwright.executors import RunSpec
        spec = RunSpec(command=({PY!r}, '-c', "import time; time.sleep(0.8); open('done', 'w').write('x')"), run_dir=Path({str(tmp_path)!r}))
        print(ex.submit('exp-outlive', spec))
        """
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=20, check=True)
    handle = out.stdout.strip()
    ex = backend.make()
    assert ex.status(handle).status in (RunStatus.PENDING, RunStatus.RUNNING)  # submitter gone, run alive
    info = wait_terminal(ex, handle)
    assert info.status is RunStatus.SUCCEEDED
    assert (tmp_path / "done").exists()


def test_cancel_ends_the_whole_process_group(ex: Executor, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    spec = py(
        f"""
        import os, subprocess, time
        helper = subprocess.Popen(['sleep', '30'])
        open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{helper.pid}}')
        os.replace({str(pids)!r} + '.tmp', {str(pids)!r})
        time.sleep(30)
        """,
        tmp_path,
    )
    handle = ex.submit("exp-cancel", spec)
    deadline = time.monotonic() + 10
    while not pids.exists():
        assert time.monotonic() < deadline, ex.logs(handle)
        time.sleep(0.05)
    assert ex.status(handle).status is RunStatus.RUNNING
    t0 = time.monotonic()
    ex.cancel(handle)
    assert time.monotonic() - t0 < 3
    assert ex.status(handle).status is RunStatus.CANCELLED
    assert all(pid_gone(int(p)) for p in pids.read_text().split())
    ex.cancel(handle)  # cancelling a finished run is a no-op
    assert ex.status(handle).status is RunStatus.CANCELLED


def test_cancel_of_a_finished_run_is_a_no_op(ex: Executor, tmp_path: Path) -> None:
    handle = ex.submit("exp-done", py("pass", tmp_path))
    wait_terminal(ex, handle)
    ex.cancel(handle)
    assert ex.status(handle).status is RunStatus.SUCCEEDED


def test_parallelism_limit_raises_executor_full_without_claiming(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make(max_parallel=1)
    long = ex.submit("exp-long", py("import time; time.sleep(30)", tmp_path))
    with pytest.raises(ExecutorFull):
        ex.submit("exp-next", py("pass", tmp_path))
    assert ex.find("exp-next") is None  # nothing claimed: it may be submitted later
    assert ex.submit("exp-long", py("pass", tmp_path)) == long  # a known key is not "full"
    ex.cancel(long)
    nxt = ex.submit("exp-next", py("pass", tmp_path))
    assert wait_terminal(ex, nxt).status is RunStatus.SUCCEEDED


def test_find_returns_the_handle_of_a_submitted_key(ex: Executor, tmp_path: Path) -> None:
    assert ex.find("exp-find") is None
    handle = ex.submit("exp-find", py("pass", tmp_path))
    assert ex.find("exp-find") == handle
    assert ex.find("exp-other") is None
    wait_terminal(ex, handle)


def test_unknown_handle_raises_key_error(ex: Executor) -> None:
    for call in (ex.status, ex.cancel, ex.logs):
        with pytest.raises(KeyError):
            call("no-such-run")


def test_logs_returns_the_tail(ex: Executor, tmp_path: Path) -> None:
    handle = ex.submit("exp-logs", py("for i in range(500): print(f'line {i}')", tmp_path))
    wait_terminal(ex, handle)
    tail = ex.logs(handle, tail_lines=3)
    assert tail.splitlines() == ["line 497", "line 498", "line 499"]


def test_on_exit_runs_after_the_run_ended(ex: Executor, tmp_path: Path) -> None:
    seen = tmp_path / "on_exit_saw"
    # on_exit asks a fresh executor for the run's status, as `rankwright wake` would.
    on_exit_code = (
        f"import sys; sys.path.insert(0, {SRC!r})\n"
        f"from rankwright.executors import LocalExecutor\n"
        f"ex = LocalExecutor({str(ex.root)!r}, 4)\n"  # type: ignore[attr-defined]
        f"h = ex.find('exp-on-exit')\n"
        f"open({str(seen)!r}, 'w').write(ex.status(h).status.name)\n"
        f"raise SystemExit(4)\n"  # a failing on_exit changes nothing about the run
    )
    handle = ex.submit("exp-on-exit", py("print('work')", tmp_path, on_exit=(PY, "-c", on_exit_code)))
    assert wait_terminal(ex, handle).status is RunStatus.SUCCEEDED
    deadline = time.monotonic() + 10
    while not seen.exists():
        assert time.monotonic() < deadline, ex.logs(handle)
        time.sleep(0.05)
    assert seen.read_text() == "SUCCEEDED"
    assert ex.status(handle).status is RunStatus.SUCCEEDED


# -- local executor only ---------------------------------------------------------------------


def _launch(ex: LocalExecutor, handle: str) -> dict:
    deadline = time.monotonic() + 5
    while (launch := F.read_json(ex.root / handle / F.LAUNCH)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return launch


def test_local_killed_wrapper_reads_lost(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make()
    handle = ex.submit("exp-lost", py("import time; time.sleep(30)", tmp_path))
    pgid = int(_launch(ex, handle)["pid"])
    wait_for(ex, handle, lambda i: i.last_heartbeat is not None)
    try:
        os.kill(pgid, signal.SIGKILL)
        info = wait_for(ex, handle, lambda i: i.status is not RunStatus.RUNNING, timeout=5)
        assert info.status is RunStatus.LOST
        assert info.exit_code is None
    finally:
        try:
            os.killpg(pgid, signal.SIGKILL)  # the orphaned command
        except ProcessLookupError:
            pass


def test_local_heartbeat_is_refreshed(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make()
    handle = ex.submit("exp-beat", py("import time; time.sleep(1.2)", tmp_path))
    first = wait_for(ex, handle, lambda i: i.last_heartbeat is not None).last_heartbeat
    later = wait_for(ex, handle, lambda i: i.last_heartbeat is not None and i.last_heartbeat > first).last_heartbeat
    assert later > first
    beat = json.loads((ex.root / handle / F.HEARTBEAT).read_text())
    assert beat["pid"] == _launch(ex, handle)["pid"]
    assert wait_terminal(ex, handle).status is RunStatus.SUCCEEDED


def test_local_folder_names_are_deterministic_and_safe(tmp_path: Path) -> None:
    a = LocalExecutor.handle_for("campaign 1/exp ../../etc")
    assert a == LocalExecutor.handle_for("campaign 1/exp ../../etc")
    assert "/" not in a and not a.startswith(".")
    assert LocalExecutor.handle_for("A") != LocalExecutor.handle_for("a")


def test_local_gpu_assignment(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make(gpu_ids=["0", "1"])
    show = "import os, time; print('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'), flush=True); time.sleep(30)"
    a = ex.submit("gpu-a", py(show, tmp_path, gpus=1))
    b = ex.submit("gpu-b", py(show, tmp_path, gpus=1))
    with pytest.raises(ExecutorFull):
        ex.submit("gpu-c", py(show, tmp_path, gpus=1))
    cpu = ex.submit("gpu-cpu", py(show, tmp_path, gpus=0))
    seen = {}
    for h in (a, b, cpu):
        wait_for(ex, h, lambda i, h=h: "CVD=" in ex.logs(h))
        seen[h] = ex.logs(h).split("CVD=")[1].split()[0]
    assert sorted([seen[a], seen[b]]) == ["0", "1"]
    assert seen[cpu] == os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    ex.cancel(a)
    c = ex.submit("gpu-c", py(show, tmp_path, gpus=1))  # a's GPU is free again
    wait_for(ex, c, lambda i: "CVD=" in ex.logs(c))
    assert ex.logs(c).split("CVD=")[1].split()[0] == seen[a]


def test_local_no_visible_gpu_runs_on_cpu_and_leaves_cuda_unset(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make(gpu_ids=[])
    handle = ex.submit("gpu-none", py("import os; print('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'))", tmp_path, gpus=2))
    assert wait_terminal(ex, handle).status is RunStatus.SUCCEEDED
    assert f"CVD={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}" in ex.logs(handle)


def test_local_claim_without_launch_is_launched_once_by_the_next_submit(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make()
    key = "exp-crashed-submitter"
    handle = LocalExecutor.handle_for(key)
    (ex.root / handle).mkdir(parents=True)
    (ex.root / handle / F.CLAIM).write_text(key)  # the submitter died right here
    assert ex.find(key) == handle
    assert ex.status(handle).status is RunStatus.PENDING
    marker = tmp_path / "ran.txt"
    spec = py(f"open({str(marker)!r}, 'a').write('x')", tmp_path)
    assert ex.submit(key, spec) == handle and ex.submit(key, spec) == handle
    assert wait_terminal(ex, handle).status is RunStatus.SUCCEEDED
    assert marker.read_text() == "x"
    handle2 = LocalExecutor.handle_for("exp-crashed-2")
    (ex.root / handle2).mkdir()
    (ex.root / handle2 / F.CLAIM).write_text("exp-crashed-2")
    t0 = time.monotonic()
    backend.make().cancel(handle2)  # does not wait for a launch that will never come
    assert time.monotonic() - t0 < 1
    assert ex.status(handle2).status is RunStatus.CANCELLED


def test_a_second_wrapper_for_one_run_exits_without_running_it(backend: LocalBackend, tmp_path: Path) -> None:
    import subprocess
    import sys

    ex = backend.make()
    marker = tmp_path / "ran.txt"
    handle = ex.submit("once", py(f"open({str(marker)!r}, 'a').write('x')", tmp_path))
    assert wait_terminal(ex, handle).status is RunStatus.SUCCEEDED
    again = subprocess.run([sys.executable, "-m", "rankwright.executors.wrapper", str(ex.root / handle)])
    assert again.returncode == 0 and marker.read_text() == "x"


def test_runspec_is_frozen_and_validated(tmp_path: Path) -> None:
    spec = RunSpec(command=("true",), run_dir=tmp_path, env={"A": "1"})
    with pytest.raises(AttributeError):
        spec.gpus = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.env["B"] = "2"  # type: ignore[index]
    with pytest.raises(ValueError):
        RunSpec(command=(), run_dir=tmp_path)
    assert [s for s in RunStatus if s.is_terminal] == [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST]


# -- the active-run index ---------------------------------------------------------------------


def test_local_index_holds_only_runs_not_ended(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make()
    index = ex.root / F.ACTIVE_INDEX
    long = ex.submit("idx-long", py("import time; time.sleep(30)", tmp_path))
    short = ex.submit("idx-short", py("pass", tmp_path))
    wait_terminal(ex, short)
    deadline = time.monotonic() + 5
    while (index / short).exists() and time.monotonic() < deadline:  # the wrapper removes it after exit.json
        time.sleep(0.02)
    assert sorted(os.listdir(index)) == [long]
    ex.cancel(long)
    assert os.listdir(index) == []


def test_local_submit_counts_from_the_index_not_every_run_folder(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = backend.make(max_parallel=2)
    for i in range(6):
        wait_terminal(ex, ex.submit(f"done-{i}", py("pass", tmp_path)))
    deadline = time.monotonic() + 5
    while os.listdir(ex.root / F.ACTIVE_INDEX) and time.monotonic() < deadline:
        time.sleep(0.02)
    looked_at: list[str] = []
    original = LocalExecutor.status
    monkeypatch.setattr(LocalExecutor, "status", lambda self, h: looked_at.append(h) or original(self, h))
    running = ex.submit("idx-new", py("import time; time.sleep(30)", tmp_path))
    assert looked_at == []  # six finished runs, none of them read
    ex.submit("idx-new-2", py("import time; time.sleep(30)", tmp_path))
    assert looked_at == [running]  # only the one run the index lists
    with pytest.raises(ExecutorFull):
        ex.submit("idx-third", py("pass", tmp_path))


def test_local_index_prunes_lost_runs_and_is_rebuilt_for_an_old_root(backend: LocalBackend, tmp_path: Path) -> None:
    ex = backend.make(max_parallel=1)
    handle = ex.submit("idx-lost", py("import time; time.sleep(30)", tmp_path))
    pgid = int(_launch(ex, handle)["pid"])
    wait_for(ex, handle, lambda i: i.last_heartbeat is not None)
    os.killpg(pgid, signal.SIGKILL)  # wrapper and command die; nobody removes the entry
    wait_for(ex, handle, lambda i: i.status is RunStatus.LOST, timeout=5)
    assert (ex.root / F.ACTIVE_INDEX / handle).exists()
    nxt = ex.submit("idx-after-lost", py("import time; time.sleep(30)", tmp_path))  # the slot is free again
    assert sorted(os.listdir(ex.root / F.ACTIVE_INDEX)) == [nxt]
    (ex.root / F.ACTIVE_INDEX / nxt).unlink()
    os.rmdir(ex.root / F.ACTIVE_INDEX)  # a root from before the index: rebuilt by one scan
    with pytest.raises(ExecutorFull):
        ex.submit("idx-blocked", py("pass", tmp_path))
    assert os.listdir(ex.root / F.ACTIVE_INDEX) == [nxt]
