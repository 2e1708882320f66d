"""The phase policies and `decide` as pure functions of a campaign state built by hand:
promotion under the multiple-testing correction, more seeds for a borderline hypothesis,
combination with conflicts, exploitation inside the approved space, the guardrail pause,
and the budget that a phase leaves to the next."""

from dataclasses import replace

import pytest

from rankwright.agent.decide import decide
from rankwright.agent.phases import Combination, Done, Exploitation, Step, Validation
from rankwright.agent.phases.combination import greedy_path
from rankwright.agent.spec import SearchRange, Strategy
from rankwright.agent.state import CampaignState, Candidate, Run
from rankwright.store.records import ExperimentStatus, RevisionRecord

NAME = "c"
LOW = {"data.train_fraction": 0.5}


def entry(arm, seed, phase="validation", delta=None, technique=None, source="knowledge", params=None, cost=1.0):
    return {"phase": phase, "name": arm, "changes": {**(LOW if arm.endswith("@low") else {}), **(delta or {})},
            "seed": seed, "predicted_hours": cost, "technique": technique, "source": source, "reason": "",
            "hypothesis": arm.removesuffix("@low"), "delta": dict(delta or {}),
            "fidelity": "low" if arm.endswith("@low") else "full", "params": dict(params or {})}


def build(arms, *, phase_of=None, strategy=None, revisions=(), candidates=(), space=None, plannable=1000.0,
          deltas=None, conflicts=frozenset(), ended=True):
    """arms: arm -> {seed: objective}; every run succeeded (cost 1.0) unless `ended` is False."""
    planned, runs = [], {}
    deltas = deltas or {}
    for arm, values in arms.items():
        name = arm.removesuffix("@low")
        for seed, value in values.items():
            phase = (phase_of or {}).get(arm, "validation")
            planned.append(entry(arm, seed, phase, deltas.get(name, {} if name == "baseline" else {name: 1}),
                                 technique=None if name == "baseline" else name))
            key = f"{NAME}/{arm}/seed{seed}"
            status = ExperimentStatus.SUCCEEDED if ended else ExperimentStatus.RUNNING
            runs[key] = Run(key, arm, seed, status, value if ended else None, 1.0, 1.0 if ended else None)
    allowed = frozenset({"train.seed", *LOW, *(k for d in (deltas or {}).values() for k in d),
                         *(a.removesuffix("@low") for a in arms), *(space or {}), "lr"})
    return CampaignState(
        name=NAME, strategy=strategy or Strategy(), low=LOW, space=space or {}, allowed_knobs=allowed,
        plannable=plannable, round_size=2, validation_seeds=2, max_parallel=2,
        planned=tuple(planned), revisions=tuple(revisions), runs=runs, candidates=tuple(candidates),
        conflicts=conflicts)


BASE = {1: 0.900, 2: 0.910, 3: 0.905}


def shifted(delta, noise=(0.0, 0.0, 0.0)):
    return {s: BASE[s] + delta + noise[i] for i, s in enumerate(BASE)}


def test_promotion_uses_the_paired_test_and_the_holm_correction():
    # "strong" gains 2% on every seed; "weak" gains a little, consistently enough to pass alone
    # (raw p < 0.1) but not once corrected over the ten hypotheses judged together.
    arms = {"baseline@low": BASE, "strong@low": shifted(-0.018, (0.0005, -0.0005, 0.0)),
            "weak@low": shifted(-0.0025, (0.0015, -0.0012, 0.0))}
    for i in range(8):
        arms[f"null{i}@low"] = shifted(0.0, (0.002 * (i % 3 - 1), -0.002 * (i % 2), 0.001))
    from rankwright.agent.phases.validation import design, judgements

    verdicts = judgements(build(arms))
    assert verdicts["strong"].verdict.value == "helped"
    # the seed noise is pooled over the ten arms (df 20, not 2), and "weak" has a third seed, so
    # it is judged at stage 2 of the two-stage rule, at the rest of alpha
    weak = verdicts["weak"]
    assert weak.result.df == 20 and weak.stage == 2 and weak.level == pytest.approx(design(build(arms)).alpha2)
    assert weak.result.p_lower < weak.level < weak.p_adjusted_lower
    assert verdicts["weak"].verdict.value != "helped"
    assert "Holm" in verdicts["strong"].reason
    bh = judgements(build(arms, strategy=Strategy(correction="bh")))
    assert bh["strong"].verdict.value == "helped" and "Benjamini" in bh["strong"].reason or "BH" in bh["strong"].reason


def test_a_borderline_hypothesis_gets_more_seeds_and_so_does_the_baseline():
    arms = {"baseline@low": BASE, "maybe@low": {1: 0.893, 2: 0.9085}}  # -0.8% and -0.2%: p about 0.18
    state = build(arms, strategy=Strategy(rounds=1))
    step = Validation().next(state)
    assert isinstance(step, Step) and step.step == "more seeds", step
    added = {(e["name"], e["seed"]) for e in step.experiments}
    assert {("maybe@low", 3), ("maybe@low", 4), ("baseline@low", 4)} <= added
    assert ("baseline@low", 3) not in added  # already ran
    assert all(e["changes"]["data.train_fraction"] == 0.5 for e in step.experiments)


def test_later_rounds_take_the_reranked_untried_hypotheses_expected_to_help_within_budget():
    arms = {"baseline@low": BASE, "a@low": shifted(0.004, (0.001, -0.001, 0))}
    candidates = [Candidate("a", {"a": 1}, "a", "knowledge", expected_effect=-0.01),
                  Candidate("loser", {"loser": 1}, "loser", "knowledge", expected_effect=0.002, p_success=0.0),
                  Candidate("b", {"b": 1}, "b", "knowledge", expected_effect=-0.005, p_success=0.4),
                  Candidate("c", {"c": 1}, "c", "knowledge", expected_effect=-0.004, p_success=0.3),
                  Candidate("d", {"d": 1}, "d", "knowledge", expected_effect=-0.003, p_success=0.2)]
    state = build(arms, candidates=candidates)
    state = replace(state, allowed_knobs=state.allowed_knobs | {"b", "c", "d", "loser"})
    step = Validation().next(state)
    assert step.step == "round"
    assert sorted({e["name"] for e in step.experiments}) == ["b@low", "c@low"]  # round size 2, loser waits
    # with budget for one hypothesis (two seeds at the measured cost 1.0) only the first is taken
    spent = state.committed("validation")
    tight = replace(state, plannable=spent + 2.5, strategy=Strategy(phases={"validation": 1.0, "combination": 0.0,
                                                                             "exploitation": 0.0}))
    assert {e["name"] for e in Validation().next(tight).experiments} == {"b@low"}


def test_combination_checks_fidelity_then_merges_greedily_and_skips_conflicts():
    arms = {"baseline@low": BASE, "a@low": shifted(-0.02), "b@low": shifted(-0.015), "x@low": shifted(-0.012),
            "n@low": shifted(0.0005, (0.001, -0.001, 0))}
    deltas = {"a": {"lr": 0.003}, "b": {"b": 1}, "x": {"lr": 0.0001}, "n": {"n": 1}}
    state = build(arms, deltas=deltas, strategy=Strategy(fidelity_check_rejected=1))
    step = Combination().next(state)
    assert step.step == "fidelity check"
    names = {e["name"] for e in step.experiments}
    assert {"baseline", "a", "b", "x", "n"} == names  # the only rejected one is sampled
    assert all(e["fidelity"] == "full" and "data.train_fraction" not in e["changes"] for e in step.experiments)

    full = {**arms, "baseline": BASE, "a": shifted(-0.02), "b": shifted(-0.01), "x": shifted(-0.015),
            "n": shifted(0.0)}
    phases = {k: "combination" for k in ("baseline", "a", "b", "x", "n")}
    state = build(full, phase_of=phases, deltas=deltas, strategy=Strategy(fidelity_check_rejected=1))
    path = greedy_path(state, ["a", "b", "x"])
    # best first: a; x sets lr to another value than a, so it is skipped with the reason; then b
    assert path.pending is not None and path.pending[2] == ("a", "b") and path.pending[1] == {"lr": 0.003, "b": 1}
    assert any("x: skipped" in n and "lr" in n for n in path.notes)
    step = Combination().next(state)
    assert step.step == "greedy" and {e["name"] for e in step.experiments} == {"combo:a+b"}

    # the merged arm measured: it improves over a, so it is kept; nothing is left to add
    full["combo:a+b"] = shifted(-0.03, (0.001, -0.001, 0.0))
    phases["combo:a+b"] = "combination"
    deltas["combo:a+b"] = {"lr": 0.003, "b": 1}
    state = build(full, phase_of=phases, deltas=deltas, strategy=Strategy(fidelity_check_rejected=1))
    done = Combination().next(state)
    assert isinstance(done, Done) and "a + b" in done.reason
    # a declared conflict is skipped as well
    state = replace(state, conflicts=frozenset({frozenset(("a", "b"))}))
    assert any("b: skipped" in n for n in greedy_path(state, ["a", "b"]).notes)


def _exploitation_state(revision_number=5):
    space = {"lr": SearchRange(low=1e-4, high=1e-1, log=True), "dropout": SearchRange(low=0.0, high=0.5)}
    arms = {"baseline@low": BASE, "baseline": BASE}
    state = build(arms, phase_of={"baseline": "combination"}, space=space,
                  strategy=Strategy(trials=6, confirmation_seeds=5))
    revisions = tuple(RevisionRecord(i, "combination", "", {"step": "fidelity check"}, None)
                      for i in range(1, revision_number))
    return replace(state, revisions=revisions, base_values={"lr": 0.001, "dropout": 0.2})


def test_exploitation_asks_trials_inside_the_approved_space_and_deterministically():
    state = _exploitation_state()
    first, again = Exploitation().next(state), Exploitation().next(state)
    assert first.step == "trials" and first.experiments == again.experiments  # pure: same state, same trials
    assert len(first.experiments) == 2  # max_parallel
    for e in first.experiments:
        assert 1e-4 <= e["params"]["lr"] <= 1e-1 and 0.0 <= e["params"]["dropout"] <= 0.5
        assert e["delta"] == e["params"] and e["seed"] == 1 and e["fidelity"] == "full"
    other = Exploitation().next(_exploitation_state(revision_number=6))
    assert other.experiments != first.experiments  # seeded from the revision


def test_with_the_baseline_still_best_exploitation_keeps_back_only_what_a_winner_would_need():
    state = replace(_exploitation_state(), strategy=Strategy(trials=6, confirmation_seeds=3))
    # 6 runs of 1.0 committed; 2 left: a trial winner's seed 2 (the confirmation's first stage)
    # needs 1, so one trial fits; its seed 3 comes only with a borderline stage 1
    step = Exploitation().next(replace(state, plannable=8.0))
    assert step.step == "trials" and len(step.experiments) == 1
    done = Exploitation().next(replace(state, plannable=7.0))  # 1 left: nothing after the reserve
    assert isinstance(done, Done) and "no winner to confirm" in done.reason


def test_exploitation_confirms_the_winner_first_on_the_first_stage_seeds():
    state = _exploitation_state()
    trials = {f"trial-{i}": {1: 0.905 - 0.002 * i} for i in range(1, 7)}
    arms = {"baseline@low": BASE, "baseline": BASE, **trials}
    phases = {"baseline": "combination", **{t: "exploitation" for t in trials}}
    built = build(arms, phase_of=phases, space=state.space, strategy=state.strategy)
    planned = tuple(p if not p["name"].startswith("trial-") else {**p, "params": {"lr": 0.001, "dropout": 0.1},
                                                                    "delta": {"lr": 0.001, "dropout": 0.1}}
                    for p in built.planned)
    built = replace(built, planned=planned, revisions=state.revisions, base_values=state.base_values)
    step = Exploitation().next(built)
    assert step.step == "confirmation" and step.data == {"winner": "trial-6", "stopped": "cap"}
    runs = {(e["name"], e["seed"]) for e in step.experiments}
    assert runs == {("trial-6", 2)}  # stage 1 of 2: seeds 1-2; the baseline's ran
    assert "stage 1 of 2; 5 seeds only if it is borderline" in step.reason


def test_a_step_outside_the_approved_strategy_pauses_instead():
    arms = {"baseline@low": BASE, "a@low": {1: 0.895, 2: 0.9045}}
    state = build(arms, strategy=Strategy(rounds=1))
    narrow = replace(state, allowed_knobs=frozenset({"train.seed", *LOW}))  # "a" is no longer approved
    decision = decide(narrow)
    assert decision.action == "pause" and "outside the approved search space" in decision.reason
    from rankwright.agent.decide import outside_guardrails

    broke = replace(state, plannable=state.committed() + 0.5)  # 0.5 left; the step below costs 2
    problems = outside_guardrails(broke, "exploitation", (entry("a", 3, "exploitation", {"a": 1}),
                                                          entry("a", 4, "exploitation", {"a": 1})))
    assert len(problems) == 1 and "approve about 1.5 more" in problems[0]
    assert outside_guardrails(state, "exploitation", (entry("a", 3, "exploitation", {"a": 1}),)) == []
    trial = entry("trial-1", 1, "exploitation", {"lr": 5.0}, source="exploitation", params={"lr": 5.0})
    spaced = replace(state, space={"lr": SearchRange(low=1e-4, high=1e-1, log=True)})
    assert "outside the approved range" in outside_guardrails(spaced, "exploitation", (trial,))[0]


def test_unused_budget_of_a_phase_flows_to_the_next():
    state = build({"baseline@low": BASE}, plannable=100.0)
    # shares 50/25/25; validation committed 3 of its 50: combination may use 100 - 25 - 3 = 72
    assert state.phase_budget("validation") == pytest.approx(50 - 3)
    assert state.phase_budget("combination") == pytest.approx(72)
    assert state.phase_budget("exploitation") == pytest.approx(97)


def test_decide_waits_while_runs_are_in_flight_and_is_deterministic():
    running = build({"baseline@low": BASE}, ended=False)
    assert decide(running).action == "wait"
    state = build({"baseline@low": BASE, "a@low": shifted(-0.02)})
    assert decide(state) == decide(state)


def test_the_median_pruner_stops_a_trial_whose_epochs_trail_the_ended_ones():
    from rankwright.agent.phases.exploitation import should_prune

    state = _exploitation_state()
    params = {"lr": 0.001, "dropout": 0.1}
    ended = {f"trial-{i}": {1: 0.90 + 0.001 * i} for i in range(1, 5)}
    arms = {"baseline@low": BASE, "baseline": BASE, **ended, "trial-5": {1: 0.0}, "trial-6": {1: 0.0}}
    phases = {"baseline": "combination", **{t: "exploitation" for t in (*ended, "trial-5", "trial-6")}}
    built = build(arms, phase_of=phases, space=state.space, strategy=state.strategy)
    runs = dict(built.runs)
    for running in ("trial-5", "trial-6"):  # still training
        key = f"{NAME}/{running}/seed1"
        runs[key] = Run(key, running, 1, ExperimentStatus.RUNNING, None, 1.0, None)
    curves = {f"{NAME}/{t}/seed1": (0.95, 0.92, v[1]) for t, v in ended.items()}
    curves[f"{NAME}/trial-5/seed1"] = (0.99, 0.98)  # worse than every ended trial at epoch 2
    curves[f"{NAME}/trial-6/seed1"] = (0.94, 0.91)  # better than the median
    planned = tuple({**p, "params": params, "delta": params} if p["name"].startswith("trial-") else p
                    for p in built.planned)
    built = replace(built, planned=planned, runs=runs, curves=curves, revisions=state.revisions,
                    base_values=state.base_values)
    pruned, why = should_prune(built, "trial-5")
    assert pruned and "trial-5 pruned after epoch 2" in why
    assert should_prune(built, "trial-6") == (False, "")
    assert should_prune(replace(built, strategy=Strategy(trials=6, prune=False)), "trial-5") == (False, "")


def test_any_hypothesis_source_feeds_the_next_round():
    from pathlib import Path
    from types import SimpleNamespace

    from rankwright.agent.learning import ResearchAgent
    from rankwright.agent.observe import with_ranking
    from rankwright.agent.ports import HypothesisSource
    from rankwright.agent.spec import CampaignSpec

    class Stub:
        def rank(self, spec, target, store, root, *, diagnose_key=None):
            self.diagnosed = diagnose_key
            idea = SimpleNamespace(name="idea", changes={"idea": 1}, technique=None, source="llm",
                                   expected_effect=-0.01, p_success=0.6, cost_factor=1.0, reason="a stub's idea")
            return SimpleNamespace(hypotheses=[idea]), []

    assert isinstance(ResearchAgent(), HypothesisSource) and isinstance(Stub(), HypothesisSource)
    spec = CampaignSpec(name=NAME, budget={"amount": 10.0}, hypotheses={"top_k": 2})
    state = build({"baseline@low": BASE, "a@low": shifted(0.004, (0.001, -0.001, 0))})
    stub = Stub()
    ranked = with_ranking(state, None, spec, None, Path("."), stub)
    assert [c.name for c in ranked.candidates] == ["idea"] and stub.diagnosed == f"{NAME}/baseline@low/seed1"
    step = Validation().next(replace(ranked, allowed_knobs=ranked.allowed_knobs | {"idea"}))
    assert step.step == "round" and {e["name"] for e in step.experiments} == {"idea@low"}


def test_a_rejected_hypothesis_the_fidelity_check_finds_helping_is_combined():
    """Validation at low fidelity missed it (inconclusive); full fidelity measured it helping."""
    arms = {"baseline@low": BASE, "r@low": shifted(-0.001, (0.01, -0.01, 0.0)), "q@low": shifted(0.002)}
    full = {**arms, "baseline": BASE, "r": shifted(-0.015, (0.001, -0.001, 0.0)), "q": shifted(0.001)}
    phases = {"baseline": "combination", "r": "combination", "q": "combination"}
    state = build(full, phase_of=phases, strategy=Strategy(fidelity_check_rejected=2))
    from rankwright.agent.phases.combination import best_combination, combinable

    assert combinable(state) == ["r"]
    assert best_combination(state).arm == "r"
    done = Combination().next(state)  # r alone is the best: nothing more to add
    assert isinstance(done, Done) and "ended at r" in done.reason
    # nothing helped at either fidelity: nothing to combine, and the message says both
    full["r"] = shifted(0.001)
    state = build(full, phase_of=phases, strategy=Strategy(fidelity_check_rejected=2))
    assert combinable(state) == [] and "helped in the fidelity check" in Combination().next(state).reason
