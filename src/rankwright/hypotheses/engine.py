"""The hypothesis engine: candidates from the knowledge base, the insights of past campaigns,
the diagnosis of the baseline and (optionally) an LLM, scored and ranked by expected value
per unit of cost, with duplicates and conflicts removed and every rank explained.

Effects are relative changes of validation NE (negative = better). A hypothesis's score is
its expected improvement E[max(0, -effect)] under a normal belief about the effect, divided
by its cost factor: a likely small gain, a long shot with a large upside and a cheap trial
are put on one scale. That scale orders hypotheses within two tiers: those expected to help
come first, and those not expected to help wait behind all of them, however cheap they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from rankwright.hypotheses.insights import (
    SAME_CONTEXT, Context, Insight, Spread, estimate_spread, prior_for, similarity,
)

# How far a matching diagnosis moves a technique's expected effect, in prior standard
# deviations toward helping, at full strength: the diagnosis says "this applies here" but
# is not a measurement of the effect. A finding that predicts the effect (a learning curve
# extrapolated, a one-epoch budget: `predicted_effect`) replaces the knowledge prior instead.
DIAGNOSIS_SHIFT = 0.75
HISTORY_WEIGHT = 0.5  # summed similarity above which history is named the main source
LLM_SD_FLOOR = 0.002  # an LLM's claimed effect is an opinion: never tighter than this
# Every experiment pays fixed costs (start, data loading, evaluation, a slot in the queue)
# whatever its technique, so no trial counts as cheaper than half a baseline run.
MIN_COST_FACTOR = 0.5
# Below this chance of beating the baseline's noise a hypothesis is not expected to help,
# even with a negative mean: fewer than one such trial in twenty would show a real gain,
# and its expected improvement comes from the tail of a prior sd that mostly measures how
# effects differ between datasets. Such a trial, like one with a mean >= 0, waits behind
# every hypothesis expected to help: a low cost makes a likely loss cheaper, not a gain
# likelier (a campaign planned two cheap ones, expected +0.10% and +0.05% NE, in its top 4
# and measured +23% and +19%). The agent's validation phase gates on the same 0.05.
MIN_P_SUCCESS = 0.05


@dataclass(frozen=True)
class Hypothesis:
    name: str
    source: str  # the main one: history | knowledge | diagnosis | llm
    sources: tuple[str, ...]
    changes: dict[str, Any]
    expected_effect: float
    effect_sd: float
    p_success: float  # P(effect beats the baseline's noise)
    expected_improvement: float  # E[max(0, -effect)], relative NE
    cost_factor: float
    expected_cost: float  # in the campaign's budget unit
    score: float
    reason: str
    technique: str | None = None
    rank: int = 0

    @property
    def expected_to_help(self) -> bool:
        """A negative expected effect with a fair chance (`MIN_P_SUCCESS`) of beating the noise."""
        return self.expected_effect < 0 and self.p_success >= MIN_P_SUCCESS

    def waiting_reason(self) -> str:
        """Why a hypothesis not expected to help waits ("" for one that is)."""
        if self.expected_to_help:
            return ""
        why = (f"its expected effect {_pct(self.expected_effect)} NE is not a gain" if self.expected_effect >= 0
               else f"P(beats the noise) {self.p_success:.2f} is below {MIN_P_SUCCESS:.2f}")
        return f"waits: not expected to help ({why}), so it ranks after every hypothesis that is, whatever its cost"


@dataclass(frozen=True)
class Ranking:
    hypotheses: list[Hypothesis]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    spread: Spread = field(default_factory=Spread)  # how far history on other data was trusted

    def top(self, k: int) -> list[Hypothesis]:
        return self.hypotheses[:k]


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _Phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2)))


def expected_improvement(mean: float, sd: float) -> float:
    """E[max(0, -effect)] for effect ~ N(mean, sd^2)."""
    z = -mean / sd
    return sd * _phi(z) + (-mean) * _Phi(z)


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


def _key(changes: Mapping[str, Any]) -> str:
    return json.dumps(changes, sort_keys=True, default=str)


def _same_data(a: Context, b: Context) -> bool:
    """Unknown data counts as the same (as in `insights.prior_for`)."""
    return not (a.data_id and b.data_id) or a.data_id == b.data_id


def _already_measured(changes: Mapping[str, Any], context: Context,
                      insights: Sequence[Insight]) -> tuple[Insight, float] | None:
    """The most similar insight that measured exactly these changes on the same data in the
    same context (similarity >= `SAME_CONTEXT`), whatever it was named or how it came out."""
    key, best = _key(changes), None
    for insight in insights:
        if _key(insight.changes) != key or not _same_data(context, insight.context):
            continue
        w = similarity(context, insight.context)
        if w >= SAME_CONTEXT and (best is None or w > best[1]):
            best = (insight, w)
    return best


def _measured_reason(measured: tuple[Insight, float]) -> str:
    insight, w = measured
    if not insight.measured:
        why = ("it diverged, also after the runbook lowered the learning rate" if insight.outcome == "unstable"
               else "it could not run")
        return (f"not proposed again: it was {insight.outcome} in the same context in campaign {insight.campaign!r} "
                f"({why}; same changes, same data, similarity {w:.2f})")
    return (f"already measured in the same context as {insight.technique!r} in campaign {insight.campaign!r} "
            f"(same changes, same data, similarity {w:.2f}: {_pct(insight.effect)} NE)")


def applicable_changes(
    kb: Any, model_family: str, knob_paths: set[str], current: Mapping[str, Any],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[list[tuple[Any, dict[str, Any]]], list[tuple[str, str]]]:
    """The knowledge base's techniques for this baseline as (technique, validated changes
    that differ from it), and those that cannot be tried here with the reason."""
    candidates: list[tuple[Any, dict[str, Any]]] = []
    dropped: list[tuple[str, str]] = []
    for technique in kb.for_model(model_family):
        if not technique.applicable(knob_paths):
            continue
        try:
            changes = technique.apply(current)
        except Exception as exc:  # noqa: BLE001 - a technique that cannot apply here is dropped, with why
            dropped.append((technique.id, f"cannot apply to this baseline: {exc}"))
            continue
        changes = {k: v for k, v in changes.items() if current.get(k) != v}
        if not changes:
            dropped.append((technique.id, "the baseline already has these settings"))
            continue
        try:
            candidates.append((technique, validate(changes)))
        except Exception as exc:  # noqa: BLE001 - the target's own validation error is the reason
            dropped.append((technique.id, f"invalid on this target: {exc}"))
    return candidates, dropped


def technique_for_changes(
    kb: Any, model_family: str, knob_paths: set[str], current: Mapping[str, Any],
    validate: Callable[[dict[str, Any]], dict[str, Any]], changes: Mapping[str, Any],
) -> str | None:
    """The id of the knowledge-base technique whose changes on this baseline (resolved,
    validated, no-ops removed: `applicable_changes`) are exactly `changes`, else None.

    A spec change such as `{"train.learning_rate": 0.003}` on a 0.001 baseline is
    `learning_rate_up`; stored under that id, its insight counts as that technique's
    evidence. `changes` is compared in its validated form when it validates. Where two
    techniques resolve to the same changes, the first in the knowledge base is named."""
    try:
        wanted = _key(validate(dict(changes)))
    except Exception:  # noqa: BLE001 - unvalidated changes are compared as given
        wanted = _key(changes)
    candidates, _ = applicable_changes(kb, model_family, knob_paths, current, validate)
    return next((t.id for t, resolved in candidates if _key(resolved) == wanted), None)


def rank_hypotheses(
    *,
    kb: Any,
    model_family: str,
    knob_paths: set[str],
    current: Mapping[str, Any],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    context: Context,
    insights: Iterable[Insight] = (),
    findings: Sequence[Any] = (),
    llm_suggestions: Sequence[Any] = (),
    noise: float = 0.001,
    baseline_cost: float = 1.0,
) -> Ranking:
    """Rank every applicable hypothesis for one baseline.

    `current` maps knob paths to the baseline's values; `validate` is the target's
    `validate_changes`; `noise` is the relative NE improvement that counts as beyond the
    baseline's noise; `findings` come from `diagnosis.diagnose*`, `llm_suggestions` from
    `llm.suggest` (already validated).

    Hypotheses expected to help (`Hypothesis.expected_to_help`) are ranked first, by
    expected improvement per unit cost; the rest wait behind them in the same order. A
    candidate whose exact changes were already measured on the same data in the same
    context is dropped, whatever that measurement was named (a spec change "lr-0.003" is
    `learning_rate_up`).
    """
    everything = list(insights)  # an unstable or invalid technique is still "already tried here"
    insights = [i for i in everything if i.measured]  # only measured effects shape priors
    scored: list[Hypothesis] = []
    by_signal: dict[str, Any] = {}
    for finding in sorted(findings, key=lambda f: -f.strength):
        by_signal.setdefault(finding.signal, finding)

    candidates, dropped = applicable_changes(kb, model_family, knob_paths, current, validate)
    spread = estimate_spread(insights, {t.id: t.prior.sd for t in kb.techniques}) if insights else Spread()
    for technique, changes in candidates:
        matched = [by_signal[s] for s in technique.signals if s in by_signal]
        finding = max(matched, key=lambda f: f.strength) if matched else None
        predicted = predicted_effect(finding)
        # a diagnosis that predicts the effect (a learning curve extrapolated, a budget of one
        # epoch) is this baseline's own prior; the knowledge base's is what the technique does
        # on baselines in general
        start = predicted or (technique.prior.effect, technique.prior.sd)
        prior = prior_for(technique.id, start[0], start[1], context, insights, spread)
        if prior.failed_here is not None:
            f = prior.failed_here
            dropped.append((technique.id, f"not proposed again: it did not help in the same context in campaign "
                                          f"{f.campaign!r} ({_pct(f.effect)} NE, noise {_pct(-f.noise)})"))
            continue
        measured = _already_measured(changes, context, everything)
        if measured is not None:
            dropped.append((technique.id, _measured_reason(measured)))
            continue
        mean, sd = prior.mean, prior.sd
        sources, notes = ["knowledge"], [f"knowledge prior {_pct(technique.prior.effect)} NE "
                                         f"(sd {technique.prior.sd * 100:.2f}%; {technique.prior.evidence})"]
        if prior.evidence:
            sources.append("history")
            best, w = max(prior.evidence, key=lambda e: e[1])
            notes.append(f"history: {len(prior.evidence)} insight(s), total similarity {prior.evidence_weight:.2f}; "
                         f"closest: campaign {best.campaign!r} at similarity {w:.2f} measured {_pct(best.effect)} NE "
                         f"(se {best.effect_se * 100:.2f}%); {spread.describe()}")
        for failed, changed in prior.failed_elsewhere:
            notes.append(f"did not help in campaign {failed.campaign!r} ({_pct(failed.effect)} NE) but the context "
                         f"changed ({', '.join(changed) or 'slightly'}), so it is proposed again")
        if finding is not None and predicted is not None:
            sources.append("diagnosis")
            notes.append(f"diagnosis ({finding.signal}, strength {finding.strength:.2f}) predicts "
                         f"{_pct(predicted[0])} NE (sd {predicted[1] * 100:.2f}%), in place of the knowledge "
                         f"prior: {finding.reason}")
        elif finding is not None:
            mean -= DIAGNOSIS_SHIFT * finding.strength * sd
            sources.append("diagnosis")
            notes.append(f"diagnosis ({finding.signal}, strength {finding.strength:.2f}): {finding.reason}")
        main = ("history" if prior.evidence_weight >= HISTORY_WEIGHT else
                "diagnosis" if finding is not None else "knowledge")
        scored.append(_score(technique.id, main, tuple(sources), changes, mean, sd, technique.cost_factor,
                             baseline_cost, noise, notes, technique.id))

    for suggestion in llm_suggestions:
        measured = _already_measured(suggestion.changes, context, everything)
        if measured is not None:
            dropped.append((f"llm:{suggestion.name}", _measured_reason(measured)))
            continue
        sd = max(abs(suggestion.expected_effect) * (2.0 - suggestion.confidence), LLM_SD_FLOOR)
        scored.append(_score(f"llm:{suggestion.name}", "llm", ("llm",), dict(suggestion.changes),
                             suggestion.expected_effect, sd, 1.0, baseline_cost, noise,
                             [f"LLM: {suggestion.reason} (claimed {_pct(suggestion.expected_effect)} NE, "
                              f"confidence {suggestion.confidence:.2f}; cost assumed equal to the baseline's)"], None))

    # Two tiers, each by expected gain per cost: a hypothesis expected to help always comes
    # before one that is not, so declared conflicts and duplicates are also won by the former.
    scored.sort(key=lambda h: (not h.expected_to_help, -h.score, h.name))
    kept: list[Hypothesis] = []
    seen: dict[str, str] = {}
    for h in scored:
        key = _key(h.changes)
        if key in seen:
            dropped.append((h.name, f"duplicate of {seen[key]} (same changes)"))
            continue
        clash = next((k for k in kept if _conflict(kb, h, k)), None)
        if clash is not None:
            dropped.append((h.name, f"conflicts with {clash.name}, ranked higher "
                                    f"(both change {', '.join(sorted(set(h.changes) & set(clash.changes)))})"))
            continue
        seen[key] = h.name
        kept.append(h)
    total = len(kept)
    ranked = [replace(h, rank=i + 1, reason=f"rank {i + 1} of {total}: "
                      + (h.waiting_reason() + "; " if not h.expected_to_help else "") + h.reason)
              for i, h in enumerate(kept)]
    return Ranking(ranked, dropped, spread)


def predicted_effect(finding: Any) -> tuple[float, float] | None:
    """(effect, sd) a diagnosis finding predicts for the techniques answering it (its
    evidence's `predicted_effect` and `predicted_sd`, relative NE), or None."""
    evidence = getattr(finding, "evidence", None) or {}
    effect, sd = evidence.get("predicted_effect"), evidence.get("predicted_sd")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (effect, sd)):
        return None
    return (float(effect), float(sd)) if sd > 0 else None


def _conflict(kb: Any, a: Hypothesis, b: Hypothesis) -> bool:
    """Declared conflicts between techniques (opposite moves of one knob); an LLM suggestion
    conflicts with anything that sets one of its knobs to another value. Techniques that
    merely share a knob (a learning-rate change and a batch-size change with rate scaling)
    are alternatives worth testing one by one."""
    if a.technique and b.technique:
        return bool(kb.conflicts(a.technique, b.technique))
    shared = set(a.changes) & set(b.changes)
    return any(a.changes[k] != b.changes[k] for k in shared)


def _score(name: str, source: str, sources: tuple[str, ...], changes: dict[str, Any], mean: float, sd: float,
           cost_factor: float, baseline_cost: float, noise: float, notes: list[str], technique: str | None) -> Hypothesis:
    ei = expected_improvement(mean, sd)
    p = _Phi((-noise - mean) / sd)
    cost_factor = max(cost_factor, MIN_COST_FACTOR)
    head = (f"expected {_pct(mean)} NE (sd {sd * 100:.2f}%), P(beats the noise of {noise * 100:.2f}%) {p:.2f}, "
            f"expected gain {ei * 100:.3f}% at cost x{cost_factor:.2f}")
    return Hypothesis(
        name=name, source=source, sources=sources, changes=changes, expected_effect=mean, effect_sd=sd, p_success=p,
        expected_improvement=ei, cost_factor=cost_factor, expected_cost=cost_factor * baseline_cost,
        score=ei / cost_factor, reason=head + ". " + "; ".join(notes), technique=technique,
    )
