"""The budget through the real wake loop, with parallel runs in flight: reservations never
pass the approved budget, the campaign pauses at the threshold, and halts at the cap."""

import os
import subprocess
import sys
import time

import yaml

from rankwright.agent.budget import LedgerEntry, ledger
from rankwright.store import open_store

sys.path.insert(0, os.path.dirname(__file__))
from test_chaos import _target  # noqa: E402  (the same fast external target)


def _setup(tmp_path, monkeypatch, amount, pause=0.8, hard_cap=None, per_run_seconds=360.0):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    target = _target(tmp_path)
    target["cost"]["overhead_seconds"] = per_run_seconds  # each run predicted at 0.1 h
    (tmp_path / "target.yaml").write_text(yaml.safe_dump(target))
    budget = {"amount": amount, "pause_threshold": pause, **({"hard_cap": hard_cap} if hard_cap else {})}
    spec = {"name": "b", "target": "target.yaml", "budget": budget, "max_parallel": 4, "baseline_seeds": 2,
            "changes": [{"name": f"c{i}", "set": {"x": i + 2, "tag": f"c{i}"}} for i in range(8)]}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec))
    for command in (["plan", str(path)], ["approve", str(path), "--yes"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return path


def _wake(path):
    return subprocess.run([sys.executable, "-m", "rankwright", "wake", str(path)], capture_output=True, text=True)


def test_reservations_never_pass_the_budget_and_the_campaign_pauses(tmp_path, monkeypatch):
    path = _setup(tmp_path, monkeypatch, amount=0.45)  # 10 runs of ~0.1 h planned, 0.45 approved
    job = tmp_path / "job.py"  # runs that stay in flight for a while, so reservations pile up
    job.write_text(job.read_text().replace("time.sleep(0.2)", "time.sleep(15)"))  # in flight past 2 slow wakes
    store = open_store()
    campaign = store.campaign("b")
    for _ in range(40):
        out = _wake(path)
        assert out.returncode == 0, out.stderr
        experiments = store.experiments(campaign.id)
        current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost) for e in experiments)
        assert current.committed <= 0.45 + 1e-9, current  # also while runs are in flight
        if store.campaign("b").status == "paused":
            break
        time.sleep(0.3)
    assert store.campaign("b").status == "paused"
    assert 0 < len(store.experiments(campaign.id)) <= 4  # 4 x 0.1 h reserved of 0.45: the fifth must wait
    assert any(e.kind == "budget" and "pause threshold" in e.message for e in store.events(campaign.id))
    shown = subprocess.run([sys.executable, "-m", "rankwright", "status", str(path)], capture_output=True, text=True)
    assert "paused" in shown.stdout and "left" in shown.stdout


def test_the_hard_cap_halts_and_cancels_what_still_runs(tmp_path, monkeypatch):
    path = _setup(tmp_path, monkeypatch, amount=10.0, pause=1.0, hard_cap=10.0)
    store = open_store()
    campaign = store.campaign("b")
    assert _wake(path).returncode == 0
    # Pretend the measured spend already reached the cap (e.g. runs far costlier than predicted).
    first = store.experiments(campaign.id)[0]
    store.mark_finished(first.id, type(first.status)("succeeded"), 10.0, {"objective": 0.1})
    out = _wake(path)
    assert out.returncode == 0 and "halt" in out.stdout
    assert store.campaign("b").status == "halted"
    rows_at_halt = len(store.experiments(campaign.id))
    deadline = time.time() + 30
    while time.time() < deadline and not all(e.status.is_terminal for e in store.experiments(campaign.id)):
        _wake(path)
        time.sleep(0.3)
    statuses = {e.status.value for e in store.experiments(campaign.id)}
    assert statuses <= {"succeeded", "cancelled"}
    assert len(store.experiments(campaign.id)) == rows_at_halt  # nothing new after the halt


def test_a_run_that_can_never_fit_pauses_the_campaign_instead_of_waiting_for_ever(tmp_path, monkeypatch):
    path = _setup(tmp_path, monkeypatch, amount=0.05, pause=1.0)  # every run is predicted at 0.1 h
    out = _wake(path)
    assert out.returncode == 0, out.stderr
    store = open_store()
    campaign = store.campaign("b")
    assert campaign.status == "paused"
    assert not store.experiments(campaign.id)  # nothing reserved past the budget
    reasons = [e.message for e in store.events(campaign.id) if e.kind == "guardrail"]
    assert reasons and "nothing is in flight" in reasons[-1] and "rankwright approve" in reasons[-1]
