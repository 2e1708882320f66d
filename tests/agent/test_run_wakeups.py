"""A staying-up `rankwright run` sleeps between wakes and is woken by what happens: a run
ending (the executor's index folder changes) or a person's act (the doorbell). Its timer is
set to two minutes here, so a campaign that moves faster than that was woken by events."""

import os
import subprocess
import sys
import time

import pytest
import yaml

from rankwright.agent.doorbell import Alarm, ring
from rankwright.store import open_store
from rankwright.store.records import ExperimentStatus

JOB = """
import json, os, sys, time, pathlib, yaml
config = yaml.safe_load(open(sys.argv[1]))
time.sleep(config["sleep"])
while os.path.exists(sys.argv[3]):                     # held while the test wants a run in flight
    time.sleep(0.1)
(pathlib.Path(sys.argv[2]) / "metrics.jsonl").write_text(json.dumps({"event": "result", "loss": config["x"]}) + "\\n")
"""
TIMER = "120"


def _campaign(tmp_path, sleep: float, changes: int) -> str:
    (tmp_path / "job.py").write_text(JOB)
    target = {
        "name": "sleepy-job",
        "command": ["{python}", "{root}/job.py", "{config}", "{run_dir}", str(tmp_path / "hold")],
        "base_config": {"x": 1.0, "sleep": sleep, "seed": 0},
        "knobs": [
            {"path": "x", "kind": "float", "low": 0, "high": 100, "default": 1.0},
            {"path": "sleep", "kind": "float", "low": 0, "high": 600, "default": 0.0},
            {"path": "train.seed", "kind": "int", "low": 0, "high": 1000, "default": 0},
        ],
        "metrics": {"file": "metrics.jsonl", "format": "jsonl", "event_key": "event", "result_event": "result",
                    "objective": "loss", "direction": "minimize"},
        "cost": {"unit": "cpu_hours", "overhead_seconds": 0.5, "per_row_seconds": 0.001, "rows": 1, "epochs": 1,
                 "size_exponent": 0.0},
    }
    (tmp_path / "target.yaml").write_text(yaml.safe_dump(target))
    spec = {"name": "wakeups", "target": "target.yaml", "budget": {"amount": 10.0}, "max_parallel": 1,
            "baseline_seeds": 1, "hypotheses": {"seeds": 1},  # one seed each: nothing is promoted
            "strategy": {"full_seeds": 2, "trials": 0},  # so the later phases run nothing more
            "changes": [{"name": f"c{i}", "set": {"x": float(i + 2)}} for i in range(changes)]}
    path = tmp_path / "wakeups.yaml"
    path.write_text(yaml.safe_dump(spec))
    for command in (["plan", str(path)], ["approve", str(path), "--yes"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return str(path)


def _start_run(path: str, log):
    return subprocess.Popen([sys.executable, "-m", "rankwright", "run", path, "--interval", TIMER],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    return tmp_path


def test_run_wakes_when_each_run_ends_not_on_its_timer(workdir):
    path = _campaign(workdir, sleep=0.3, changes=3)  # 4 runs one after another
    with open(workdir / "run.log", "w") as log:
        agent = _start_run(path, log)
        try:
            assert agent.wait(timeout=60) == 0, (workdir / "run.log").read_text()
        finally:
            agent.kill()
    store = open_store()
    campaign = store.campaign("wakeups")
    assert campaign.status == "finished"
    experiments = store.experiments(campaign.id)
    assert len(experiments) == 4 and all(e.status is ExperimentStatus.SUCCEEDED for e in experiments)
    # From each run's end (exit.json) to its collection by the agent: well under the timer.
    ends = {}
    for folder in (workdir / ".rankwright" / "runs").iterdir():
        if (folder / "exit.json").exists():
            ends[(folder / "claim").read_text()] = yaml.safe_load((folder / "exit.json").read_text())["ended_at"]
    collected = {e.message.split(":")[0]: e.time.timestamp() for e in store.events(campaign.id) if e.kind == "collect"}
    latencies = [collected[key] - ends[key] for key in ends]
    assert len(latencies) == 4 and max(latencies) < 5.0, latencies


def test_a_person_act_wakes_the_waiting_run(workdir):
    path = _campaign(workdir, sleep=0.0, changes=1)
    (workdir / "hold").touch()  # the first run stays in flight
    with open(workdir / "run.log", "w") as log:
        agent = _start_run(path, log)
        try:
            store = open_store()
            _until(lambda: any(e.executor_handle for e in store.experiments(store.campaign("wakeups").id)),
                   30, "the first submission")
            assert subprocess.run([sys.executable, "-m", "rankwright", "pause", path]).returncode == 0
            _until(lambda: "waiting for `rankwright resume`" in (workdir / "run.log").read_text(), 15,
                   "the agent to notice the pause")
            assert agent.poll() is None  # paused: still up, waiting for a person
            t0 = time.monotonic()
            assert subprocess.run([sys.executable, "-m", "rankwright", "stop", path]).returncode == 0
            assert agent.wait(timeout=20) == 0, (workdir / "run.log").read_text()
            assert time.monotonic() - t0 < 20
        finally:
            agent.kill()
            (workdir / "hold").unlink()
    assert "campaign stopped" in (workdir / "run.log").read_text()


def test_alarm_returns_on_a_ring_and_on_its_timer(tmp_path):
    with Alarm([tmp_path / ".doorbell"], tick_s=0.2) as alarm:
        t0 = time.monotonic()
        assert alarm.wait(0.5) == []
        assert 0.4 < time.monotonic() - t0 < 3
        ring(tmp_path, "c1", "resume")  # rung while nobody waits: kept for the next wait
        t0 = time.monotonic()
        changed = alarm.wait(30)
        assert time.monotonic() - t0 < 3 and any(p.endswith("c1") or ".c1." in p for p in changed), changed


def test_first_seed_moves_every_repeats_training_seed(workdir):
    """Two campaigns with other first seeds share no training seed (the head-to-head gives
    each method seed its own): repeat n trains on first_seed + n - 1."""
    path = _campaign(workdir, sleep=0.0, changes=1)
    spec = yaml.safe_load(open(path))
    spec.update(name="seeded", first_seed=500, baseline_seeds=2)
    open(path, "w").write(yaml.safe_dump(spec))
    for command in (["plan", path], ["approve", path, "--yes"], ["run", path, "--interval", "1"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", *command], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    store = open_store()
    runs = [e for e in store.experiments(store.campaign("seeded").id) if e.status is ExperimentStatus.SUCCEEDED]
    from rankwright.agent.naming import work_dir

    seeds = {e.seed: yaml.safe_load((work_dir(workdir / ".rankwright", e.idempotency_key) / "experiment.yaml")
                                    .read_text())["train"]["seed"] for e in runs}
    assert seeds == {1: 500, 2: 501}, seeds
