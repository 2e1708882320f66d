"""Chaos: the agent is SIGKILLed at 30 random points (and at the exact point between
submit and handle record); the campaign still ends with every planned experiment run
exactly once, no result lost, and the ledger equal to the sum of the runs' costs."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml

from rankwright.agent.budget import LedgerEntry, ledger
from rankwright.store import open_store
from rankwright.store.records import ExperimentStatus

JOB = """
import json, sys, time, pathlib, yaml
config = yaml.safe_load(open(sys.argv[1]))
run_dir = pathlib.Path(sys.argv[2])
with open(sys.argv[3], "a") as ran:                      # one line per real execution
    ran.write(config["tag"] + "\\n")
time.sleep(0.2)
(run_dir / "metrics.jsonl").write_text(json.dumps({"event": "result", "loss": config["x"] * 0.1}) + "\\n")
"""

N_CHANGES = 6


def _target(tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    return {
        "name": "fast-job",
        "command": ["{python}", "{root}/job.py", "{config}", "{run_dir}", str(tmp_path / "ran.log")],
        "base_config": {"x": 1, "tag": "baseline", "seed": 0},
        "knobs": [
            {"path": "x", "kind": "int", "low": 0, "high": 100, "default": 1},
            {"path": "tag", "kind": "str", "default": "baseline"},
            {"path": "train.seed", "kind": "int", "low": 0, "high": 1000, "default": 0},
        ],
        "metrics": {"file": "metrics.jsonl", "format": "jsonl", "event_key": "event", "result_event": "result",
                    "objective": "loss", "direction": "minimize"},
        "cost": {"unit": "cpu_hours", "overhead_seconds": 0.5, "per_row_seconds": 0.001, "rows": 1, "epochs": 1,
                 "size_exponent": 0.0},
    }


@pytest.fixture
def campaign(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    (tmp_path / "target.yaml").write_text(yaml.safe_dump(_target(tmp_path)))
    spec = {
        "name": "chaos", "target": "target.yaml", "budget": {"amount": 10.0}, "max_parallel": 3,
        "baseline_seeds": 2,
        "changes": [{"name": f"c{i}", "set": {"x": i + 2, "tag": f"c{i}"}} for i in range(N_CHANGES)],
    }
    path = tmp_path / "chaos.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    planned = subprocess.run([sys.executable, "-m", "rankwright", "plan", str(path)], env=env,
                             capture_output=True, text=True)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    approved = subprocess.run([sys.executable, "-m", "rankwright", "approve", str(path), "--yes"], env=env,
                              capture_output=True, text=True)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    (tmp_path / "ran.log").write_text("")  # the smoke run is not part of the campaign
    return path


def _wake(path, crash_at=None):
    env = {**os.environ}
    if crash_at:
        env["RANKWRIGHT_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-m", "rankwright", "wake", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_anywhere_loses_nothing_and_runs_everything_once(campaign, tmp_path):
    rng = random.Random(20261126)
    kills = 0
    for crash_at in ("after_intent", "after_submit", "after_submit"):  # the exact dangerous points
        proc = _wake(campaign, crash_at)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        kills += 1
    while kills < 30:
        proc = _wake(campaign)
        time.sleep(rng.uniform(0.0, 0.8))  # land anywhere: start-up, reconcile, submit, exit
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
    deadline = time.time() + 120
    store = open_store()
    while time.time() < deadline and store.campaign("chaos").status != "finished":
        assert _wake(campaign).wait(timeout=60) == 0
        time.sleep(0.3)
    assert store.campaign("chaos").status == "finished"

    experiments = store.experiments(store.campaign("chaos").id)
    expected = {"chaos/baseline/seed1", "chaos/baseline/seed2"} | {f"chaos/c{i}/seed1" for i in range(N_CHANGES)}
    assert {e.idempotency_key for e in experiments} == expected
    assert all(e.status is ExperimentStatus.SUCCEEDED and e.metrics for e in experiments)
    ran = (tmp_path / "ran.log").read_text().split()
    assert sorted(ran) == sorted(["baseline", "baseline"] + [f"c{i}" for i in range(N_CHANGES)]), ran
    current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost) for e in experiments)
    assert current.reserved == 0
    assert current.spent == pytest.approx(sum(e.actual_cost for e in experiments))
