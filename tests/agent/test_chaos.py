"""Chaos: the agent is SIGKILLed 30 times while a campaign goes through validation,
combination and exploitation; it still ends with every decided experiment run exactly
once, no result or insight lost, the same decisions as an uninterrupted run, and the
ledger equal to the sum of the runs' costs."""

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


# A job whose objective depends on its knobs and on a seed noise shared by every arm (so
# paired comparisons work as on a real model), deterministic for a config and seed.
PHASED_JOB = """
import hashlib, json, os, sys, time, pathlib, random, yaml
config = yaml.safe_load(open(sys.argv[1]))
run_dir = pathlib.Path(sys.argv[2])
with open(sys.argv[3], "a") as ran:
    ran.write(run_dir.name + "\\n")
seed = config["train"]["seed"]
own = int(hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8], 16)
loss = (0.9 - 0.02 * (config["x"] == 3) - 0.015 * (config["y"] == 2) + 0.01 * (config["x"] == 5)
        + 0.5 * (config["train"]["lr"] - 0.01) ** 2 + random.Random(seed).gauss(0, 0.01)
        + random.Random(own).gauss(0, 0.002))
time.sleep(float(os.environ.get("CHAOS_JOB_SLEEP", "0.2")))
(run_dir / "metrics.jsonl").write_text(json.dumps({"event": "result", "loss": loss}) + "\\n")
"""


def _phased_campaign(folder, monkeypatch, budget=None, strategy=None, executor=None):
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    (folder / "job.py").write_text(PHASED_JOB)
    target = {
        "name": "toy", "command": ["{python}", "{root}/job.py", "{config}", "{run_dir}", str(folder / "ran.log")],
        "base_config": {"x": 1, "y": 1, "train": {"seed": 0, "lr": 0.01}},
        "knobs": [{"path": "x", "kind": "int", "low": 0, "high": 10, "default": 1},
                  {"path": "y", "kind": "int", "low": 0, "high": 10, "default": 1},
                  {"path": "train.seed", "kind": "int", "low": 0, "high": 1000, "default": 0},
                  {"path": "train.lr", "kind": "float", "low": 0.0001, "high": 1.0, "default": 0.01, "log": True}],
        "metrics": {"file": "metrics.jsonl", "format": "jsonl", "objective": "loss", "direction": "minimize"},
        "cost": {"unit": "cpu_hours", "overhead_seconds": 0.5, "per_row_seconds": 0.001, "rows": 1, "epochs": 1,
                 "size_exponent": 0.0},
    }
    (folder / "target.yaml").write_text(yaml.safe_dump(target))
    spec = {"name": "chaos", "target": "target.yaml", "budget": budget or {"amount": 10.0},
            "baseline_seeds": 3,
            "changes": [{"name": n, "set": s} for n, s in (("x3", {"x": 3}), ("y2", {"y": 2}), ("x5", {"x": 5}))],
            # pruning depends on when a wake looks at a running trial, so it is off where runs are compared
            "max_parallel": 2, "strategy": {"trials": 10, "prune": False, "confirmation_seeds": 4,
                         "search_space": {"train.lr": {"low": 0.001, "high": 0.1, "log": True}}, **(strategy or {})},
            **({"executor": executor} if executor else {})}
    path = folder / "chaos.yaml"
    path.write_text(yaml.safe_dump(spec))
    for command in (["plan", str(path)], ["approve", str(path), "--yes"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    (folder / "ran.log").write_text("")  # the smoke run is not part of the campaign
    return path


def _wake(path, crash_at=None, after_s=None, crash_log=None):
    env = {**os.environ, "RANKWRIGHT_WAKE_ON_EXIT": "0"}  # only the test's wakes act (and die)
    if crash_at:
        env["RANKWRIGHT_CRASH_AT"] = crash_at
    if crash_log:
        env["RANKWRIGHT_CRASH_LOG"] = str(crash_log)
    if after_s is not None:
        env["RANKWRIGHT_CRASH_AFTER_S"] = f"{after_s:.3f}"
    return subprocess.Popen([sys.executable, "-m", "rankwright", "wake", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(path, store, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline and store.campaign("chaos").status != "finished":
        proc = _wake(path)
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
        time.sleep(0.2)
    assert store.campaign("chaos").status == "finished"


def _outcome(store):
    campaign = store.campaign("chaos")
    revisions = [(r.number, r.phase, r.reason, [(e["name"], e["seed"]) for e in r.body["experiments"]])
                 for r in store.revisions(campaign.id)]
    insights = sorted((i.uid, i.technique, i.seeds, round(i.effect, 12)) for i in store.insights())
    return revisions, insights


_CALM: dict = {}


def _calm_outcome(tmp_path, monkeypatch):
    """The decisions of an uninterrupted run of the phased campaign (the same on every
    executor: its jobs are deterministic), computed once per session."""
    if "outcome" not in _CALM:
        calm = _phased_campaign(tmp_path / "calm", monkeypatch)
        store = open_store()
        _finish(calm, store)
        _CALM["outcome"] = _outcome(store)
    return _CALM["outcome"]


def _thirty_kills(path, store):
    """At least 30 SIGKILLs, with every crash point and a random time among them. A point
    inside a decision (`in_decide`, `after_revision`) is only reached by the one wake that
    decides, and which wake that is depends on the engine's speed: so while some points have
    not been hit, every wake carries all of those (it dies at the first it reaches, and says
    which in the crash log); then the wakes rotate over the points and random times."""
    rng = random.Random(20261201)
    points = ["after_collect", "in_decide", "after_revision", "after_intent", "after_submit"]
    crash_log = path.parent / "crashes.log"
    kills, landed = 0, {}
    for i in range(400):
        if (kills >= 30 and set(landed) >= {*points, "random time"}) or store.campaign("chaos").status == "finished":
            break
        missing = [p for p in points if p not in landed]
        if missing and ("random time" in landed or i % 3):
            point, after_s = ",".join(missing), None
        elif missing:  # and no random-time kill yet
            point, after_s = None, rng.uniform(0.0, 0.5)
        else:
            point = (points + [None])[i % (len(points) + 1)]
            after_s = None if point else rng.uniform(0.0, 0.5)
        before = crash_log.read_text().split() if crash_log.exists() else []
        proc = _wake(path, crash_at=point, after_s=after_s, crash_log=crash_log)
        if proc.wait(timeout=120) == -signal.SIGKILL:
            kills += 1
            now = crash_log.read_text().split() if crash_log.exists() else []
            where = now[-1] if len(now) > len(before) else "random time"
            landed[where] = landed.get(where, 0) + 1
        time.sleep(0.2)  # runs make progress between wakes
    assert kills >= 30, f"only {kills} kills landed before the campaign finished: {landed}"
    assert set(landed) == {*points, "random time"}, landed  # every crash point was hit


def _engine_runs(store, key):
    """What the executor's records say of every attempt of `key` (to explain a failure)."""
    from sqlalchemy import select

    from rankwright.store.models import ExecutorRun

    with store.session() as s:
        rows = s.scalars(select(ExecutorRun).where(ExecutorRun.key.startswith(key))).all()
        return [(r.handle, r.job_id, r.claimed_at, r.started_at, r.heartbeat_at, r.ended_at, r.exit_code,
                 r.cancel_requested) for r in rows]


def _exact(store, ran_log):
    experiments = store.experiments(store.campaign("chaos").id)
    assert all(e.status is ExperimentStatus.SUCCEEDED and e.metrics for e in experiments)
    ran = ran_log.read_text().split()
    retried = [(e.idempotency_key, e.attempt, e.failure, _engine_runs(store, e.idempotency_key))
               for e in experiments if e.attempt > 1]
    assert len(ran) == len(set(ran)) == len(experiments), f"a run was launched twice or lost: retried {retried}"
    current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost) for e in experiments)
    assert current.reserved == 0
    assert current.spent == pytest.approx(sum(e.actual_cost for e in experiments))
    return experiments


@pytest.mark.slow
def test_thirty_sigkills_through_all_three_phases_change_nothing(tmp_path, monkeypatch):
    """Kills at every crash point (between collect and learn, inside decide, between the
    revision and its submissions, between intent and submit, between submit and handle)
    and at random times inside the work: 0 duplicate runs, 0 lost results or insights,
    the same revisions and proposal as an uninterrupted run, an exact ledger."""
    expected = _calm_outcome(tmp_path, monkeypatch)
    phases = {r[1] for r in expected[0]}
    assert phases == {"combination", "exploitation"} and expected[1], expected  # all three phases ran

    path = _phased_campaign(tmp_path / "chaos", monkeypatch)
    store = open_store()
    _thirty_kills(path, store)
    _finish(path, store)
    assert _outcome(store) == expected  # same decisions, same insights (uids name campaign, arm, seeds)
    _exact(store, tmp_path / "chaos" / "ran.log")


@pytest.mark.slow
def test_thirty_sigkills_on_a_cluster_change_nothing(cluster_engine, tmp_path, monkeypatch):
    """The same chaos with every run a Slurm or Ray job reporting through the store, on a
    host that shares no files with the agent: the same decisions as the uninterrupted local
    run, each run executed once, one engine job per claim, an exact ledger."""
    from cluster_engines import engine_jobs

    expected = _calm_outcome(tmp_path, monkeypatch)
    monkeypatch.setenv("RANKWRIGHT_RUN_SCRATCH", str(tmp_path / "node"))
    path = _phased_campaign(tmp_path / "chaos", monkeypatch, executor=cluster_engine.options)
    store = open_store()
    _thirty_kills(path, store)
    _finish(path, store)
    assert _outcome(store) == expected
    experiments = _exact(store, tmp_path / "chaos" / "ran.log")
    claims = _claims(store)
    assert len(claims) == len(experiments) and engine_jobs(cluster_engine, claims) == len(claims)


def _claims(store):
    from sqlalchemy import select

    from rankwright.store.models import ExecutorRun

    with store.session() as s:
        return {spec["claim"] for spec in s.scalars(select(ExecutorRun.spec))}


@pytest.mark.slow
def test_a_campaign_rides_out_its_engine_going_down(cluster_engine, tmp_path, monkeypatch):
    """slurmctld or the Ray head is down for a while mid-campaign, with runs in flight:
    wakes meanwhile succeed and submit nothing new, nothing is lost, and a run the engine
    lost is triaged as preemption and run again."""
    from cluster_engines import answers

    if cluster_engine.down is None:
        pytest.skip("this engine was not started by the tests: it is not ours to stop")
    monkeypatch.setenv("RANKWRIGHT_RUN_SCRATCH", str(tmp_path / "node"))
    monkeypatch.setenv("CHAOS_JOB_SLEEP", "3")
    # runs report every 3 s (not 10): a run the engine lost reads as lost after 9 s of silence
    path = _phased_campaign(tmp_path / "outage", monkeypatch, executor={**cluster_engine.options, "heartbeat_s": 3},
                            strategy={"trials": 2, "confirmation_seeds": 3})
    store = open_store()
    campaign = store.campaign("chaos")
    deadline = time.time() + 120
    while not any(e.executor_handle and not e.status.is_terminal for e in store.experiments(campaign.id)):
        assert _wake(path).wait(timeout=120) == 0 and time.time() < deadline  # until runs are in flight
        time.sleep(0.3)
    subprocess.run(cluster_engine.down, check=True, timeout=120)
    try:
        before = len(store.experiments(campaign.id))
        for _ in range(3):  # the agent keeps waking while the engine is away
            proc = _wake(path)
            assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
            time.sleep(1)
        submitted = [e for e in store.experiments(campaign.id) if e.executor_handle]
        assert len(store.experiments(campaign.id)) >= before and all(e.executor_handle for e in submitted)
    finally:
        subprocess.run(cluster_engine.restart, check=True, timeout=180, capture_output=True)
    deadline = time.time() + 60
    while not answers(cluster_engine) and time.time() < deadline:
        time.sleep(0.5)
    monkeypatch.setenv("CHAOS_JOB_SLEEP", "0.2")
    _finish(path, store, seconds=400)
    experiments = store.experiments(campaign.id)
    assert all(e.status is ExperimentStatus.SUCCEEDED and e.metrics for e in experiments)
    retried = [e for e in experiments if e.attempt > 1]
    assert all(h.get("kind") == "preempted" for e in retried for h in (e.failure or {}).get("history", [])), \
        [e.failure for e in retried]
    current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost, e.prior_cost) for e in experiments)
    assert current.reserved == 0
    assert current.spent == pytest.approx(sum(e.actual_cost + e.prior_cost for e in experiments))
