"""A small campaign end to end on the built-in target: staying up, and detached (no agent
process alive while runs train; each run's wrapper wakes the campaign when it ends)."""

import json
import time

import pytest
import yaml
from typer.testing import CliRunner

from rankwright.cli.main import app
from rankwright.store import open_store
from rankwright.store.records import ExperimentStatus

runner = CliRunner()
SPEC = {
    "name": "w1",
    "base_config": {"data": {"source": "synthetic", "synthetic": {"rows": 10_000}},
                    "model": {"hidden_units": [32]}, "train": {"epochs": 1}},
    "budget": {"amount": 1.0},
    "max_parallel": 2,
    "baseline_seeds": 2,
    "changes": [{"name": "wider", "set": {"model.embedding_dim": 16}}],
    # small phases: one validation round, a short Optuna search, a 3-seed confirmation
    "strategy": {"rounds": 1, "full_seeds": 2, "trials": 2, "confirmation_seeds": 3, "fidelity_check_rejected": 1,
                 "low_fidelity": {"data.train_fraction": 0.5}},  # on tiny runs only when asked
}


@pytest.fixture
def approved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert runner.invoke(app, ["plan", str(spec), "--skip-smoke"]).exit_code == 1
    return spec


def _approve_for_test(spec):
    """Tests skip the smoke run; record the approval the way `approve` would after it passed."""
    store = open_store()
    campaign = store.campaign("w1")
    plan_id, document, _ = store.latest_plan(campaign.id)
    store.record_approval(plan_id, "test", 1.0, "cpu_hours", via_yes_flag=True)
    store.set_campaign_status(campaign.id, "approved")
    return store, campaign


def test_nothing_runs_before_approval(approved):
    result = runner.invoke(app, ["wake", str(approved)])
    assert result.exit_code == 2 and "no approved plan" in result.output
    ran = runner.invoke(app, ["run", str(approved), "--detach"])
    assert ran.exit_code == 2 and "rankwright approve" in ran.output and "wake the campaign" not in ran.output
    assert open_store().experiments(open_store().campaign("w1").id) == []


def _decided_keys(store, campaign):
    plan = store.latest_plan(campaign.id)[1]
    entries = [*plan["experiments"], *(e for r in store.revisions(campaign.id) for e in r.body["experiments"])]
    return [f"w1/{e['name']}/seed{e['seed']}" for e in entries]


def test_run_goes_through_the_phases_and_runs_every_decided_experiment_once(approved):
    store, campaign = _approve_for_test(approved)
    result = runner.invoke(app, ["run", str(approved), "--interval", "0.5"])
    assert result.exit_code == 0, result.output
    assert store.campaign("w1").status == "finished" and "revision 1 (" in result.output
    experiments = store.experiments(campaign.id)
    decided = _decided_keys(store, campaign)
    assert len(decided) == len(set(decided))  # no revision repeats a run
    assert sorted(e.idempotency_key for e in experiments) == sorted(decided)
    assert {"w1/baseline@low/seed1", "w1/baseline@low/seed2", "w1/wider@low/seed1", "w1/wider@low/seed2",
            "w1/baseline/seed1", "w1/baseline/seed2"} <= set(decided)  # validation at low fidelity, then full
    assert all(e.status.is_terminal for e in experiments)
    # validation may add seeds to a borderline hypothesis (the two-stage rule) before the later phases
    assert {"combination", "exploitation"} <= {r.phase for r in store.revisions(campaign.id)} <= {
        "validation", "combination", "exploitation"}
    assert all(r.body.get("step") == "more seeds" for r in store.revisions(campaign.id) if r.phase == "validation")
    seeds = {e.idempotency_key: e.metrics["objective"] for e in experiments if e.metrics}
    assert seeds["w1/baseline/seed1"] != seeds["w1/baseline/seed2"]  # repeats really use their seed
    assert sum(e.actual_cost for e in experiments) > 0
    assert [e.kind for e in store.events(campaign.id)][-1] == "finish"
    from pathlib import Path

    root = Path(".rankwright")  # the runs share one processed-data cache, not a copy each
    # one per distinct data set: all rows, half of them, and any a trial's processing knob made
    datas = {json.dumps(yaml.safe_load(f.read_text())["data"], sort_keys=True)
             for f in (root / "experiments").glob("*/experiment.yaml")}
    assert len(datas) >= 2 and len(list((root / "cache").glob("data-*.pt"))) == len(datas)
    assert not list((root / "experiments").glob("*/.rankwright/cache/*"))
    again = runner.invoke(app, ["wake", str(approved)])  # waking a finished campaign changes nothing
    assert "submitted 0" in again.output and len(store.experiments(campaign.id)) == len(experiments)
    # what a wake does (observe, learn, decide, render the next config) never needs torch
    script = ("from pathlib import Path\n"
              "from rankwright.agent.spec import load_campaign\n"
              "from rankwright.agent.observe import observe\n"
              "from rankwright.agent.learning import learn\n"
              "from rankwright.agent.decide import decide\n"
              "from rankwright.agent.naming import work_dir\n"
              "from rankwright.store import open_store\n"
              "spec, target = load_campaign(Path('c.yaml'))\n"
              "store = open_store(); c = store.campaign(spec.name)\n"
              "state = observe(store, spec, target, Path('.rankwright').resolve(), c.id, store.latest_plan(c.id)[1])\n"
              "learn(store, spec, target, state); decide(state)\n"
              "target.render({'model.dropout': 0.1}, work_dir(Path('.rankwright'), 'x'))\n")
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-X", "importtime", "-c", script], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert not [line for line in probe.stderr.splitlines() if line.rstrip().endswith("| torch")]


def test_detached_campaign_finishes_with_no_agent_process(approved):
    store, campaign = _approve_for_test(approved)
    result = runner.invoke(app, ["run", str(approved), "--detach"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["status", str(approved)])  # runs train: not just "approved"
    assert "campaign w1: running" in shown.output and "in flight" in shown.output, shown.output
    deadline = time.time() + 180
    while time.time() < deadline and store.campaign("w1").status != "finished":
        time.sleep(0.5)
    assert store.campaign("w1").status == "finished"
    count = len(_decided_keys(store, campaign))
    assert len(store.experiments(campaign.id)) == count > 6
    assert [e.kind for e in store.events(campaign.id)].count("submit") == count


def test_pause_stops_submitting_resume_continues_stop_is_final(approved):
    store, campaign = _approve_for_test(approved)
    assert runner.invoke(app, ["pause", str(approved)]).exit_code == 0
    paused = runner.invoke(app, ["wake", str(approved)])
    assert "paused" in paused.output and store.experiments(campaign.id) == []
    assert runner.invoke(app, ["pause", str(approved)]).exit_code == 2  # already paused
    assert runner.invoke(app, ["resume", str(approved)]).exit_code == 0
    assert "submitted 2" in runner.invoke(app, ["wake", str(approved)]).output  # max_parallel
    stopped = runner.invoke(app, ["stop", str(approved)])
    assert stopped.exit_code == 0 and "cancelled 3 runs" in stopped.output  # 2 in flight, 1 intent
    assert runner.invoke(app, ["resume", str(approved)]).exit_code == 2
    deadline = time.time() + 60
    while time.time() < deadline and not all(
        e.status.is_terminal for e in store.experiments(campaign.id)
    ):
        runner.invoke(app, ["wake", str(approved)])
        time.sleep(0.3)
    assert {e.status for e in store.experiments(campaign.id)} == {ExperimentStatus.CANCELLED}, [(e.status, e.executor_handle) for e in store.experiments(campaign.id)]
    assert [e.kind for e in store.events(campaign.id)][-1] in ("stop", "collect")
