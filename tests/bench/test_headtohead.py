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
    target = builtin_target(T.TASKS[task].model_name, T.TASKS[task].config(baseline))
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


EVAL = [str(s) for s in T.EVAL_SEEDS]


def _ref(ne: float = 1.0, auc: float = 0.7, bayes: float | None = 0.8, wobble: float = 0.0) -> H.Reference:
    by_seed = {s: {"ne": ne + wobble * (i - 2), "auc": auc} for i, s in enumerate(EVAL)}
    return H.Reference(unit_s=1.0, test_ne=ne, test_auc=auc, bayes_ne=bayes, runs=5, reused=0, by_seed=by_seed)


def _outcome(method: str, seed: int, ne: float, auc: float, cell: str = "pairwise-strong-small",
             wobble: float = 0.0) -> dict:
    """A method seed's outcome as the harness keeps it: what it shipped and the benchmark's
    evaluation runs of it (test NE `ne` on every evaluation seed, plus the same wobble as
    the baseline's)."""
    task, baseline, budget = cell.split("-")
    by_seed = {s: {"ne": ne + wobble * (i - 2), "auc": auc} for i, s in enumerate(EVAL)}
    return {"cell": cell, "task": task, "baseline": baseline, "budget": budget, "method": method, "seed": seed,
            "changes": {"train.learning_rate": 0.002}, "evaluation": {"config": "x", "by_seed": by_seed},
            "spent_s": 15.0, "unit_s": 1.0, "budget_s": 16.0, "wall_s": 60.0, "runs": 10, "reused": 0,
            "shipped_baseline": False}


def test_the_summary_gives_paired_gains_gaps_ratios_win_rates_and_goals() -> None:
    refs = {"pairwise-strong": _ref(wobble=0.01)}
    outcomes = []
    for seed in (1, 2, 3, 4, 5):
        outcomes += [_outcome("rankwright", seed, 0.90 + 0.01 * (seed % 3), 0.75, wobble=0.01),
                     _outcome("tpe", seed, 0.96, 0.72, wobble=0.01),
                     _outcome("tpe-few", seed, 0.90 + 0.01 * (seed % 3), 0.72, wobble=0.01),
                     _outcome("random", seed, 1.01, 0.69, wobble=0.01)]
    s = H.aggregate(outcomes, refs)
    ours = next(r for r in s["rows"] if r["method"] == "rankwright")
    mean_ne = sum(0.90 + 0.01 * (seed % 3) for seed in (1, 2, 3, 4, 5)) / 5
    assert ours["gain_ne"]["mean"] == pytest.approx(1.0 - mean_ne)  # paired: the shared wobble cancels
    assert ours["gain_ne"]["low"] < ours["gain_ne"]["mean"] < ours["gain_ne"]["high"]
    assert ours["gap"]["mean"] == pytest.approx(mean_ne - 0.8)
    assert ours["gain_auc"]["mean"] == pytest.approx(0.05)
    vs_tpe = next(r for r in s["ratios"] if r["peer"] == "tpe")
    assert (vs_tpe["wins"], vs_tpe["losses"], vs_tpe["ties"]) == (5, 0, 0)
    assert vs_tpe["sign_p"] == pytest.approx(0.0625)
    assert vs_tpe["gap_ratio"]["value"] == pytest.approx((mean_ne - 0.8) / 0.16)
    assert vs_tpe["gap_ratio"]["low"] <= vs_tpe["gap_ratio"]["value"] <= vs_tpe["gap_ratio"]["high"]
    assert vs_tpe["gain_ratio"]["value"] == pytest.approx((1 - mean_ne) / 0.04)
    vs_few = next(r for r in s["ratios"] if r["peer"] == "tpe-few")
    assert (vs_few["wins"], vs_few["losses"], vs_few["ties"]) == (0, 0, 5)  # the same shipped NE: ties
    vs_random = next(r for r in s["ratios"] if r["peer"] == "random")
    assert vs_random["gain_ratio"]["value"] is None  # random made it worse: no ratio of a non-positive gain
    assert s["geomean"]["random/small"]["gain_ratio"] == {"value": None, "of": 0, "cells": 1}
    said = H.goals(s)
    assert any(g.startswith("small budget, gap over TPE's geo. mean at most 0.8: met (0.70 over 1 of 1 cells")
               for g in said), said
    assert "small budget, beats TPE on at least 60% of method seeds: met (5 of 5; 0 lost, 0 tied)" in said
    assert "small budget, long-run goal of 0.5x TPE's gap: missed" in said


def test_a_method_is_scored_on_the_benchmarks_own_evaluation_runs(tmp_path: Path, monkeypatch) -> None:
    """What a method ships is trained on the evaluation seeds, the same for every method:
    never the run it selected; the same shipped configuration is trained once; shipping the
    baseline scores the baseline's own evaluation runs."""
    from rankwright.bench.runs import Finished, Runner

    started: list[str] = []

    def run_all(self, jobs):
        started.extend(jobs)
        assert all(changes["train.seed"] in T.EVAL_SEEDS for changes in jobs.values())
        return {key: Finished(key, "succeeded", 1.0, 1.0, 0.5, {"ne": 0.9, "auc": 0.7}, None, [0.5], False)
                for key in jobs}

    monkeypatch.setattr(Runner, "run_all", run_all)
    ships = {"rankwright": {"train.learning_rate": 0.002}, "tpe": {"train.learning_rate": 0.002}, "random": {}}
    monkeypatch.setattr(H, "_search", lambda cell, method, seed, ref, folder: {
        "method": method, "shipped_baseline": not ships[method], "changes": ships[method], "spent_s": 1.0,
        "runs": 3, "reused": 0, "wall_s": 1.0})
    cell, ref = T.Cell("wide", "weak", "small"), _ref()
    outs = {m: H.run_method(cell, m, 1, ref, tmp_path, print) for m in ships}
    assert outs["rankwright"]["evaluation"] == outs["tpe"]["evaluation"]
    assert outs["random"]["evaluation"]["by_seed"] == ref.by_seed
    assert len(set(started)) == len(T.EVAL_SEEDS) and len(started) == 2 * len(T.EVAL_SEEDS)
    again = H.run_method(cell, "tpe", 1, ref, tmp_path, print)  # resumed: nothing run again
    assert again["evaluation"] == outs["tpe"]["evaluation"] and len(started) == 2 * len(T.EVAL_SEEDS)


def test_the_results_read_at_80_columns(tmp_path: Path) -> None:
    refs = {"wide-weak": _ref(0.9, 0.7, 0.8)}
    outcomes = [_outcome(m, s, 0.88 - 0.001 * s, 0.71, "wide-weak-small") for m in T.METHODS for s in (1, 2, 3)]
    summary = H.aggregate(outcomes, refs)
    part = {"seeds": [1, 2, 3], "settings_commit": "abc1234", "commit": "def5678", "started": "2026-12-01 10:00:00 UTC",
            "finished": "2026-12-01 11:00:00 UTC", "wall_s": 3600, "cpus": 2, "summary": summary,
            "goals": H.goals(summary), "tasks": ["wide"], "policy_commits": ["abc1234 2026-12-07 a policy"],
            "first_fair_run": "0123456"}
    text = H.render({"sets": {"primary": part}})
    tables = [line for line in text.splitlines() if line.startswith("|")]
    assert tables and max(len(line) for line in tables) <= 80, max(tables, key=len)
    assert "- abc1234 2026-12-07 a policy" in text
    H.plot({"sets": {"primary": part}}, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


@pytest.mark.parametrize("args, says", [
    (["--tasks", "nope"], "--tasks: unknown nope"),
    (["--budgets", "huge"], "--budgets: unknown huge"),
    (["--seeds", "lucky"], "--seeds: unknown seed set"),
    (["--resume", "/no/such/folder"], "no such folder"),
    (["--tasks", "criteo"], "criteo held out: run once with --seeds held-out"),
])
def test_bad_bench_options_exit_2_naming_the_problem(args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_the_settings_are_fixed_in_one_place() -> None:
    small = T.SEED_SETS["primary"]["small"]
    assert len(small) >= 5 and not set(small) & set(T.SEED_SETS["held-out"]["small"])
    assert [c.name for c in T.cells(T.DEVELOPMENT_TASKS, ("small", "large"))] == [
        "pairwise-weak-small", "pairwise-strong-small", "numeric-weak-small", "numeric-strong-small",
        "wide-weak-small", "wide-strong-small", "frappe-weak-small", "frappe-strong-small",
        "pairwise-strong-large", "frappe-strong-large"]
    assert len(T.HELD_OUT_TASKS) >= 2 and not set(T.HELD_OUT_TASKS) & set(T.DEVELOPMENT_TASKS)
    # no method trains on an evaluation seed: methods train from 1000 x method seed, 20 repeats at most
    trained = {T.training_seeds(m) + k for sets in T.SEED_SETS.values() for seeds in sets.values()
               for m in seeds for k in range(20)}
    assert not trained & set(T.EVAL_SEEDS) and not trained & set(T.REFERENCE_STUDY_SEEDS)
    assert len(T.EVAL_SEEDS) >= 5
    for name, task in T.TASKS.items():  # real data: a reference fixed in code, with its source (or why none)
        assert task.kind == "synthetic" or task.reference_source, name
    assert T.TASKS["frappe"].reference_ne is not None
    spec = T.campaign_spec(T.Cell("wide", "weak", "small"), 2, 0.02)
    assert spec["hypotheses"]["use_llm"] is False and spec["budget"]["amount"] == 0.02
    assert spec["first_seed"] == T.training_seeds(2)
    json.dumps(spec)


def test_held_out_tasks_never_run_with_development_seeds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="held-out tasks"):
        H.run(("criteo",), ("small",), "primary", tmp_path / "w", tmp_path / "o" / "h", tmp_path, print)


def test_results_list_the_policy_commits_made_after_the_first_fair_run(tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True,
                              env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
                                   "GIT_COMMITTER_EMAIL": "a@b", "PATH": "/usr/bin:/bin"}).stdout.strip()

    git("init", "-q")
    (tmp_path / "src" / "rankwright" / "agent").mkdir(parents=True)
    (tmp_path / "README.md").write_text("a")
    git("add", "."), git("commit", "-qm", "first run here")
    first = git("rev-parse", "--short", "HEAD")
    (tmp_path / "src" / "rankwright" / "agent" / "policy.py").write_text("x = 1")
    git("add", "."), git("commit", "-qm", "a policy change")
    (tmp_path / "README.md").write_text("b")
    git("add", "."), git("commit", "-qm", "docs only")
    listed = H.policy_commits(tmp_path, first)
    assert len(listed) == 1 and listed[0].endswith("a policy change")
    assert H.policy_commits(tmp_path, None) == []


def test_a_failed_method_is_listed_and_the_rest_still_counts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(H, "reference", lambda task, baseline, work, say: _ref())

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
    assert part["done"] == 2 * len(T.METHODS) * len(T.SEED_SETS["primary"]["small"]) - 2
    assert any("tpe-few seed 2: FAILED" in line for line in said)
    text = (tmp_path / "out" / "h2h.md").read_text()
    assert "wide-weak-small tpe-few seed 2: rankwright run failed" in text
    document = json.loads((tmp_path / "out" / "h2h.json").read_text())
    assert set(document["sets"]) == {"primary"}
    row = next(r for r in document["sets"]["primary"]["summary"]["rows"]
               if r["cell"] == "wide-weak-small" and r["method"] == "tpe-few")
    assert row["gain_ne"]["n"] == len(T.SEED_SETS["primary"]["small"]) - 1


def test_results_name_the_commit_of_each_method_when_a_resume_mixed_them() -> None:
    part = {"commit": "b2", "outcomes": [_outcome("rankwright", 1, 0.9, 0.7) | {"commit": "b2"},
                                         _outcome("tpe", 1, 0.9, 0.7) | {"commit": "a1"}]}
    assert H._provenance(part) == " Outcomes by the commit that produced them: rankwright at b2; tpe at a1."
    part["outcomes"][1]["commit"] = "b2"
    assert H._provenance(part) == ""


def test_a_method_that_used_more_than_its_budget_is_marked() -> None:
    refs = {"wide-weak": _ref(0.9, 0.7, 0.8)}
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
    monkeypatch.setattr(H, "reference", lambda task, baseline, work, say: _ref())
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


def test_a_resumed_run_names_the_times_of_the_runs_whose_outcomes_it_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(H, "reference", lambda task, baseline, work, say: _ref())
    monkeypatch.setattr(H, "run_method", lambda cell, method, seed, ref, work, say, commit="unknown":
                        _outcome(method, seed, 0.95, 0.72, cell.name))
    out = tmp_path / "out" / "h2h"
    first = H.run(("wide",), ("small",), "primary", tmp_path / "work", out, tmp_path, print)
    again = H.run(("wide",), ("small",), "primary", tmp_path / "work", out, tmp_path, print)
    assert len(again["windows"]) == 2 and again["windows"][0]["started"] == first["started"]
    assert f"Earlier runs on the same work folder: {first['started']} to" in " ".join(out.with_suffix(".md")
                                                                                   .read_text().split())
    other = H.run(("wide",), ("small",), "primary", tmp_path / "elsewhere", out, tmp_path, print)
    assert len(other["windows"]) == 1  # another work folder: a new run, nothing reused


def test_copy_runs_after_every_method_it_reads(tmp_path: Path, monkeypatch) -> None:
    """"Copy what worked last time" reads the tuner's outcome on the other baseline: every
    copy comes after every other method of every cell."""
    monkeypatch.setattr(H, "reference", lambda task, baseline, work, say: _ref())
    order: list[str] = []

    def fake(cell, method, seed, ref, work, say, commit="unknown"):
        order.append(method)
        return _outcome(method, seed, 0.95, 0.72, cell.name)

    monkeypatch.setattr(H, "run_method", fake)
    H.run(("wide",), ("small",), "primary", tmp_path / "w", tmp_path / "o" / "h", tmp_path, lambda line: None)
    copies = [i for i, m in enumerate(order) if m == "copy"]
    assert copies and min(copies) > max(i for i, m in enumerate(order) if m != "copy")
    text = (tmp_path / "o" / "h.md").read_text()
    assert "Rankwright against copy at the same method seed" in text


def test_copy_ships_the_last_winner_only_when_it_beats_the_baseline_on_validation(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    from rankwright.bench import peers
    from rankwright.bench.runs import Finished

    source = tmp_path / "wide-strong-small" / "tpe-s1"
    source.mkdir(parents=True)
    (source / "outcome.json").write_text(json.dumps({"changes": {"train.epochs": 9, "train.seed": 1}}))
    objectives = {"baseline": 0.90, "copied": 0.88}
    seen: dict[str, dict] = {}

    class FakeRunner:
        def __init__(self, target, folder, parallel):
            pass

        def run_all(self, jobs):
            seen.update(jobs)
            return {k: Finished(k, "succeeded", 5.0, 5.0, objectives[k], {}, None, [], False) for k in jobs}

    monkeypatch.setattr(peers, "Runner", FakeRunner)
    out = peers.copy_last(source, 2, object(), tmp_path / "copy-s2")
    # both runs on the method seed's training seed, charged; the winner's own seed is not copied
    assert seen == {"baseline": {"train.seed": T.training_seeds(2)},
                    "copied": {"train.epochs": 9, "train.seed": T.training_seeds(2)}}
    assert out["changes"] == {"train.epochs": 9} and not out["shipped_baseline"] and out["spent_s"] == 10.0
    objectives["copied"] = 0.91  # worse on validation: the baseline stands
    out = peers.copy_last(source, 2, object(), tmp_path / "copy-s2b")
    assert out["changes"] == {} and out["shipped_baseline"]
    with pytest.raises(RuntimeError, match="nothing to copy yet"):
        peers.copy_last(tmp_path / "absent", 2, object(), tmp_path / "copy-s3")
