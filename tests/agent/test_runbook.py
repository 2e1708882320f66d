"""The runbook: triage of every failure kind from its evidence, the remedies within the
knob schema's bounds, the attempt limit, the failure breaker, and a malformed runbook
refused at load. The campaign tests drive real runs that fail the way the issue found
them (no objective, NaN, infinity, garbage, a hang, a SIGKILL, an explosion) and check
that the campaign goes on, charges what was used, and ends."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest
import yaml

from rankwright.agent.runbook import RunbookError, load_runbook, shipped
from rankwright.agent.spec import SpecError, load_campaign
from rankwright.agent.triage import Evidence, RoleKnob, breaker_trips, classify, treat
from rankwright.store import open_store

RB = shipped()


@pytest.mark.parametrize("evidence, kind", [
    (Evidence(exit_code=1, log_tail="Traceback\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate"), "oom"),
    (Evidence(exit_code=-9, max_rss_mb=7900, memory_limit_mb=8000), "oom"),
    (Evidence(exit_code=137, max_rss_mb=100, memory_limit_mb=8000), "preempted"),
    (Evidence(exit_code=-15), "preempted"),
    (Evidence(lost=True), "preempted"),
    (Evidence(exit_code=1, log_tail="FloatingPointError: training loss is nan in epoch 3"), "nan_loss"),
    (Evidence(exit_code=0, objective=math.nan), "nan_loss"),
    (Evidence(exit_code=0, objective=math.inf), "nan_loss"),
    (Evidence(exit_code=0, objective=0.5, train_losses=(0.5, 0.9, 2.1)), "divergence"),
    (Evidence(exit_code=0, objective=0.5, train_losses=(0.5, float("nan"))), "nan_loss"),
    (Evidence(exit_code=1, log_tail="OSError: [Errno 28] No space left on device"), "disk_full"),
    (Evidence(exit_code=1, log_tail="KeyError: 'c7'\nmissing column c7 in train.csv"), "data_error"),
    (Evidence(exit_code=2, log_tail="pydantic_core.ValidationError: 1 validation error"), "config_error"),
    (Evidence(exit_code=0, result_problem="the result has no 'loss'"), "bad_result"),
    (Evidence(cancelled_for="hang", cancel_evidence="no heartbeat for 400 s"), "hang"),
    (Evidence(exit_code=3, log_tail="something odd"), "unknown"),
    (Evidence(exit_code=0, objective=1.09, valid_ne=1.09, valid_auc=0.92, train_losses=(0.49, 0.27)), "collapsed"),
])
def test_every_kind_is_classified_from_its_evidence(evidence, kind):
    assert classify(evidence, RB).kind == kind


def test_a_healthy_run_is_not_a_failure():
    assert classify(Evidence(exit_code=0, objective=0.41, train_losses=(0.5, 0.45, 0.44)), RB) is None
    # a weak signal is not a collapse: NE near 1 at an AUC near chance is what the data allows
    assert classify(Evidence(exit_code=0, objective=1.001, valid_ne=1.001, valid_auc=0.54), RB) is None
    assert classify(Evidence(exit_code=0, objective=0.43, valid_ne=0.43, valid_auc=0.95), RB) is None


def test_a_collapsed_run_is_flagged_and_its_result_stands():
    """Frappe DCNv2 seed 7 before the trainer's BatchNorm fix: valid AUC 0.92, NE 1.10."""
    collapsed = classify(Evidence(exit_code=0, objective=1.097, valid_ne=1.097, valid_auc=0.9205,
                                  train_losses=(0.487, 0.273)), RB)
    assert collapsed.kind == "collapsed" and "worse than the base rate" in collapsed.evidence
    assert "0.9205" in collapsed.evidence and "0.273" in collapsed.evidence
    kept = treat(collapsed, 1, RB, {})
    assert kept.action == "keep" and kept.changes == {}


def test_remedies_scale_by_role_inside_the_schema_and_stop_at_the_attempt_limit():
    roles = {"learning_rate": RoleKnob("train.learning_rate", 0.01, 1e-5, 1.0),
             "batch_size": RoleKnob("train.batch_size", 4096, 1, 1e6, integer=True),
             "grad_clip": RoleKnob("train.grad_clip", 10.0, 0.0, 1e6)}
    oom = classify(Evidence(exit_code=1, log_tail="CUDA out of memory"), RB)
    first = treat(oom, 1, RB, roles)
    assert first.action == "retry" and first.changes == {"train.batch_size": 2048, "train.learning_rate": 0.005}
    assert treat(oom, 3, RB, roles).action == "give_up"  # max_attempts 3: the third failure ends it
    nan = classify(Evidence(exit_code=0, objective=math.nan), RB)
    step = treat(nan, 1, RB, roles)
    assert step.changes["train.grad_clip"] == 1.0 and step.changes["train.learning_rate"] == pytest.approx(0.003)
    second = treat(nan, 2, RB, roles)  # a second explosion: the hypothesis is unstable, that is a result
    assert second.action == "give_up" and second.ends_as == "unstable"
    floor = {"learning_rate": RoleKnob("lr", 1e-5, 1e-5, 1.0)}  # already at the schema's low bound
    assert treat(nan, 1, RB, floor).changes == {}
    data = classify(Evidence(exit_code=1, log_tail="FileNotFoundError: train.csv"), RB)
    assert treat(data, 1, RB, roles).ends_as == "invalid"  # no retry: it cannot run


def test_a_time_limit_follows_what_this_campaign_s_runs_took_when_the_prior_is_too_low():
    """The FuxiCTR example on a busy machine: a baseline predicted at 87 CPU s ran 890 s of
    wall time and was cancelled at the prior's 868 s, though its twin had taken about as long."""
    from datetime import datetime, timedelta, timezone

    from rankwright.agent.collect import timed_out
    from rankwright.executors import RunInfo, RunStatus

    now = datetime.now(timezone.utc)
    info = RunInfo("h", RunStatus.RUNNING, started_at=now - timedelta(seconds=890))
    prior = 87.0 / 3600.0
    assert "past its limit of 870 s" in timed_out(info, prior, 1.0, None, now=now.timestamp())
    assert timed_out(info, prior, 1.0, None, now=now.timestamp(), longest_seen_s=800.0) is None  # 3x 800 s
    assert timed_out(info, prior, 1.0, None, now=now.timestamp(), longest_seen_s=200.0) is not None
    assert timed_out(info, prior, 1.0, 3600.0, now=now.timestamp(), longest_seen_s=0.0) is None  # the spec's limit
    young = RunInfo("h", RunStatus.RUNNING, started_at=now - timedelta(seconds=500))
    assert timed_out(young, prior, 1.0, None, now=now.timestamp()) is None  # at least 10 minutes


def test_the_breaker_trips_on_a_run_of_failures_only():
    assert breaker_trips([True] * 6 + [False] * 2, 8, 6)
    assert not breaker_trips([True] * 5 + [False] * 3, 8, 6)
    assert not breaker_trips([True] * 3, 8, 6)  # too few runs to say


def test_a_user_runbook_adds_kinds_and_a_malformed_one_is_refused(tmp_path):
    mine = tmp_path / "runbook.yaml"
    mine.write_text(yaml.safe_dump({"kinds": {"license": {
        "describe": "the licence server refused", "log_patterns": ["LicenseError"],
        "remedy": {"action": "resume", "backoff_s": 30}, "max_attempts": 4}}}))
    book = load_runbook(mine)
    assert classify(Evidence(exit_code=1, log_tail="KeyError: x\nLicenseError: no seat"), book).kind == "license"
    assert set(RB.kinds) < set(book.kinds)
    cases = {
        "kinds: {oom: {describe: x, remedy: {action: explode}}}": "kinds.oom.remedy.action",
        "kinds: {oom: {describe: x, remedy: {action: retry, scale: {momentum: 2}}}}": "unknown knob role",
        "kinds: {x: {describe: x, log_patterns: ['(unclosed'], remedy: {action: retry}}}": "not a valid regular",
        "kinds: {oom: {describe: x, remedy: {action: resume, scale: {batch_size: 0.5}}}}": "only a retry",
        "colour: blue": "unknown key 'colour'",
        "breaker: {window: 3, failures: 5}": "breaker.failures (5) is more than",
        "kinds: [oom]": "kinds: a mapping",
        "kinds: {oom: {describe: x": "not valid YAML",
    }
    for text, expected in cases.items():
        mine.write_text(text)
        with pytest.raises(RunbookError, match=r"runbook\.yaml") as caught:
            load_runbook(mine)
        assert expected in str(caught.value), (text, str(caught.value))


def test_a_spec_with_a_malformed_runbook_is_refused_at_load(tmp_path):
    (tmp_path / "rb.yaml").write_text("kinds: {oom: {describe: x, remedy: {action: nope}}}")
    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump({"name": "c", "budget": {"amount": 1.0}, "runbook": "rb.yaml"}))
    with pytest.raises(SpecError, match="runbook: .*rb.yaml: kinds.oom.remedy.action"):
        load_campaign(spec)
    done = subprocess.run([sys.executable, "-m", "rankwright", "plan", str(spec), "--skip-smoke"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "rb.yaml" in done.stdout + done.stderr and "Traceback" not in done.stderr


# A job that fails the first time a (tag, seed) runs, the way its `fault` says, and works
# when tried again (a mark outside the run folder remembers), unless the fault is `always`.
FAULTY_JOB = """
import json, math, os, pathlib, random, signal, sys, time, yaml
config = yaml.safe_load(open(sys.argv[1]))
run_dir, marks = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
seed, fault, lr = config["train"]["seed"], config["fault"], config["train"]["lr"]
marks.mkdir(exist_ok=True)
mark = marks / f"{config['tag']}-{seed}"
first = not mark.exists()
mark.write_text("tried")
metrics = run_dir / "metrics.jsonl"
def emit(**record):
    with open(metrics, "a") as f:
        f.write(json.dumps({"time": time.time(), **record}) + "\\n")
(run_dir / "heartbeat.json").write_text(json.dumps({"time": time.time()}))
loss = 0.9 - 0.02 * (config["x"] == 3) + random.Random(seed).gauss(0, 0.01)
losses = [0.5, 0.45]
if config.get("lose_seed") in (seed, "all") and config["tag"] == "baseline":
    print("FileNotFoundError: part-0003.csv"); sys.exit(1)
if (fault == "lr_nan" and lr > 0.005) or fault == "nan_always":
    loss = float("nan")
elif fault == "always":
    print("RuntimeError: the node is broken"); sys.exit(1)
elif first and fault == "no_objective":
    emit(event="result", accuracy=0.7); sys.exit(0)
elif first and fault == "inf":
    loss = float("inf")
elif first and fault == "garbage":
    metrics.write_text("{not json at all"); sys.exit(0)
elif first and fault == "explode":
    losses = [0.5, 0.9, 2.4]
elif first and fault == "hang":
    time.sleep(600)
elif fault == "slow":  # alive and beating, but never done
    for _ in range(3000):
        (run_dir / "heartbeat.json").write_text(json.dumps({"time": time.time()}))
        time.sleep(0.2)
elif first and fault == "sigkill":
    end = time.time() + 0.5
    while time.time() < end:
        pass  # burn CPU, so that the lost attempt has a cost to charge
    os.kill(os.getpid(), signal.SIGKILL)
elif first and fault == "oom":
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"); sys.exit(1)
elif first and fault == "leak":
    print("connecting with token", os.environ.get("MY_SERVICE_TOKEN"), "and sk-abcdefghijklmnopqrstuvwx"); sys.exit(7)
elif first and fault == "odd":
    print("libfoo: unexpected state 0x3f in the feature hasher"); sys.exit(3)
elif fault == "collapsed":  # ranks well, predicts worse than the base rate
    emit(event="epoch", epoch=1, train_loss=0.27, loss=loss)
    emit(event="result", loss=loss, valid={"ne": 1.09, "auc": 0.92}); sys.exit(0)
elif first and fault == "data":
    print("KeyError: 'missing column c7'"); sys.exit(1)
for i, value in enumerate(losses):
    emit(event="epoch", epoch=i + 1, train_loss=value, loss=loss)
emit(event="result", loss=loss)
"""


def _campaign(folder, monkeypatch, fault, strategy=None, heartbeat_max_age_s=300.0, runbook=None, baseline_seeds=2,
              **spec_extra):
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    (folder / "job.py").write_text(FAULTY_JOB)
    target = {
        "name": "faulty", "command": ["{python}", "{root}/job.py", "{config}", "{run_dir}", str(folder / "marks")],
        "base_config": {"x": 1, "tag": "baseline", "fault": "none", "train": {"seed": 0, "lr": 0.01,
                                                                               "batch_size": 64}},
        "knobs": [{"path": "x", "kind": "int", "low": 0, "high": 10, "default": 1},
                  {"path": "tag", "kind": "str", "default": "baseline"},
                  {"path": "fault", "kind": "str", "default": "none"},
                  {"path": "train.seed", "kind": "int", "low": 0, "high": 1000, "default": 0},
                  {"path": "train.batch_size", "kind": "int", "low": 1, "high": 4096, "default": 64},
                  {"path": "train.lr", "kind": "float", "low": 0.0001, "high": 1.0, "default": 0.01, "log": True}],
        "metrics": {"file": "metrics.jsonl", "format": "jsonl", "objective": "loss", "direction": "minimize",
                    "heartbeat_max_age_s": heartbeat_max_age_s},
        "cost": {"unit": "cpu_hours", "overhead_seconds": 0.5, "per_row_seconds": 0.001, "rows": 1, "epochs": 1,
                 "size_exponent": 0.0},
    }
    (folder / "target.yaml").write_text(yaml.safe_dump(target))
    spec = {"name": "f", "target": "target.yaml", "budget": {"amount": 10.0}, "baseline_seeds": baseline_seeds,
            "max_parallel": 2,
            "changes": [{"name": "x3", "set": {"x": 3, "tag": "x3", "fault": fault}}],
            "strategy": {"trials": 0, "prune": False, "confirmation_seeds": 3, "full_seeds": 2,
                         "search_space": {"train.lr": {"low": 0.001, "high": 0.1, "log": True}}, **(strategy or {})},
            **({"runbook": runbook} if runbook else {}), **spec_extra}
    path = folder / "f.yaml"
    path.write_text(yaml.safe_dump(spec))
    for command in (["plan", str(path)], ["approve", str(path), "--yes"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return path


def _run(path, seconds=600):
    done = subprocess.run([sys.executable, "-m", "rankwright", "run", str(path), "--interval", "0.5"],
                          capture_output=True, text=True, timeout=seconds)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.stdout


def _run_until_paused(path, seconds=300):
    done = subprocess.Popen([sys.executable, "-m", "rankwright", "run", str(path), "--interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = open_store()
    deadline = time.time() + seconds
    while time.time() < deadline and store.campaign("f").status not in ("paused", "finished"):
        time.sleep(0.5)
    done.send_signal(signal.SIGINT)  # the agent leaves the campaign as it is (runs go on)
    try:
        done.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # a loaded machine: the paused campaign is what the test reads
        done.kill()
        done.communicate()
    return store


def _break_after_approval(folder, **base):
    """Change the target's base config after the plan was approved (the smoke run passed)."""
    target = yaml.safe_load((folder / "target.yaml").read_text())
    target["base_config"].update(base)
    (folder / "target.yaml").write_text(yaml.safe_dump(target))


def _rows(store):
    campaign = store.campaign("f")
    return campaign, {e.idempotency_key: e for e in store.experiments(campaign.id)}


@pytest.mark.slow
@pytest.mark.parametrize("fault, kind, attempts", [
    ("no_objective", "bad_result", 2), ("garbage", "bad_result", 2), ("inf", "nan_loss", 2),
    ("explode", "divergence", 2), ("sigkill", "preempted", 2), ("oom", "oom", 2)])
def test_a_bad_run_is_triaged_remedied_and_the_campaign_finishes(tmp_path, monkeypatch, fault, kind, attempts):
    path = _campaign(tmp_path / fault, monkeypatch, fault)
    out = _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    assert campaign.status == "finished", out
    faulted = rows["f/x3/seed1"]  # the first run of the faulty change failed, its retry worked
    assert faulted.status.value == "succeeded" and faulted.attempt == attempts, faulted
    assert faulted.failure["kind"] == kind and faulted.failure["history"][0]["kind"] == kind
    assert math.isfinite(faulted.metrics["objective"])
    assert faulted.actual_cost > faulted.prior_cost > 0  # the failed attempt is charged, and shown
    assert "collected f/x3/seed1: succeeded" in out.replace("\n", " ")
    assert all(math.isfinite(i.effect) for i in store.insights())  # no NaN or +inf% insight
    events = [e.message for e in store.events(campaign.id) if e.kind == "collect"]
    assert any(m.startswith(f"f/x3/seed1: {kind} on attempt 1") for m in events), events
    if fault == "oom":  # half the batch, the learning rate scaled with it
        assert faulted.config["train"]["batch_size"] == 32 and faulted.config["train"]["lr"] == pytest.approx(0.005)
    if fault in ("no_objective", "garbage", "explode", "oom"):  # from scratch: the failed attempt is kept aside
        assert list(tmp_path.glob(f"{fault}/.rankwright/experiments/f-x3-seed1-*.attempt1"))


@pytest.mark.slow
def test_nan_is_retried_at_a_lower_rate_and_a_second_explosion_ends_as_unstable(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "nan", monkeypatch, "lr_nan")  # NaN unless lr <= 0.005; 0.01 x 0.3 works
    _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    faulted = rows["f/x3/seed1"]
    assert campaign.status == "finished" and faulted.status.value == "succeeded"
    assert faulted.config["train"]["lr"] == pytest.approx(0.003) and faulted.failure["kind"] == "nan_loss"

    path = _campaign(tmp_path / "unstable", monkeypatch, "nan_always")
    out = _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    faulted = rows["f/x3/seed1"]
    assert faulted.status.value == "failed" and faulted.attempt == 2 and faulted.failure["ended_as"] == "unstable"
    unstable = [i for i in store.insights() if i.technique == "x3"]
    assert unstable and unstable[0].outcome == "unstable"  # a result: it is not proposed again here
    from rankwright.agent.learning import rank_for_campaign
    from rankwright.agent.spec import load_campaign

    spec, target = load_campaign(path)
    ranking = rank_for_campaign(spec, target, store)
    assert all(i.effect == 0.0 for i in unstable) and ranking is not None
    collected = [e.message for e in store.events(campaign.id) if e.kind == "collect"]
    assert campaign.status == "finished" and any("nan_loss again on attempt 2 of 2" in m for m in collected), out
    shown = subprocess.run([sys.executable, "-m", "rankwright", "status", str(path)], capture_output=True, text=True)
    assert shown.returncode == 0 and "failures and flags (the runbook's triage)" in shown.stdout
    assert "nan_loss" in shown.stdout and "ended unstable" in shown.stdout
    assert "compute used by failed attempts" in shown.stdout


@pytest.mark.slow
def test_a_collapsed_run_is_kept_flagged_and_told(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "collapsed", monkeypatch, "collapsed")
    out = _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    flagged = rows["f/x3/seed1"]
    assert campaign.status == "finished", out
    assert flagged.status.value == "succeeded" and flagged.attempt == 1  # not retried: the result stands
    assert flagged.failure["kind"] == "collapsed" and flagged.failure["kept"]
    assert rows["f/baseline/seed1"].failure is None  # the baseline reports no valid NE: nothing to check
    told = [e.message for e in store.events(campaign.id) if e.kind == "attention"]
    assert any(m.startswith("f/x3/seed1 is flagged collapsed") for m in told), told
    shown = subprocess.run([sys.executable, "-m", "rankwright", "status", str(path)], capture_output=True, text=True)
    assert "flagged, result kept" in shown.stdout and "collapsed" in shown.stdout


@pytest.mark.slow
def test_a_flag_on_a_kind_that_leaves_no_result_keeps_it_for_a_person(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"kinds": {"nan_loss": {
        "describe": "flag it", "remedy": {"action": "flag"}}}}))
    path = _campaign(tmp_path / "flagnan", monkeypatch, "nan_always", runbook=str(tmp_path / "mine.yaml"))
    _run(path)
    campaign, rows = _rows(open_store())
    faulted = rows["f/x3/seed1"]  # a NaN objective is no result to keep
    assert faulted.status.value == "failed" and faulted.failure["ended_as"] == "quarantined"
    assert "no result to keep" in faulted.failure["history"][-1]["why"] and campaign.status == "finished"


@pytest.mark.slow
def test_a_hung_run_is_found_by_its_heartbeat_cancelled_and_resumed(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "hang", monkeypatch, "hang", heartbeat_max_age_s=3.0)
    started = time.time()
    out = _run(path, seconds=200)
    store = open_store()
    campaign, rows = _rows(store)
    hung = rows["f/x3/seed1"]
    assert campaign.status == "finished" and hung.status.value == "succeeded" and hung.attempt == 2
    assert hung.failure["kind"] == "hang" and "no heartbeat" in hung.failure["evidence"]
    assert time.time() - started < 150  # found within seconds, not the job's 600 s sleep
    assert any(e.kind == "triage" and "hung, cancelled" in e.message for e in store.events(campaign.id)), out


@pytest.mark.slow
def test_a_data_error_is_not_retried_and_the_breaker_pauses_a_broken_campaign(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "data", monkeypatch, "data")
    _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    bad = rows["f/x3/seed1"]
    assert bad.status.value == "failed" and bad.attempt == 1 and bad.failure["ended_as"] == "invalid"
    assert campaign.status == "finished"

    (tmp_path / "rb.yaml").write_text(yaml.safe_dump({"breaker": {"window": 4, "failures": 3}}))
    path = _campaign(tmp_path / "down", monkeypatch, "always", runbook=str(tmp_path / "rb.yaml"))
    _break_after_approval(tmp_path / "down", fault="always")  # every run fails: the infrastructure is down
    store = _run_until_paused(path)
    campaign = store.campaign("f")
    assert campaign.status == "paused"
    guard = [e.message for e in store.events(campaign.id) if e.kind == "guardrail"]
    assert guard and "breaker: 3 of 4" in guard[-1] and "rankwright resume" in guard[-1]
    assert len(store.experiments(campaign.id)) <= 6  # it stopped burning the budget


@pytest.mark.slow
def test_a_lost_baseline_seed_costs_one_pair_and_a_baseline_that_never_ran_pauses(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "lost", monkeypatch, "none", baseline_seeds=3)
    _break_after_approval(tmp_path / "lost", lose_seed=2)  # baseline seed 2 can never run
    _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    assert rows["f/baseline/seed2"].failure["ended_as"] == "invalid" and campaign.status == "finished"
    learned = [i for i in store.insights() if i.technique == "x3"]
    assert learned and learned[0].seeds == 1  # paired on seed 1, the one both arms measured

    path = _campaign(tmp_path / "none", monkeypatch, "none")
    _break_after_approval(tmp_path / "none", lose_seed="all")
    store = _run_until_paused(path)
    campaign = store.campaign("f")
    guard = [e.message for e in store.events(campaign.id) if e.kind == "guardrail"]
    assert campaign.status == "paused" and guard and "every run of baseline" in guard[-1], guard


@pytest.mark.slow
def test_a_runs_folder_that_became_unwritable_mid_campaign_is_said_and_nothing_is_lost(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "unwritable", monkeypatch, "none")
    runs = tmp_path / "unwritable" / ".rankwright" / "experiments"
    first = subprocess.run([sys.executable, "-m", "rankwright", "wake", str(path)], capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr  # the first runs are launched
    store = open_store()
    campaign, before = _rows(store)
    launched = {k for k, e in before.items() if e.status.value in ("submitted", "running", "succeeded")}
    assert launched
    kept = runs.with_name("experiments-kept")
    runs.rename(kept)
    runs.write_text("not a folder")  # the runs folder cannot be written any more
    env = {**__import__("os").environ, "RANKWRIGHT_TRANSIENT_PATIENCE_S": "4"}
    done = subprocess.run([sys.executable, "-m", "rankwright", "run", str(path), "--interval", "0.5"],
                          capture_output=True, text=True, timeout=300, env=env)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1 and "Traceback" not in done.stderr, said
    assert "trying again in" in said and "kept failing for 4 s" in said and "experiments" in said, said
    assert "Nothing was lost" in said
    campaign, after = _rows(open_store())
    assert set(before) <= set(after) and campaign.status in ("approved", "running")  # nothing stored is lost
    runs.unlink()
    kept.rename(runs)  # the engineer fixed the folder: the campaign goes on where it was
    _run(path)
    campaign, rows = _rows(open_store())
    assert campaign.status == "finished" and rows["f/x3/seed1"].status.value == "succeeded"


@pytest.mark.slow
def test_a_store_outage_is_waited_out_by_a_staying_up_run(tmp_path, monkeypatch):
    import sqlite3

    path = _campaign(tmp_path / "outage", monkeypatch, "none")
    env = {**__import__("os").environ, "RANKWRIGHT_DB_LOCK_WAIT_S": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "rankwright", "run", str(path), "--interval", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)
    blocker = sqlite3.connect(tmp_path / "outage" / ".rankwright" / "rankwright.db", timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")  # nobody else may read or write: the store is "down"
    time.sleep(4.0)
    blocker.rollback()
    blocker.close()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0 and "Traceback" not in err, out + err
    assert "database is locked); trying again in 1 s" in " ".join(out.split()), out
    assert open_store().campaign("f").status == "finished"


def test_an_environment_failure_is_said_in_words_with_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path}/no/such/dir/../../x.db")
    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump({"name": "c", "budget": {"amount": 1.0}}))
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path / 'garbage.db'}")
    done = subprocess.run([sys.executable, "-m", "rankwright", "wake", str(spec)], capture_output=True, text=True)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "garbage.db" in done.stderr or "not a database" in done.stderr


def test_an_agent_crash_is_an_event(tmp_path, monkeypatch):
    from rankwright.cli import campaign as commands

    path = _campaign(tmp_path / "crash", monkeypatch, "none")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the agent")

    monkeypatch.setattr("rankwright.agent.wake.wake", broken)
    with pytest.raises(ZeroDivisionError):
        commands._wake_once(path, detach=False)
    store = open_store()
    events = [e for e in store.events(store.campaign("f").id) if e.kind == "agent-error"]
    assert events and "ZeroDivisionError: a bug in the agent" in events[-1].message


@pytest.mark.slow
def test_secrets_never_reach_events_failures_or_status(tmp_path, monkeypatch):
    secret = "tok-3f9a7c1e5d2b"
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret)
    path = _campaign(tmp_path / "leak", monkeypatch, "leak")
    _run(path)
    store = open_store()
    campaign, rows = _rows(store)
    leaked = rows["f/x3/seed1"]
    assert "connecting with token [redacted] and [redacted]" in leaked.failure["excerpt"]
    stored = json.dumps([e.message for e in store.events(campaign.id)]) + json.dumps(leaked.failure)
    shown = subprocess.run([sys.executable, "-m", "rankwright", "status", str(path)], capture_output=True, text=True)
    for text in (stored, shown.stdout):
        assert secret not in text and "sk-abcdefghijklmnop" not in text


def test_writes_outside_the_allowed_paths_are_refused_at_preflight_and_at_submit(tmp_path, monkeypatch):
    folder = tmp_path / "acl"
    path = _campaign(folder, monkeypatch, "none")
    target = yaml.safe_load((folder / "target.yaml").read_text())
    target["knobs"].append({"path": "out_dir", "kind": "str", "default": "out", "writes": True})
    target["base_config"]["out_dir"] = "out"  # relative: inside the run's folder
    (folder / "target.yaml").write_text(yaml.safe_dump(target))
    spec = yaml.safe_load(path.read_text())
    spec["name"] = "g"
    spec["changes"].append({"name": "elsewhere", "set": {"out_dir": str(tmp_path / "shared-scratch")}})
    path.write_text(yaml.safe_dump(spec))
    planned = subprocess.run([sys.executable, "-m", "rankwright", "plan", str(path), "--skip-smoke"],
                             capture_output=True, text=True)
    check = _preflight_item("g", "writes inside allowed paths")
    assert planned.returncode == 1 and not check["ok"], planned.stdout
    assert f"changes elsewhere: out_dir = '{tmp_path / 'shared-scratch'}' is outside the allowed paths" in check["detail"]

    spec["changes"].pop()  # a plan that passes; then the target is changed to write elsewhere
    spec["name"] = "h"
    path.write_text(yaml.safe_dump(spec))
    for command in (["plan", str(path)], ["approve", str(path), "--yes"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    _break_after_approval(folder, out_dir="/var/tmp/not-allowed")
    done = subprocess.run([sys.executable, "-m", "rankwright", "wake", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    store = open_store()
    campaign = store.campaign("h")
    rows = store.experiments(campaign.id)
    assert rows and all(e.status.value == "failed" and e.executor_handle is None for e in rows)  # none started
    assert all(e.failure["ended_as"] == "invalid" and "/var/tmp/not-allowed" in e.failure["evidence"] for e in rows)
    assert any(e.kind == "guardrail" and "not submitted" in e.message for e in store.events(campaign.id))


def test_a_store_outside_the_allowed_paths_fails_preflight(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path / 'elsewhere' / 'rw.db'}")
    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump({"name": "c", "budget": {"amount": 1.0}, "allowed_paths": ["work"],
                                    "base_config": {"data": {"synthetic": {"rows": 10000}}, "train": {"epochs": 1}}}))
    done = subprocess.run([sys.executable, "-m", "rankwright", "plan", str(spec), "--skip-smoke"],
                          capture_output=True, text=True)
    check = _preflight_item("c", "writes inside allowed paths")
    assert done.returncode == 1 and not check["ok"] and "rw.db is outside the allowed paths" in check["detail"]


def _preflight_item(name, check):
    store = open_store()
    document = store.latest_plan(store.campaign(name).id)[1]
    return next(i for i in document["preflight"] if i["name"] == check)


def test_a_gpu_hours_budget_needs_a_target_in_gpu_hours_and_charges_gpus_times_wall_time(tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from rankwright.agent.collect import _cost
    from rankwright.executors import RunInfo, RunStatus

    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump({"name": "c", "budget": {"amount": 1.0, "unit": "gpu_hours"}}))
    with pytest.raises(SpecError, match="budget.unit is gpu_hours but target 'rankwright-dnn' measures its cost in "
                                        "cpu_hours"):
        load_campaign(spec)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    info = RunInfo("h", RunStatus.SUCCEEDED, 0, start, start + timedelta(minutes=30), cpu_seconds=5000.0)
    assert _cost(info, threads=1.0, gpus=2)[0] == pytest.approx(1.0)  # 2 GPUs for half an hour
    assert _cost(info, threads=1.0, gpus=0)[0] == pytest.approx(5000 / 3600)  # a CPU run: its CPU time


@pytest.mark.slow
def test_a_run_past_its_time_limit_is_cancelled_and_kept_for_a_person(tmp_path, monkeypatch):
    path = _campaign(tmp_path / "slow", monkeypatch, "slow", run_timeout_s=4)
    _run(path, seconds=200)
    store = open_store()
    campaign, rows = _rows(store)
    slow = rows["f/x3/seed1"]
    assert campaign.status == "finished" and slow.status.value == "failed"
    assert slow.failure["kind"] == "timeout" and slow.failure["ended_as"] == "quarantined"
    assert "past its limit of 4 s" in slow.failure["evidence"]
    shown = subprocess.run([sys.executable, "-m", "rankwright", "status", str(path)], capture_output=True, text=True)
    assert "needs a person:" in shown.stdout and "f/x3/seed1" in shown.stdout
    told = [e.message for e in store.events(campaign.id) if e.kind == "attention"]
    assert told and told[0].startswith("f/x3/seed1 needs a person: timeout")


@pytest.mark.slow
def test_an_unknown_failure_asks_the_llm_whose_remedy_is_checked_before_use(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "hypotheses"))
    from llm_server import LLMServer, openai_completion

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "OPENAI_BASE_URL", "RANKWRIGHT_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    answer = {"action": "retry", "changes": [{"knob": "train.lr", "value": 0.002}], "kind": "hasher state",
              "reason": "the feature hasher failed; a lower rate is the safe retry"}
    with LLMServer() as server:
        monkeypatch.setenv("RANKWRIGHT_LLM_PROVIDER", "openai")
        monkeypatch.setenv("RANKWRIGHT_LLM_MODEL", "local-test")
        monkeypatch.setenv("RANKWRIGHT_LLM_URL", server.url + "/v1")
        server.reply_openai(openai_completion(json.dumps(answer)))
        campaign, odd = _odd_campaign(tmp_path / "llm", monkeypatch)
        assert campaign.status == "finished" and odd.status.value == "succeeded" and odd.attempt == 2
        assert odd.config["train"]["lr"] == pytest.approx(0.002)  # the model's remedy, inside the approved space
        assert "LLM: hasher state" in odd.failure["history"][0]["why"]
        asked = [r for r in server.requests if "log_tail" in json.dumps(r.body)]
        assert asked and "unexpected state 0x3f" in json.dumps(asked[0].body)

        bad = {**answer, "changes": [{"knob": "train.lr", "value": 5.0}]}  # outside the knob's range
        server.reply_openai(openai_completion(json.dumps(bad)))
        campaign, odd = _odd_campaign(tmp_path / "llm-bad", monkeypatch)
        assert odd.status.value == "succeeded" and odd.config["train"]["lr"] == 0.01  # the runbook's plain retry
        assert "LLM gave no usable remedy: its changes are invalid" in odd.failure["history"][0]["why"]


def _odd_campaign(folder, monkeypatch):
    """A campaign whose first run of x3 fails in a way no runbook pattern names."""
    _run(_campaign(folder, monkeypatch, "odd"))
    campaign, rows = _rows(open_store())
    return campaign, rows["f/x3/seed1"]


def test_an_llm_remedy_is_refused_unless_every_check_passes():
    from rankwright.agent.llm_triage import parse

    def validate(changes):
        if any(v == "bad" for v in changes.values()):
            raise ValueError("value out of range")
        return dict(changes)

    ok, _ = parse({"action": "retry", "changes": [{"knob": "lr", "value": 0.1}], "kind": "k", "reason": "r"},
                  validate, {"lr"})
    assert ok.action == "retry" and ok.changes == {"lr": 0.1}
    for answer, why in (({"action": "reboot"}, "no known action"),
                        ({"action": "retry", "changes": [{"knob": "secret_knob", "value": 1}]}, "did not approve"),
                        ({"action": "retry", "changes": [{"knob": "lr", "value": "bad"}]}, "invalid"),
                        ({"action": "resume", "changes": [{"knob": "lr", "value": 0.1}]}, "only a retry"),
                        ("not json at all", "no known action")):
        refused, note = parse(answer, validate, {"lr"})
        assert refused is None and why in note, (answer, note)
    gave_up, _ = parse({"action": "invalid", "changes": [], "kind": "k", "reason": "r"}, validate, {"lr"})
    assert gave_up.action == "give_up" and gave_up.ends_as == "invalid"


def test_a_hang_is_judged_on_what_the_current_attempt_wrote(tmp_path):
    from datetime import datetime, timezone

    from rankwright.agent.collect import _cost, is_hung
    from rankwright.executors import RunInfo, RunStatus
    from rankwright.targets import MetricsSpec, Target

    target = Target(name="t", command=("run",), metrics=MetricsSpec(heartbeat_max_age_s=60))
    now = 10_000.0
    (tmp_path / "heartbeat.json").write_text(json.dumps({"time": now - 500}))  # the last attempt's, before this one
    resumed = RunInfo("h", RunStatus.RUNNING, started_at=datetime.fromtimestamp(now - 100, timezone.utc))
    assert is_hung(target, tmp_path, resumed, now=now) is None  # its predecessor's file says nothing of it
    (tmp_path / "heartbeat.json").write_text(json.dumps({"time": now - 90}))  # written by this attempt, then silence
    assert "no heartbeat for 90 s (limit 60 s)" in is_hung(target, tmp_path, resumed, now=now)
    young = RunInfo("h", RunStatus.RUNNING, started_at=datetime.fromtimestamp(now - 30, timezone.utc))
    assert is_hung(target, tmp_path, young, now=now) is None  # too young to judge
    lost = RunInfo("h", RunStatus.LOST, started_at=datetime.fromtimestamp(now - 100, timezone.utc),
                   last_heartbeat=datetime.fromtimestamp(now - 40, timezone.utc))
    cost, said = _cost(lost, threads=2.0)
    assert cost == pytest.approx(2 * 60 / 3600) and "charged 2 threads x 60 s alive" in said
