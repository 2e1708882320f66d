"""Validation: single hypotheses against the seed-replicated baseline at low fidelity, in
rounds. A round is chosen from the ranking re-computed with what this campaign learned, so
a campaign whose first picks failed tries something else next. Promotion needs the paired
effect to clear the noise after the multiple-testing correction over every hypothesis
validated so far, the seed noise pooled across them (`pooled_paired_tests`: with two seeds
each, one hypothesis alone would have one degree of freedom). More seeds follow the
two-stage rule fixed in advance (`TwoStageDesign`): stage-1 verdicts at a stricter level,
extra seeds only for a hypothesis inside the borderline band, and its stage-2 verdict at
the rest of alpha, so the top-up does not inflate the error rate."""

from __future__ import annotations

from rankwright.agent.naming import arm_name, base_name
from rankwright.agent.phases._base import Done, Step, baseline_arm, cost_of, planned_runs, tuner_first
from rankwright.agent.state import CampaignState
from rankwright.analysis import Judgement, TwoStageDesign, Verdict, judge_two_stage


def design(state: CampaignState) -> TwoStageDesign:
    """The sequential rule of this campaign, fixed by its approved strategy: stage 1 on the
    plan's seeds per hypothesis, `extra_seeds` more for a borderline one."""
    return TwoStageDesign(alpha=state.strategy.alpha, first_seeds=state.validation_seeds,
                          extra_seeds=state.strategy.extra_seeds)


def judgements(state: CampaignState) -> dict[str, Judgement]:
    """The verdict on every hypothesis whose validation runs all ended (one family)."""
    base = state.values(baseline_arm(state, low=True))
    arms = {}
    for arm in state.arms("validation"):
        if arm == baseline_arm(state, low=True) or not state.complete(arm):
            continue
        values = state.values(arm)
        if values and len(base) >= 2:
            arms[base_name(arm)] = values
    return judge_two_stage(arms, base, design(state), margin=state.strategy.margin,
                           method=state.strategy.correction)


def promoted(state: CampaignState) -> list[str]:
    return [name for name, j in judgements(state).items() if j.verdict is Verdict.HELPED]


class Validation:
    name = "validation"

    def next(self, state: CampaignState) -> Step | Done:
        if tuner_first(state) and state.round_size:
            return Done("tuner first: the approved plan sends the hypotheses to the tuner as its first trials "
                        "(the budget is too small for validation rounds with seeds)")
        verdicts = judgements(state)
        budget = state.phase_budget(self.name)
        more = self._more_seeds(state, verdicts)
        if more and cost_of(more) <= budget:
            names = sorted({base_name(e["name"]) for e in more if not e["name"].startswith("baseline")})
            return Step(tuple(more), f"borderline, more seeds before a verdict: {', '.join(names)}", "more seeds")
        rounds = 1 + state.steps(self.name, "round")
        if rounds < state.strategy.rounds and state.round_size:
            picked = self._round(state, budget)
            if picked:
                names = sorted({base_name(e["name"]) for e in picked})
                return Step(tuple(picked), f"round {rounds + 1}: the re-ranked top untried hypotheses "
                                           f"({', '.join(names)})", "round")
        helped = [n for n, j in verdicts.items() if j.verdict is Verdict.HELPED]
        counts = {v: sum(1 for j in verdicts.values() if j.verdict is v) for v in Verdict}
        return Done(f"{len(verdicts)} hypotheses judged ({state.strategy.correction.upper()} correction, "
                    f"alpha {state.strategy.alpha:g}; {design(state).describe()}): "
                    f"promoted {', '.join(helped) or 'none'}; "
                    f"{counts[Verdict.NO_GAIN]} no gain, {counts[Verdict.HURT]} hurt, "
                    f"{counts[Verdict.INCONCLUSIVE]} inconclusive")

    def _more_seeds(self, state: CampaignState, verdicts: dict[str, Judgement]) -> list[dict]:
        target = design(state).total_seeds
        entries: list[dict] = []
        for name, j in verdicts.items():
            arm = arm_name(name, bool(state.low))
            if not j.borderline or len(state.seeds(arm)) >= target:
                continue
            first = state.first_entry(arm)
            entries += planned_runs(state, arm=arm, phase=self.name, delta=first["delta"], low=True,
                                    seeds=range(1, target + 1), technique=first["technique"],
                                    source=first["source"], reason=f"borderline: {j.reason}", hypothesis=name)
        if entries:
            entries += planned_runs(state, arm=baseline_arm(state, low=True), phase=self.name, delta={}, low=True,
                                    seeds=range(1, target + 1), source="baseline", hypothesis="baseline",
                                    reason="the baseline's seeds for the borderline hypotheses' new seeds")
        return entries

    def _round(self, state: CampaignState, budget: float) -> list[dict]:
        tried_names = {base_name(a) for a in state.arms()}
        tried_changes = [state.first_entry(a)["delta"] for a in state.arms()]
        tried_techniques = {state.first_entry(a)["technique"] for a in state.arms()} - {None}
        picked: list[dict] = []
        chosen = 0
        for c in state.candidates:
            if chosen >= state.round_size:
                break
            if (c.name in tried_names or c.changes in tried_changes or c.technique in tried_techniques
                    or not c.expected_to_help or not set(c.changes) <= state.allowed_knobs):
                continue
            entries = planned_runs(state, arm=arm_name(c.name, bool(state.low)), phase=self.name, delta=c.changes,
                                   low=True, seeds=range(1, state.validation_seeds + 1), cost_factor=c.cost_factor,
                                   technique=c.technique, source=c.source, reason=c.reason, hypothesis=c.name)
            if cost_of(picked) + cost_of(entries) > budget:
                break
            picked += entries
            chosen += 1
        return picked
