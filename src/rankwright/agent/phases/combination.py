"""Combination: first a fidelity check (the baseline, every promoted hypothesis and a
sample of rejected ones re-run at full fidelity with seeds, so the report can say how well
low fidelity ranked them), then greedy forward selection: add the next promoted change (or
a rejected one the check found helping) to the best configuration so far only while the
paired improvement over it holds."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from rankwright.agent.naming import base_name
from rankwright.agent.phases._base import Done, Step, baseline_arm, cost_of, planned_runs
from rankwright.agent.phases.validation import judgements
from rankwright.agent.state import CampaignState
from rankwright.analysis import Verdict, paired_test


@dataclass(frozen=True)
class Path:
    """Where greedy selection stands: the best configuration so far and how it got there."""

    members: tuple[str, ...]  # hypotheses merged, in the order they were added
    arm: str  # its full-fidelity arm ("baseline" when nothing was kept)
    changes: dict[str, Any]
    notes: tuple[str, ...]  # one line per step: kept, rejected, skipped and why
    pending: tuple[str, dict[str, Any], tuple[str, ...], str] | None  # (arm, changes, members, why) to measure next
    finished: bool


def combo_arm(members: tuple[str, ...]) -> str:
    if len(members) == 1:
        return members[0]
    name = "combo:" + "+".join(members)
    return name if len(name) <= 120 else f"combo:{len(members)}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def fidelity_check(state: CampaignState) -> tuple[list[str], list[str]]:
    """(promoted, sampled rejected) hypotheses to re-run at full fidelity."""
    verdicts = judgements(state)
    helped = [n for n, j in verdicts.items() if j.verdict is Verdict.HELPED]
    rejected = sorted(n for n, j in verdicts.items() if j.verdict is not Verdict.HELPED)
    k = min(state.strategy.fidelity_check_rejected, len(rejected)) if state.low else 0
    sample = sorted(random.Random(state.seed).sample(rejected, k)) if k else []
    return helped, sample


def combinable(state: CampaignState) -> list[str]:
    """What greedy selection walks: the promoted hypotheses, and any rejected one that the
    fidelity check measured helping at full fidelity (paired one-sided test at the
    strategy's alpha). Validation at low fidelity can miss an effect; ignoring the full
    fidelity's evidence would leave a measured gain on the table."""
    helped, sample = fidelity_check(state)
    base = state.values(baseline_arm(state, low=False))
    found = []
    for name in sample:
        values = state.values(name)
        if values and len(base) >= 2 and state.complete(name):
            test = paired_test(values, base)
            if test.effect < 0 and test.p_lower < state.strategy.alpha:
                found.append(name)
    return helped + found


def _full_effect(state: CampaignState, arm: str) -> float:
    base = state.values(baseline_arm(state, low=False))
    values = state.values(arm)
    return paired_test(values, base).effect if values and len(base) >= 2 else float("inf")


def greedy_path(state: CampaignState, promoted: list[str]) -> Path:
    """Walk the promoted hypotheses, best full-fidelity effect first. Derived from the store
    every time, so a wake killed mid-phase takes up the walk exactly where it was."""
    alpha = state.strategy.alpha
    order = sorted(promoted, key=lambda n: (_full_effect(state, n), n))
    members: tuple[str, ...] = ()
    arm, changes, notes = baseline_arm(state, low=False), {}, []
    for name in order:
        delta = state.first_entry(name if state.seeds(name) else name + "@low")["delta"]
        clash = [k for k in delta if k in changes and changes[k] != delta[k]]
        declared = [m for m in members if frozenset((m, name)) in state.conflicts]
        if clash or declared:
            notes.append(f"{name}: skipped, it conflicts with {', '.join(declared) or 'the kept changes'}"
                         + (f" on {', '.join(clash)}" if clash else ""))
            continue
        merged, candidate = {**changes, **delta}, members + (name,)
        next_arm = combo_arm(candidate)
        if not state.complete(next_arm) or len(state.seeds(next_arm)) < state.strategy.full_seeds:
            return Path(members, arm, changes, tuple(notes),
                        (next_arm, merged, candidate, f"add {name} to {' + '.join(members) or 'the baseline'}"), False)
        test = paired_test(state.values(next_arm), state.values(arm)) if state.values(next_arm) else None
        if test is None or not (test.effect < 0 and test.p_lower < alpha):
            shown = "it failed" if test is None else f"{test.effect * 100:+.2f}% (one-sided p {test.p_lower:.3f})"
            notes.append(f"{name}: not kept, adding it to {' + '.join(members) or 'the baseline'} gave {shown}; "
                         "selection stops here")
            return Path(members, arm, changes, tuple(notes), None, True)
        notes.append(f"{name}: kept, {test.effect * 100:+.2f}% over {' + '.join(members) or 'the baseline'} "
                     f"(one-sided p {test.p_lower:.3f} < {alpha:g})" + _synergy(state, members, name, next_arm))
        members, arm, changes = candidate, next_arm, merged
    return Path(members, arm, changes, tuple(notes), None, True)


def _synergy(state: CampaignState, members: tuple[str, ...], name: str, merged: str) -> str:
    """How the merged effect compares with the sum of its parts, all against the baseline."""
    if not members:
        return ""
    parts = [_full_effect(state, m) for m in (*members, name)]
    together = _full_effect(state, merged)
    if float("inf") in parts or together == float("inf"):
        return ""
    total = sum(parts)
    word = "more than" if together < total else "less than"
    return (f"; together {together * 100:+.2f}% over the baseline, {word} the sum of the parts "
            f"({total * 100:+.2f}%)")


class Combination:
    name = "combination"

    def next(self, state: CampaignState) -> Step | Done:
        seeds = range(1, state.strategy.full_seeds + 1)
        budget = state.phase_budget(self.name)
        helped, sample = fidelity_check(state)
        # validation at full fidelity with nothing promoted (tuner first): nothing to check, and
        # the baseline's seeds it has are those the confirmation asked for (its first stage)
        nothing = not state.low and not helped and not sample
        check = [] if nothing else planned_runs(state, arm=baseline_arm(state, low=False), phase=self.name, delta={},
                                                low=False, seeds=seeds, source="baseline", hypothesis="baseline",
                                                reason="the baseline at full fidelity, with seeds")
        for name in helped + sample:
            first = state.first_entry(name + ("@low" if state.low else ""))
            why = "promoted in validation" if name in helped else "rejected in validation (sampled as a check)"
            check += planned_runs(state, arm=name, phase=self.name, delta=first["delta"], low=False, seeds=seeds,
                                  technique=first["technique"], source=first["source"], hypothesis=name,
                                  reason=f"{why}: measured at full fidelity")
        if check:
            if cost_of(check) > budget:
                return Done(f"the fidelity check needs {cost_of(check):.3g} but the phase has {budget:.3g} left")
            return Step(tuple(check), f"fidelity check at full fidelity: the baseline, {len(helped)} promoted "
                                      f"and {len(sample)} rejected hypotheses", "fidelity check")
        candidates = combinable(state)
        if not candidates:
            return Done("nothing was promoted in validation or helped in the fidelity check, so there is nothing "
                        "to combine")
        path = greedy_path(state, candidates)
        if path.pending is None:
            best = " + ".join(path.members) or "the baseline"
            return Done(f"greedy selection ended at {best}: " + "; ".join(path.notes))
        arm, changes, members, why = path.pending
        entries = planned_runs(state, arm=arm, phase=self.name, delta=changes, low=False, seeds=seeds,
                               source="combination", hypothesis=arm, reason=why)
        if cost_of(entries) > budget:
            return Done(f"the next greedy step ({why}) needs {cost_of(entries):.3g} but the phase has "
                        f"{budget:.3g} left; best so far: {' + '.join(path.members) or 'the baseline'}")
        return Step(tuple(entries), f"greedy step: {why}", "greedy")


def best_combination(state: CampaignState) -> Path:
    candidates = combinable(state)
    return greedy_path(state, candidates) if candidates else Path((), baseline_arm(state, low=False), {}, (), None,
                                                                   True)


def low_vs_full(state: CampaignState) -> list[tuple[str, float, float]]:
    """(hypothesis, low-fidelity effect, full-fidelity effect) of every hypothesis measured at both."""
    base_low, base_full = state.values(baseline_arm(state, low=True)), state.values(baseline_arm(state, low=False))
    out = []
    for arm in state.arms("validation"):
        name = base_name(arm)
        if not state.low or arm == baseline_arm(state, low=True) or name not in state.arms("combination"):
            continue
        low, full = state.values(arm), state.values(name)
        if low and full and len(base_low) >= 2 and len(base_full) >= 2:
            out.append((name, paired_test(low, base_low).effect, paired_test(full, base_full).effect))
    return out
