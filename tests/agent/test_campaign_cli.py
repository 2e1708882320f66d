"""Campaign spec errors, preflight, plan and approval through the CLI.

A user's mistake exits 2, names the field, and leaves the store exactly as it was."""

import hashlib
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rankwright.cli.main import app
from rankwright.store import open_store

runner = CliRunner()
SPEC = {
    "name": "t1",
    "base_config": {"data": {"source": "synthetic", "synthetic": {"rows": 10_000}}, "train": {"epochs": 1}},
    "budget": {"amount": 1.0},
    "baseline_seeds": 2,
    "changes": [{"name": "wider", "set": {"model.embedding_dim": 16}}],
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    return tmp_path


def _write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def _db_digest(workdir: Path) -> str | None:
    """Every row of every table (read through SQLite, so WAL content counts)."""
    db = workdir / ".rankwright" / "rankwright.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: connection.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    assert rows["plans"], "the fixture should have stored something to protect"
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: s.update(budget={"amount": -1}), "budget.amount: Input should be greater than 0"),
    (lambda s: s.update(colour="red"), "colour: unknown key"),
    (lambda s: s["changes"][0]["set"].update({"model.embeding_dim": 8}), "model.embeding_dim"),
    (lambda s: s["changes"][0]["set"].update({"model.dropout": 3.0}), "model.dropout"),
    (lambda s: s.update(model="transformer"), "transformer"),
    (lambda s: s.update(budjet={"amount": 2}), "budjet: unknown key; did you mean 'budget'?"),
    (lambda s: s.setdefault("strategy", {}).update(trails=3), "strategy.trails: unknown key; did you mean 'trials'?"),
    (lambda s: s.update(name="my campaign!"), "a campaign name starts with a letter or digit"),
    (lambda s: s.update(runbook="missing.yaml"), "missing.yaml: cannot read the runbook"),
])
def test_bad_specs_exit_2_and_leave_the_store_as_it_was(workdir, mutate, expected):
    good = _write(workdir / "good.yaml", SPEC)
    assert runner.invoke(app, ["plan", str(good), "--skip-smoke"]).exit_code == 1  # stores a (blocked) plan
    before = _db_digest(workdir)
    spec = yaml.safe_load(yaml.safe_dump(SPEC))
    mutate(spec)
    result = runner.invoke(app, ["plan", str(_write(workdir / "bad.yaml", spec))])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert _db_digest(workdir) == before


def test_malformed_yaml_names_the_line(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("name: x\nbudget: {amount: 1\n")
    result = runner.invoke(app, ["plan", str(bad)])
    assert result.exit_code == 2 and "not valid YAML at line" in result.output
    assert _db_digest(workdir) is None


def test_a_failed_preflight_blocks_approval(workdir):
    spec = _write(workdir / "c.yaml", SPEC)
    planned = runner.invoke(app, ["plan", str(spec), "--skip-smoke"])
    assert planned.exit_code == 1 and "approval is blocked" in planned.output
    refused = runner.invoke(app, ["approve", str(spec), "--yes"])
    assert refused.exit_code == 2 and "failed its preflight" in refused.output


def test_approve_needs_a_plan(workdir):
    result = runner.invoke(app, ["approve", str(_write(workdir / "c.yaml", SPEC)), "--yes"])
    assert result.exit_code == 2 and "has no plan yet" in result.output


def test_plan_with_smoke_run_then_approve_records_who_and_how(workdir):
    spec = _write(workdir / "c.yaml", SPEC)
    planned = runner.invoke(app, ["plan", str(spec)])
    assert planned.exit_code == 0, planned.output
    assert "target smoke run" in planned.output and "FAILED" not in planned.output
    assert not list(workdir.glob(".rankwright/smoke-*"))  # a smoke run that passed leaves nothing behind
    approved = runner.invoke(app, ["approve", str(spec), "--yes", "--by", "alice"])
    assert approved.exit_code == 0, approved.output
    store = open_store()
    campaign = store.campaign("t1")
    plan_id, document, estimate = store.latest_plan(campaign.id)
    # the first validation round, with the baseline's seeds shared by the change; at full
    # fidelity, since half the rows of a 10k-row, one-epoch run saves little beside start-up
    assert [(e["name"], e["seed"]) for e in document["experiments"]] == [
        ("baseline", 1), ("baseline", 2), ("wider", 1), ("wider", 2)]
    assert set(document["phases"]) == {"validation", "combination", "exploitation"}
    assert document["strategy"]["search_space"] and document["strategy"]["low_fidelity"] == {}
    assert 0 < document["strategy"]["low_fidelity_saving"] < 0.25
    assert "a low-fidelity run would save only" in " ".join(planned.output.split())
    assert estimate > 0
    assert store.approval_of(plan_id) | {"time": None} == {
        "approved_by": "alice", "budget": 1.0, "unit": "cpu_hours", "via_yes_flag": True, "time": None}
    assert campaign.status == "approved"
    assert [e.kind for e in store.events(campaign.id)] == ["plan", "approve"]
    shown = runner.invoke(app, ["status", str(spec)])
    assert shown.exit_code == 0 and "left 1 of 1" in shown.output
    again = runner.invoke(app, ["approve", str(spec), "--yes", "--by", "bob"])  # twice: one approval, said so
    assert again.exit_code == 0 and "already approved (by alice" in " ".join(again.output.split())
    assert [e.kind for e in store.events(campaign.id)] == ["plan", "approve"]
    store.set_campaign_status(campaign.id, "finished")
    late = runner.invoke(app, ["approve", str(spec), "--yes"])  # a finished campaign stays finished
    assert late.exit_code == 0 and store.campaign("t1").status == "finished"


def test_the_same_name_with_another_spec_is_refused(workdir):
    runner.invoke(app, ["plan", str(_write(workdir / "a.yaml", SPEC)), "--skip-smoke"])
    before = _db_digest(workdir)
    other = _write(workdir / "b.yaml", {**SPEC, "baseline_seeds": 5})
    result = runner.invoke(app, ["plan", str(other), "--skip-smoke"])
    assert result.exit_code == 2 and "different spec" in result.output
    assert _db_digest(workdir) == before


def test_an_objective_read_at_another_metrics_best_epoch_is_a_warning_not_a_block(workdir):
    from rankwright.agent.planning import preflight
    from rankwright.agent.spec import load_campaign

    spec, target = load_campaign(_write(workdir / "c.yaml", SPEC))  # objective valid.ne, monitor auc (default)
    (item,) = [i for i in preflight(spec, target, smoke=False) if i.name == "objective measured at its best epoch"]
    assert item.ok and item.warning and "validation auc" in item.detail
    assert item.fix == "set train.monitor: ne in base_config"
    planned = runner.invoke(app, ["plan", str(workdir / "c.yaml"), "--skip-smoke"])
    assert "│ warning │" in planned.output and "train.monitor:" in planned.output  # shown, in a wrapped table

    aligned = yaml.safe_load(yaml.safe_dump(SPEC))
    aligned["base_config"]["train"]["monitor"] = "ne"
    spec, target = load_campaign(_write(workdir / "d.yaml", aligned))
    assert not [i for i in preflight(spec, target, smoke=False) if i.warning]
    aligned["objective"] = {"metric": "test.auc", "direction": "maximize"}  # not a validation metric: no opinion
    spec, target = load_campaign(_write(workdir / "e.yaml", aligned))
    assert not [i for i in preflight(spec, target, smoke=False) if i.warning]


def test_a_campaign_named_instead_of_its_spec_file_says_what_to_give(workdir):
    result = runner.invoke(app, ["status", "my-campaign"])
    assert result.exit_code == 2 and "give the path of the campaign spec's YAML file" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_plan_warns_when_the_first_round_eats_the_later_phases_share(workdir):
    tight = yaml.safe_load(yaml.safe_dump(SPEC)) | {"budget": {"amount": 0.004}}
    planned = runner.invoke(app, ["plan", str(_write(workdir / "c.yaml", tight)), "--skip-smoke"])
    assert "warning" in planned.output
    roomy = runner.invoke(app, ["plan", str(_write(workdir / "d.yaml", SPEC | {"name": "t2"})), "--skip-smoke"])
    store = open_store()

    def check(name):
        document = store.latest_plan(store.campaign(name).id)[1]
        return next(i for i in document["preflight"] if i["name"] == "first round fits its share")

    warned, fine = check("t1"), check("t2")
    assert warned["ok"] and warned["warning"] and "the confirmation may not fit" in warned["detail"]
    assert "top_k" in warned["fix"]
    assert fine["ok"] and not fine["warning"] and "validation's share is 50%" in fine["detail"]


def test_the_first_round_takes_only_the_hypotheses_that_fit_validations_share(workdir):
    from rankwright.agent.spec import load_campaign

    spec_path = _write(workdir / "c.yaml", SPEC | {"hypotheses": {"top_k": 4, "seeds": 2, "use_llm": False}})
    spec, target = load_campaign(spec_path)
    one = target.predict_hours({}, parallel=spec.max_parallel)
    # room for the baseline's 2 seeds, the spec's change and about one hypothesis: 7 runs' worth
    amount = 7 * one / (spec.strategy.phases.validation * spec.budget.pause_threshold)
    spec_path.write_text(yaml.safe_dump(yaml.safe_load(spec_path.read_text()) | {"budget": {"amount": amount}}))
    planned = runner.invoke(app, ["plan", str(spec_path), "--skip-smoke"])
    assert "first round: 1 of the top 4 hypotheses fit validation's 50% share" in " ".join(planned.output.split())
    document = open_store().latest_plan(open_store().campaign("t1").id)[1]
    arms = {e["name"] for e in document["experiments"]}
    assert len(arms - {"baseline", "wider"}) == 1


def test_a_budget_of_few_runs_goes_tuner_first(workdir):
    """Under `TUNER_FIRST_RUNS` baseline runs, the first round is the baseline alone, the plan
    says why, and the hypotheses become the tuner's first trials; a spec's own changes are
    still validated."""
    from rankwright.agent.phases._base import TUNER_FIRST_RUNS
    from rankwright.agent.spec import load_campaign

    spec_path = _write(workdir / "c.yaml", {k: v for k, v in SPEC.items() if k != "changes"}
                       | {"hypotheses": {"top_k": 4, "seeds": 2, "use_llm": False}, "baseline_seeds": 3,
                          "strategy": {"low_fidelity": {"data.train_fraction": 0.5}}})
    spec, target = load_campaign(spec_path)
    one = target.predict_hours({}, parallel=spec.max_parallel)
    amount = (TUNER_FIRST_RUNS - 4) * one / spec.budget.pause_threshold
    spec_path.write_text(yaml.safe_dump(yaml.safe_load(spec_path.read_text()) | {"budget": {"amount": amount}}))
    planned = " ".join(runner.invoke(app, ["plan", str(spec_path), "--skip-smoke"]).output.split())
    assert "tuner first: the budget buys about 20 baseline runs" in planned
    document = open_store().latest_plan(open_store().campaign("t1").id)[1]
    assert {e["name"] for e in document["experiments"]} == {"baseline"}
    # the confirmation's first-stage seeds only: the spec's third baseline seed runs with the
    # second stage, if the winner is borderline
    assert [e["seed"] for e in document["experiments"]] == [1, 2] and spec.baseline_seeds == 3
    assert "2 now, the others only if the confirmation's first stage is borderline" in planned
    assert document["strategy"]["tuner_first"] and document["phases"]["combination"] == 0
    # no validation round: the baseline's seeds run at full fidelity, told to the tuner and reused by
    # the confirmation (at the approved low fidelity they would have to run again, as the
    # head-to-head's frappe-strong s5 did at 854b0b9)
    assert document["strategy"]["low_fidelity"] == {} and all(e["changes"] == {} for e in document["experiments"])
    # the same budget with a change the engineer listed: validated as asked
    spec_path.write_text(yaml.safe_dump(yaml.safe_load(spec_path.read_text()) | {"changes": SPEC["changes"],
                                                                                  "name": "t2"}))
    again = runner.invoke(app, ["plan", str(spec_path), "--skip-smoke"])
    document = open_store().latest_plan(open_store().campaign("t2").id)[1]
    assert "wider" in {e["hypothesis"] for e in document["experiments"]} and not document["strategy"]["tuner_first"], \
        again.output
    from rankwright.agent.spec import low_fidelity

    assert document["strategy"]["low_fidelity"] == low_fidelity(*load_campaign(spec_path))  # as approved


def test_wakes_keep_the_fidelity_the_plan_recorded(workdir, monkeypatch):
    from rankwright.agent import spec as spec_module
    from rankwright.agent.observe import observe
    from rankwright.agent.spec import load_campaign

    path = _write(workdir / "c.yaml", SPEC)
    assert runner.invoke(app, ["plan", str(path), "--skip-smoke"]).exit_code == 1  # smoke skipped: not approvable
    store = open_store()
    campaign = store.campaign("t1")
    document = store.latest_plan(campaign.id)[1]
    assert document["strategy"]["low_fidelity"] == {}
    monkeypatch.setattr(spec_module, "LOW_FIDELITY_MIN_SAVING", 0.0)  # the cost model would now say otherwise
    spec, target = load_campaign(path)
    assert spec_module.low_fidelity(spec, target) == {"data.train_fraction": 0.5}
    state = observe(store, spec, target, workdir / ".rankwright", campaign.id, document, rank=False)
    assert state.low == {} and "data.train_fraction" not in state.allowed_knobs


def test_repeats_that_cannot_differ_fail_preflight(workdir):
    target = {"name": "no-seed", "command": ["{python}", "-c", "pass"], "base_config": {"lr": 0.1},
              "knobs": [{"path": "lr", "kind": "float", "low": 0.0001, "high": 1.0, "default": 0.1}],
              "metrics": {"objective": "loss"}}
    (workdir / "t.yaml").write_text(yaml.safe_dump(target))
    spec = _write(workdir / "c.yaml", {"name": "noseed", "target": "t.yaml", "budget": {"amount": 1.0},
                                       "baseline_seeds": 3, "changes": [{"name": "lower", "set": {"lr": 0.01}}]})
    planned = runner.invoke(app, ["plan", str(spec), "--skip-smoke"])
    assert planned.exit_code == 1
    store = open_store()
    document = store.latest_plan(store.campaign("noseed").id)[1]
    check = next(i for i in document["preflight"] if i["name"] == "repeats differ by their seed")
    assert not check["ok"] and "3 baseline repeats would be the same run" in check["detail"]
    assert "roles: {seed:" in check["fix"]
    data = next(i for i in document["preflight"] if i["name"] == "data readable")
    assert "reads its own data" in data["detail"] and "synthetic" not in data["detail"]


def test_relative_data_paths_in_a_spec_start_at_the_spec_folder(workdir, monkeypatch):
    from rankwright.agent.spec import load_campaign

    folder = workdir / "project"
    (folder / "data").mkdir(parents=True)
    rows = "".join(f"{i % 2},u{i % 5}\n" for i in range(40))
    (folder / "data" / "train.csv").write_text("click,user\n" + rows)
    spec = _write(folder / "c.yaml", {"name": "rel", "budget": {"amount": 1.0}, "base_config": {"data": {
        "source": "csv", "train": "data/train.csv", "schema": {"label": "click", "categorical": ["user"]}}}})
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the command runs from another folder
    loaded, target = load_campaign(spec)
    assert target.base_config["data"]["train"] == str(folder / "data" / "train.csv")
    assert loaded.base_config["data"]["train"] == "data/train.csv"  # the spec itself is kept as written


def test_preflight_warns_when_validation_does_not_resemble_test(workdir):
    def log(path, rows, start):
        path.write_text("t,user,click\n" + "".join(f"{t},u{t // 20},{int(t % 3 == 0)}\n"
                                                   for t in range(start, start + rows)))

    log(workdir / "past.csv", 800, 0)
    log(workdir / "future.csv", 200, 800)  # the test file is later in time: its users are new
    data = {"source": "csv", "train": "past.csv", "test": "future.csv",
            "schema": {"label": "click", "categorical": ["user"]}}
    spec = _write(workdir / "c.yaml", {"name": "shifted", "budget": {"amount": 1.0}, "base_config": {
        "data": {**data, "split": {"valid_fraction": 0.1, "test_fraction": 0.0}}}})
    runner.invoke(app, ["plan", str(spec), "--skip-smoke"])
    store = open_store()

    def check(name):
        document = store.latest_plan(store.campaign(name).id)[1]
        return next(i for i in document["preflight"] if i["name"] == "validation resembles test")

    shifted = check("shifted")
    assert shifted["warning"] and "field user: 100% of test rows have a value never seen in training" in \
        shifted["detail"] and "data.split.order" in shifted["fix"]
    ordered = _write(workdir / "d.yaml", {"name": "ordered", "budget": {"amount": 1.0}, "base_config": {
        "data": {**data, "split": {"order": "file", "valid_fraction": 0.2, "test_fraction": 0.0}}}})
    runner.invoke(app, ["plan", str(ordered), "--skip-smoke"])
    assert not check("ordered")["warning"]  # validated on the latest rows, as test is
