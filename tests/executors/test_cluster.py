"""The cluster executors against real engines started on loopback: Slurm (munged,
slurmctld, slurmd) and a Ray head. Every run reports through the store, and the tests run
it the way a host without the agent's filesystem would (RANKWRIGHT_RUN_SCRATCH): the
agent's run folder receives the result only through `fetch`."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rankwright.executors import ExecutorFull, RunSpec, RunStatus
from rankwright.store import open_store

pytestmark = pytest.mark.slow


def executor(engine, store, max_parallel=2, **kw):
    if engine.kind == "slurm":
        from rankwright.executors.slurm import SlurmExecutor

        return SlurmExecutor(store, max_parallel, scope="c/", heartbeat_s=0.5, **kw)
    from rankwright.executors.ray import RayExecutor

    return RayExecutor(store, max_parallel, scope="c/", heartbeat_s=0.5, address=engine.options["address"], **kw)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Runs work in a folder of their own host, not in the agent's run folder."""
    node = tmp_path / "node"
    monkeypatch.setenv("RANKWRIGHT_RUN_SCRATCH", str(node))
    return node


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'store.db'}")


def wait(ex, handle, until=lambda s: s.is_terminal, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = ex.status(handle)
        if until(info.status):
            return info
        time.sleep(0.25)
    raise AssertionError(f"{handle} still {ex.status(handle).status} after {timeout} s:\n{ex.logs(handle)}")


def submit_once_it_answers(ex, key, spec, timeout=90):
    """Submit as the agent's next wakes would: after an outage the executor waits a moment
    before it asks the scheduler again (ExecutorFull meanwhile)."""
    deadline = time.time() + timeout
    while True:
        try:
            return ex.submit(key, spec)
        except ExecutorFull:
            if time.time() > deadline:
                raise
            time.sleep(1.0)


def job(tmp_path, body: str) -> list[str]:
    script = tmp_path / f"job{abs(hash(body)) % 10**8}.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_a_run_reports_through_the_store_to_an_agent_that_shares_no_files(cluster_engine, store, scratch, tmp_path):
    agent_dir = tmp_path / "agent" / "run1"
    agent_dir.mkdir(parents=True)
    (agent_dir / "config.json").write_text(json.dumps({"out": str(agent_dir / "result.json")}))
    command = job(tmp_path, """
        import json, os, time
        config = json.load(open("config.json"))            # the input travelled with the claim
        t = time.process_time()
        while time.process_time() - t < 0.3:                # some CPU, so that usage is measured
            pass
        print("hello from", os.getcwd(), flush=True)
        json.dump({"loss": 0.25, "cwd": os.getcwd()}, open(config["out"], "w"))
    """)
    ex = executor(cluster_engine, store)
    handle = ex.submit("c/a/seed1", RunSpec(command=command, run_dir=agent_dir))
    info = wait(ex, handle)
    assert info.status is RunStatus.SUCCEEDED and info.exit_code == 0, ex.logs(handle)
    assert info.cpu_seconds >= 0.25 and info.started_at <= info.ended_at
    assert not (agent_dir / "result.json").exists()  # nothing reached the agent's folder but through the store
    ex.fetch(handle, agent_dir)
    result = json.loads((agent_dir / "result.json").read_text())
    assert result["loss"] == 0.25 and result["cwd"] == str(scratch / handle)  # it ran in the host's own folder
    assert "hello from" in ex.logs(handle)
    assert ex.find("c/a/seed1") == handle and ex.find("c/other/seed1") is None


def test_a_key_submitted_from_two_agents_at_once_runs_once(cluster_engine, store, scratch, tmp_path):
    journal = tmp_path / "journal"
    command = job(tmp_path, f"""
        import os, time
        open({str(journal)!r}, "a").write(f"ran {{os.getpid()}}\\n")
        time.sleep(1)
    """)
    run_dir = tmp_path / "agent" / "twice"
    run_dir.mkdir(parents=True)
    submit = textwrap.dedent(f"""
        import sys
        from rankwright.executors import RunSpec
        from rankwright.store import open_store
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_cluster import executor
        from cluster_engines import Engine
        engine = Engine({cluster_engine.kind!r}, {cluster_engine.options!r}, {{}})
        ex = executor(engine, open_store({str(store.engine.url)!r}))
        for _ in range(3):
            print(ex.submit("c/twice/seed1", RunSpec(command={command!r}, run_dir={str(run_dir)!r})))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    agents = [subprocess.Popen([sys.executable, "-c", submit], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    outputs = [a.communicate(timeout=120) for a in agents]
    handles = {line for out, err in outputs for line in out.split()}
    assert len(handles) == 1, outputs
    ex = executor(cluster_engine, store)
    info = wait(ex, handles.pop())
    assert info.status is RunStatus.SUCCEEDED
    time.sleep(1.5)  # a second job, had one been started, would have run by now
    assert len(journal.read_text().splitlines()) == 1


def running_sleeper(engine, store, tmp_path, name, pid_of="os.getpid()"):
    """A run that writes a pid (its own, or `os.getppid()`: its wrapper's) and sleeps; returned
    once it is running and the pid is written: (executor, handle, pid)."""
    pid_file = tmp_path / f"{name}.pid"
    command = job(tmp_path, f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str({pid_of}))
        time.sleep(120)
    """)
    ex = executor(engine, store)
    handle = ex.submit(f"c/{name}/seed1", RunSpec(command=command, run_dir=tmp_path / "agent" / name))
    wait(ex, handle, until=lambda s: s is RunStatus.RUNNING)
    deadline = time.time() + 30
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    return ex, handle, int(pid_file.read_text())


def test_cancel_ends_a_running_run_and_its_processes(cluster_engine, store, scratch, tmp_path):
    ex, handle, pid = running_sleeper(cluster_engine, store, tmp_path, "long")
    ex.cancel(handle)
    info = wait(ex, handle, timeout=60)
    assert info.status is RunStatus.CANCELLED
    deadline = time.time() + 20
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "the command outlived its cancel"


def test_a_failing_command_fails_with_its_exit_code_and_a_full_executor_refuses(cluster_engine, store, scratch,
                                                                                 tmp_path):
    ex = executor(cluster_engine, store, max_parallel=1)
    failing = job(tmp_path, """
        import sys, time
        time.sleep(1.5)
        print("out of cheese", flush=True)
        sys.exit(3)
    """)
    handle = ex.submit("c/bad/seed1", RunSpec(command=failing, run_dir=tmp_path / "agent" / "bad"))
    with pytest.raises(ExecutorFull):
        ex.submit("c/next/seed1", RunSpec(command=failing, run_dir=tmp_path / "agent" / "next"))
    info = wait(ex, handle)
    assert info.status is RunStatus.FAILED and info.exit_code == 3
    assert "out of cheese" in ex.logs(handle)
    assert ex.submit("c/next/seed1", RunSpec(command=failing, run_dir=tmp_path / "agent" / "next"))  # room again


def test_a_run_whose_supervisor_was_killed_reads_lost(cluster_engine, store, scratch, tmp_path):
    """The wrapper is SIGKILLed on its host (a node lost, the job killed from outside): no
    end reaches the store, and once its heartbeats stop the run is LOST (preemption)."""
    ex, handle, wrapper = running_sleeper(cluster_engine, store, tmp_path, "lost", pid_of="os.getppid()")
    os.kill(wrapper, signal.SIGKILL)
    info = wait(ex, handle, timeout=60)
    assert info.status is RunStatus.LOST and info.started_at is not None


def test_slurm_runs_are_seen_while_slurmctld_is_down_and_new_ones_wait(slurm_engine, store, scratch, tmp_path):
    from cluster_engines import answers

    if slurm_engine.down is None:
        pytest.skip("this Slurm cluster was not started by the tests: its controller is not ours to stop")
    command = job(tmp_path, """
        import time
        time.sleep(4)
        open("result.json", "w").write("{}")
    """)
    ex = executor(slurm_engine, store)
    handle = ex.submit("c/outage/seed1", RunSpec(command=command, run_dir=tmp_path / "agent" / "outage"))
    wait(ex, handle, until=lambda s: s is RunStatus.RUNNING)
    subprocess.run(slurm_engine.down, check=True, timeout=60)
    try:
        assert not answers(slurm_engine)
        with pytest.raises(ExecutorFull, match="did not answer"):
            ex.submit("c/during/seed1", RunSpec(command=command, run_dir=tmp_path / "agent" / "during"))
        info = wait(ex, handle, timeout=60)  # the job went on under slurmd and reported to the store
        assert info.status is RunStatus.SUCCEEDED
    finally:
        subprocess.run(slurm_engine.restart, check=True, timeout=60)
    deadline = time.time() + 60
    while not answers(slurm_engine) and time.time() < deadline:
        time.sleep(0.5)
    later = submit_once_it_answers(ex, "c/during/seed1", RunSpec(command=command, run_dir=tmp_path / "agent" / "during"))
    assert wait(ex, later).status is RunStatus.SUCCEEDED


def test_a_ray_head_restart_loses_nothing_it_reported(ray_engine, store, scratch, tmp_path):
    """The head goes down with a run on it and comes back without it: the run either
    reported its end before it went, or reads LOST (preemption, tried again by the agent);
    meanwhile nothing new is submitted, and afterwards runs go on."""
    from cluster_engines import answers

    if ray_engine.down is None:
        pytest.skip("this Ray head was not started by the tests: it is not ours to stop")
    command = job(tmp_path, """
        import time
        time.sleep(30)
    """)
    ex = executor(ray_engine, store)
    handle = ex.submit("c/head/seed1", RunSpec(command=command, run_dir=tmp_path / "agent" / "head"))
    wait(ex, handle, until=lambda s: s is RunStatus.RUNNING)
    subprocess.run(ray_engine.down, check=True, timeout=120)
    try:
        with pytest.raises(ExecutorFull, match="did not answer"):
            ex.submit("c/during/seed1", RunSpec(command=command, run_dir=tmp_path / "agent" / "during"))
    finally:
        subprocess.run(ray_engine.restart, check=True, timeout=180, capture_output=True)
    deadline = time.time() + 60
    while not answers(ray_engine) and time.time() < deadline:
        time.sleep(0.5)
    info = wait(ex, handle, timeout=90)
    assert info.status in (RunStatus.LOST, RunStatus.SUCCEEDED), info
    quick = job(tmp_path, """
        print("after the outage")
    """)
    later = submit_once_it_answers(ex, "c/after/seed1", RunSpec(command=quick, run_dir=tmp_path / "agent" / "after"))
    assert wait(ex, later).status is RunStatus.SUCCEEDED


def test_files_travel_one_way_each_and_a_new_attempt_starts_from_its_inputs(tmp_path):
    """No engine needed: what the agent packs for a run, and what it fetches back."""
    from rankwright.executors.cluster import pack_files, unpack_files

    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "config.yaml").write_text(f"out: {agent}/result.json\n")
    (agent / "checkpoint.pt").write_bytes(b"x" * (2 << 20))  # too big to travel
    (agent / ".hidden").write_text("not for the run")
    inputs = pack_files(agent, inputs_only=True)
    assert set(inputs) == {"config.yaml"}
    node = tmp_path / "node"
    assert unpack_files(inputs, node, replace=(str(agent), str(node))) == 1
    assert (node / "config.yaml").read_text() == f"out: {node}/result.json\n"  # this host's path
    assert unpack_files(inputs, node, replace=(str(agent), str(node))) == 0  # unchanged: not written again
    (node / "result.json").write_text('{"loss": 1}')
    unpack_files({"result.json": pack_files(node)["result.json"]}, agent, remember=True)
    assert (agent / "result.json").read_text() == '{"loss": 1}'
    assert set(pack_files(agent, inputs_only=True)) == {"config.yaml"}  # the next attempt's inputs


def _fake_executor(store, reports, max_parallel=2):
    """No engine needed: a scheduler whose answer comes while a short run starts and ends
    (the wrapper reporting to the store between the agent's read and that answer)."""
    from rankwright.executors.cluster import ClusterExecutor

    class Fake(ClusterExecutor):
        engine = "fake"

        def _launch(self, handle, claim, spec):
            return f"job-{handle}"

        def _find_job(self, handle, claim):
            return None

        def _job_state(self, job_id):
            handle = job_id.removeprefix("job-")
            if reports:
                now = time.time()
                store.update_executor_run(handle, started_at=now, heartbeat_at=now)
                store.update_executor_run(handle, ended_at=now + 0.3, exit_code=0)
            return "ended"

        def _cancel_job(self, job_id):
            pass

    return Fake(store, max_parallel, scope="c/")


@pytest.mark.parametrize("reports", [True, False], ids=["ran-meanwhile", "never-ran"])
def test_a_run_that_ends_while_the_scheduler_is_asked_is_not_lost(tmp_path, reports):
    """The agent reads the record (not started), asks the scheduler, and a 0.3 s run starts
    and ends before the answer (the job: ended). That is the run's success, not a lost run
    to try again (which ran it twice); a job that ended with nothing recorded is lost."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    ex = _fake_executor(store, reports)
    handle = ex.submit("c/short/seed1", RunSpec(command=["true"], run_dir=tmp_path / "run"))
    assert store.executor_run(handle).started_at is None
    info = ex.status(handle)
    assert info.status is (RunStatus.SUCCEEDED if reports else RunStatus.LOST)


def test_a_scheduler_that_did_not_answer_is_not_asked_again_at_once(tmp_path, monkeypatch):
    """During an outage each question can take a command's whole timeout: one wake asking
    about ten runs would wait ten times. After one silence the executor answers for it."""
    from rankwright.executors import cluster
    from rankwright.executors.cluster import SchedulerUnavailable

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    ex = _fake_executor(store, reports=False, max_parallel=10)
    asked = []

    def silent(*args):
        asked.append(args)
        raise SchedulerUnavailable("squeue did not answer within 30 s")

    monkeypatch.setattr(ex, "_find_job", silent)
    for i in range(5):
        with pytest.raises(ExecutorFull, match="did not answer"):
            ex.submit(f"c/x/seed{i}", RunSpec(command=["true"], run_dir=tmp_path / f"run{i}"))
    assert len(asked) == 1
    monkeypatch.setattr(cluster, "QUIET_S", 0.0)
    ex._quiet_until = 0.0  # the quiet time is over: asked again
    with pytest.raises(ExecutorFull):
        ex.submit("c/x/seed9", RunSpec(command=["true"], run_dir=tmp_path / "run9"))
    assert len(asked) == 2
