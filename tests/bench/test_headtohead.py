"""The head-to-head harness: the peers' space, a peer's budget and resume, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankwright.bench import headtohead as H
from rankwright.bench import peers as P
from rankwright.bench import tasks as T
from rankwright.cli.main import app
from rankwright.targets.builtin import builtin_target

TINY = T.Task("tiny", "synthetic", {"source": "synthetic", "synthetic": {"rows": 10_000, "seed": 3}},
              {"hidden_units": [16, 8], "embedding_dim": 4}, 512)


@pytest.mark.parametrize("task", sorted(T.TASKS))
@pytest.mark.parametrize("baseline", ["weak", "strong"])
def test_the_peers_first_trial_is_the_baseline_itself(task: str, baseline: str) -> None:
    target = builtin_target("dnn", T.TASKS[task].config(baseline))
    space = T.peer_space(T.TASKS[task], baseline)
    changes = P.changes_of(P.baseline_params(space, target), space)
    assert target.config_with(changes) == target.base_config
    dists = P.distributions(space)
    for knob, value in P.baseline_params(space, target).items():
        assert dists[knob]._contains(dists[knob].to_internal_repr(value)), knob


def test_every_peer_knob_is_one_rankwright_can_change_and_ranges_are_not_validity_bounds() -> None:
    from rankwright.hypotheses.knowledge import load_knowledge_base

    target = builtin_target("dnn", T.TASKS["numeric"].config("strong"))
    techniques = load_knowledge_base().techniques
    touched = {c.knob for t in techniques if {"dnn", "any"} & set(t.applies_to) for c in t.changes}
    space = T.peer_space(T.TASKS["numeric"], "strong")
    assert set(space) <= touched | {"model.embedding_dim", "model.dropout", "model.embedding_l2"}
    lr = space["train.learning_rate"]["float"]
    assert lr[2] and lr[0] > target.knob("train.learning_rate").low  # a log range around the baseline
    assert lr[1] < target.knob("train.learning_rate").high


def test_a_peer_stays_in_budget_and_resumes_without_running_anything_twice(tmp_path: Path) -> None:
    target = builtin_target("dnn", TINY.config("weak"))
    space = T.peer_space(TINY, "weak")
    space = {k: space[k] for k in ("train.learning_rate", "model.dropout")}  # knobs that do not change the cost
    from rankwright.bench.runs import Runner

    unit = Runner(target, tmp_path / "ref", 2).run_all({"ref/seed1": {"train.seed": 1}})["ref/seed1"].cpu_seconds
    budget = 4 * unit
    first = P.run_study("random", 7, target, space, budget, unit, tmp_path / "study")
    assert first["trials"][0]["number"] == 0 and first["trials"][0]["params"] == P.baseline_params(space, target)
    assert 2 <= first["runs"] <= 8, first["trials"]
    assert first["spent_s"] <= budget * 1.1, first["trials"]  # cut at the budget, give or take a poll
    assert first["reused"] == 0
    again = P.run_study("random", 7, target, space, budget, unit, tmp_path / "study")
    assert again["reused"] == again["runs"] >= first["runs"]
    assert [t["params"] for t in again["trials"][:first["runs"]]] == [t["params"] for t in first["trials"]]
    runs = list((tmp_path / "study" / "runs").glob("*/exit.json"))
    assert len(runs) == again["runs"]


def _outcome(method: str, seed: int, ne: float, auc: float, cell: str = "pairwise-strong-small") -> dict:
    task, baseline, budget = cell.split("-")
    return {"cell": cell, "task": task, "baseline": baseline, "budget": budget, "method": method, "seed": seed,
            "test_ne": ne, "test_auc": auc, "spent_s": 15.0, "unit_s": 1.0, "budget_s": 16.0, "wall_s": 60.0,
            "runs": 10, "reused": 0, "shipped_baseline": False, "all_test_ne": [ne]}


def test_the_summary_gives_gains_gaps_ratios_and_goals() -> None:
    refs = {"pairwise-strong": H.Reference(unit_s=1.0, test_ne=1.0, test_auc=0.7, bayes_ne=0.8, runs=5, reused=0)}
    outcomes = []
    for seed in (1, 2, 3):
        outcomes += [_outcome("rankwright", seed, 0.90 + 0.01 * seed, 0.75), _outcome("tpe", seed, 0.96, 0.72),
                     _outcome("tpe-few", seed, 0.95, 0.72), _outcome("random", seed, 1.01, 0.69)]
    s = H.aggregate(outcomes, refs)
    ours = next(r for r in s["rows"] if r["method"] == "rankwright")
    assert ours["gain_ne"]["mean"] == pytest.approx(0.08)
    assert ours["gain_ne"]["low"] < 0.08 < ours["gain_ne"]["high"]
    assert ours["gap"]["mean"] == pytest.approx(0.12)
    vs_tpe = next(r for r in s["ratios"] if r["peer"] == "tpe")
    assert vs_tpe["gain_ratio"] == pytest.approx(0.08 / 0.04)
    assert vs_tpe["gap_ratio"] == pytest.approx(0.12 / 0.16)
    vs_random = next(r for r in s["ratios"] if r["peer"] == "random")
    assert vs_random["gain_ratio"] is None  # random made it worse: no ratio of a non-positive gain
    assert s["geomean"]["tpe/small"]["gain_ratio"]["value"] == pytest.approx(2.0)
    said = H.goals(s)
    assert any("at most half of TPE's: missed" in g for g in said)  # 0.75 > 0.5
    assert any("at least 2x TPE's: met" in g for g in said)


def test_the_results_read_at_80_columns(tmp_path: Path) -> None:
    refs = {"wide-weak": H.Reference(1.0, 0.9, 0.7, 0.8, 5, 0)}
    outcomes = [_outcome(m, s, 0.88 - 0.001 * s, 0.71, "wide-weak-small") for m in T.METHODS for s in (1, 2, 3)]
    summary = H.aggregate(outcomes, refs)
    part = {"seeds": [1, 2, 3], "settings_commit": "abc1234", "commit": "def5678", "started": "2026-12-01 10:00:00 UTC",
            "finished": "2026-12-01 11:00:00 UTC", "wall_s": 3600, "cpus": 2, "summary": summary,
            "goals": H.goals(summary)}
    text = H.render({"sets": {"primary": part}})
    tables = [line for line in text.splitlines() if line.startswith("|")]
    assert tables and max(len(line) for line in tables) <= 80
    H.plot({"sets": {"primary": part}}, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


@pytest.mark.parametrize("args, says", [
    (["--tasks", "nope"], "--tasks: unknown nope"),
    (["--budgets", "huge"], "--budgets: unknown huge"),
    (["--seeds", "lucky"], "--seeds: unknown seed set"),
    (["--resume", "/no/such/folder"], "no such folder"),
])
def test_bad_bench_options_exit_2_naming_the_problem(args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_the_settings_are_fixed_in_one_place() -> None:
    assert T.SEED_SETS["primary"]["small"] and not set(T.SEED_SETS["primary"]["small"]) \
        & set(T.SEED_SETS["held-out"]["small"])
    assert [c.name for c in T.cells(tuple(T.TASKS), ("small", "large"))] == [
        "pairwise-weak-small", "pairwise-strong-small", "numeric-weak-small", "numeric-strong-small",
        "wide-weak-small", "wide-strong-small", "frappe-weak-small", "frappe-strong-small",
        "pairwise-strong-large", "frappe-strong-large"]
    spec = T.campaign_spec(T.Cell("wide", "weak", "small"), 1, 0.02)
    assert spec["hypotheses"]["use_llm"] is False and spec["budget"]["amount"] == 0.02
    json.dumps(spec)


def test_a_failed_method_is_listed_and_the_rest_still_counts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(H, "reference", lambda task, baseline, work, say: H.Reference(1.0, 1.0, 0.7, 0.8, 5, 0))

    def fake(cell, method, seed, ref, work, say, commit="unknown"):
        if method == "tpe-few" and seed == 2:
            raise RuntimeError("rankwright run failed in somewhere (exit 1)")
        out = _outcome(method, seed, 0.95 if method == "rankwright" else 0.97, 0.72, cell.name)
        return out

    monkeypatch.setattr(H, "run_method", fake)
    said: list[str] = []
    part = H.run(("wide",), ("small",), "primary", tmp_path / "work", tmp_path / "out" / "h2h", tmp_path,
                 said.append)
    assert part["complete"] and len(part["failures"]) == 2, part["failures"]  # seed 2 of both baselines
    assert part["done"] == 2 * 4 * 3 - 2
    assert any("tpe-few seed 2: FAILED" in line for line in said)
    text = (tmp_path / "out" / "h2h.md").read_text()
    assert "wide-weak-small tpe-few seed 2: rankwright run failed" in text
    document = json.loads((tmp_path / "out" / "h2h.json").read_text())
    assert set(document["sets"]) == {"primary"}
    row = next(r for r in document["sets"]["primary"]["summary"]["rows"]
               if r["cell"] == "wide-weak-small" and r["method"] == "tpe-few")
    assert row["gain_ne"]["n"] == 2


def test_results_name_the_commit_of_each_method_when_a_resume_mixed_them() -> None:
    part = {"commit": "b2", "outcomes": [_outcome("rankwright", 1, 0.9, 0.7) | {"commit": "b2"},
                                         _outcome("tpe", 1, 0.9, 0.7) | {"commit": "a1"}]}
    assert H._provenance(part) == " Outcomes by the commit that produced them: rankwright at b2; tpe at a1."
    part["outcomes"][1]["commit"] = "b2"
    assert H._provenance(part) == ""


def test_a_method_that_used_more_than_its_budget_is_marked() -> None:
    refs = {"wide-weak": H.Reference(1.0, 0.9, 0.7, 0.8, 5, 0)}
    outcomes = [_outcome(m, 1, 0.88, 0.71, "wide-weak-small") for m in T.METHODS]  # each used 15 of 16
    outcomes[0]["spent_s"] = 16.4  # rankwright: 2.5% over
    part = {"seeds": [1], "settings_commit": "a", "commit": "b", "started": "s", "finished": "f", "wall_s": 60,
            "cpus": 2, "summary": H.aggregate(outcomes, refs), "goals": []}
    text = H.render({"sets": {"primary": part}})
    assert "| 16.4! |" in text and "| 15.0 |" in text
    assert "`!` a seed used more than its budget (by over 0.5%): rankwright on wide-weak-small (16.4 of 16)." in text


def test_a_method_seed_measured_on_a_busy_machine_is_said(tmp_path: Path, monkeypatch) -> None:
    """Held-out Frappe large, seed 102: the same baseline runs cost 15% more CPU while other
    work shared the machine. The harness warns at the start and marks what it measured then."""
    monkeypatch.setattr(H, "reference", lambda task, baseline, work, say: H.Reference(1.0, 1.0, 0.7, 0.8, 5, 0))
    monkeypatch.setattr(H, "run_method", lambda cell, method, seed, ref, work, say, commit="unknown":
                        _outcome(method, seed, 0.95, 0.72, cell.name) | {"runs": 10, "reused": 3 if seed == 1 else 10})
    loads = iter([5.0] + [4.0, 0.5] * 100)  # busy at the start and for every seed-1 method, then quiet
    monkeypatch.setattr(H.os, "getloadavg", lambda: (next(loads),) * 3, raising=False)
    monkeypatch.setattr(H.os, "cpu_count", lambda: 2, raising=False)
    said: list[str] = []
    H.run(("wide",), ("small",), "primary", tmp_path / "work", tmp_path / "out" / "h2h", tmp_path, said.append)
    assert said[0].startswith("warning: the machine is busy (load 5.0 on 2 cores)")
    text = " ".join((tmp_path / "out" / "h2h.md").read_text().split())
    assert "Measured while the machine was busy" in text and "rankwright seed 1 on wide-weak-small (load" in text
    assert "seed 2 on" not in text.split("Measured while the machine was busy")[1].split(".")[0]  # reused: not re-judged


def test_a_campaign_that_halted_while_being_stopped_is_an_end_not_a_failure(tmp_path: Path, monkeypatch) -> None:
    """Held-out seed 102 of wide-strong-small was lost this way: paused at the threshold,
    halted at the hard cap as its last runs ended, then `stop` refused a halted campaign."""
    import yaml

    from rankwright.bench.campaign import _stop
    from rankwright.store import open_store

    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "halts", "budget": {"amount": 1.0},
                                    "base_config": {"data": {"synthetic": {"rows": 10000}}}}))
    monkeypatch.chdir(tmp_path)
    from rankwright.bench.campaign import _rw

    with pytest.raises(RuntimeError):
        _rw(["plan", str(path), "--skip-smoke"], tmp_path)  # a plan without its smoke run: exit 1
    store = open_store()
    store.set_campaign_status(store.campaign("halts").id, "halted")
    _stop(path, tmp_path)  # no error: the campaign ended on its own
    assert store.campaign("halts").status == "halted"
