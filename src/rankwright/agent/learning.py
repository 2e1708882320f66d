"""The campaign side of the hypothesis engine: the context a campaign runs in, the ranked
hypotheses it plans from, and the `learn` step of `wake` that turns finished comparisons
into insights for every later campaign."""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from rankwright.agent.spec import CampaignSpec
from rankwright.hypotheses.engine import Ranking, rank_hypotheses
from rankwright.hypotheses.insights import (
    Context, Insight, comparison_insight, load_all, noise_threshold,
)
from rankwright.hypotheses.knowledge import knob_values, load_knowledge_base
from rankwright.targets import Target


def model_family(spec: CampaignSpec, target: Target) -> str:
    return target.model_family()


def campaign_context(spec: CampaignSpec, target: Target, baseline: Sequence[float] = (),
                     embedding_parameters: float | None = None, fidelity: float | None = None) -> Context:
    """Where this campaign's comparisons are made. What cannot be known yet (the baseline NE
    before the baseline ran) is left out of similarity rather than guessed."""
    rows, fields, mean_cardinality = target.data_shape(embedding_parameters)
    data = target.base_config.get("data") or {}
    return Context(model_family=model_family(spec, target), rows=rows, fields=fields,
                   mean_cardinality=mean_cardinality, baseline_ne=statistics.mean(baseline) if baseline else None,
                   fidelity=fidelity if fidelity is not None else (
                       float(data.get("train_fraction", 1.0) or 1.0) if isinstance(data, dict) else 1.0),
                   task=str((data.get("synthetic") or {}).get("structure", data.get("source", ""))
                            if isinstance(data, dict) else ""),
                   data_id=target.data_identity())


def rank_for_campaign(spec: CampaignSpec, target: Target, store: Any, *, baseline: Sequence[float] = (),
                      findings: Sequence[Any] = (), llm_suggestions: Sequence[Any] = (),
                      embedding_parameters: float | None = None, baseline_cost: float = 1.0) -> Ranking:
    kb = load_knowledge_base()
    paths = {k.path for k in target.knobs} - target.inert_knobs()  # a change of an inert knob repeats the baseline
    # "beats the noise" as the learn step will judge it: the plan's seeds per hypothesis
    noise = noise_threshold(baseline, spec.hypotheses.seeds) if len(baseline) >= 2 else 0.002
    # a foreign codebase's knobs seen under the built-in names of their roles, so that every
    # technique whose knobs it has applies; the changes come back in its own knob paths
    alias = {b: t for b, t in target.builtin_aliases().items() if t in paths}
    current = knob_values(target.base_config, paths)
    current.update({k.path: k.default for k in target.knobs  # what the codebase uses when its config is silent
                    if k.path in paths and k.path not in current and k.default is not None})
    current.update({b: current[t] for b, t in alias.items() if t in current})

    def validate(changes: dict[str, Any]) -> dict[str, Any]:
        return target.validate_changes({alias.get(k, k): v for k, v in changes.items()})

    return rank_hypotheses(
        kb=kb, model_family=model_family(spec, target), knob_paths=paths | set(alias),
        current=current, validate=validate,
        context=campaign_context(spec, target, baseline, embedding_parameters), insights=dedupe(load_all(store)),
        findings=findings, llm_suggestions=llm_suggestions, noise=noise, baseline_cost=baseline_cost,
    )


def _approver(store: Any, campaign_id: int) -> str:
    """Who approved the campaign's plan: the author of what it learns."""
    plan_id = store.latest_plan_id(campaign_id)
    approval = store.approval_of(plan_id) if plan_id is not None else None
    return str(approval["approved_by"]) if approval else ""


def learn(store: Any, spec: CampaignSpec, target: Target, state: Any) -> list[str]:
    """Record an insight for every finished comparison in the store that has none yet: a
    hypothesis arm whose every planned seed ended, against the baseline at the same
    fidelity (paired on their shared seeds). Derived from the store on every wake that
    reads the state, so an agent killed between collecting a run and learning from it
    loses nothing. An insight is named by campaign, arm and seed count: one measured
    again with more seeds (a borderline hypothesis) is a new insight, and the ranking
    keeps the one with the most seeds. Returns the techniques learned now."""
    from rankwright.agent.naming import BASELINE, fidelity_share, is_low

    sign = 1.0 if spec.objective.direction == "minimize" else -1.0
    fresh: list[Insight] = []
    contexts: dict[bool, Context] = {}
    learned = store.insight_uids(spec.name)  # a long campaign pays one column query, not its history
    for arm in state.arms():
        first = state.first_entry(arm)
        technique = first.get("technique") or (first["hypothesis"] if first.get("source") == "spec" else None)
        if not technique or not state.complete(arm):
            continue
        values = state.values(arm)
        unmeasurable = _unmeasurable(state, arm) if not values else None
        uid = hashlib.sha256(f"{spec.name}/{arm}/{unmeasurable or len(values)}".encode()).hexdigest()[:24]
        if uid in learned:
            continue
        low = is_low(arm)
        if unmeasurable:  # it diverged after the runbook's remedy, or could not run: a result too
            fresh.append(replace(Insight(technique=technique, changes=dict(first["delta"]), context=campaign_context(
                spec, target, fidelity=fidelity_share(dict(state.low)) if low else 1.0), effect=0.0, effect_se=0.0,
                seeds=len(state.seeds(arm)), noise=0.0, cost_factor=1.0, campaign=spec.name, outcome=unmeasurable),
                uid=uid))
            continue
        base_arm = BASELINE + ("@low" if low else "")
        base = state.values(base_arm)
        # paired on the seeds both arms measured: a lost seed on either side costs that pair only
        values = {s: v for s, v in values.items() if s in base}
        if not values or len(base) < 2 or not state.complete(base_arm):
            continue
        if low not in contexts:
            rows = [state.runs[f"{spec.name}/{base_arm}/seed{s}"] for s in sorted(base)]
            emb = _embedding_parameters(store, state, base_arm)
            contexts[low] = campaign_context(spec, target, [abs(sign * r.objective) for r in rows], emb,
                                             fidelity=fidelity_share(dict(state.low)) if low else 1.0)
        cost = _mean_cost(state, arm) / max(_mean_cost(state, base_arm), 1e-9)
        insight = comparison_insight(technique, first["delta"], contexts[low], values, base, cost, spec.name)
        fresh.append(replace(insight, uid=uid))
    if not fresh:
        return []
    campaign_id = store.campaign(spec.name).id

    def explain(new_rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        events = []
        for r in new_rows[:50]:  # a flood (a late baseline seed) is summarised
            i = Insight.from_json(r)
            if not i.measured:
                events.append((campaign_id, "learn", f"{i.technique}: {i.outcome} (every seed failed that way; "
                                                     "not proposed again in this context)"))
                continue
            word = "helped" if i.helped else ("no gain worth having" if i.conclusive_failure else "inconclusive")
            events.append((campaign_id, "learn", f"{i.technique}: {i.effect * 100:+.2f}% {spec.objective.metric} "
                                                 f"(se {i.effect_se * 100:.2f}%, {i.seeds} seeds, fidelity "
                                                 f"{i.context.fidelity:g}) -> {word}"))
        if len(new_rows) > 50:
            events.append((campaign_id, "learn", f"... and {len(new_rows) - 50} more insights"))
        return events

    author = _approver(store, campaign_id)
    new = set(store.add_insights([{**i.to_json(), "author": author} for i in fresh], explain=explain))
    return [i.technique for i in fresh if i.uid in new]


def _unmeasurable(state: Any, arm: str) -> str | None:
    """'unstable' or 'invalid' when every seed of an ended arm failed that way, else None."""
    ends = {state.runs[k].ended_as for s in state.seeds(arm) if (k := f"{state.name}/{arm}/seed{s}") in state.runs}
    for outcome in ("unstable", "invalid"):
        if ends and ends <= {outcome, "unstable", "invalid"} and outcome in ends:
            return outcome
    return None


def _mean_cost(state: Any, arm: str) -> float:
    costs = [r.actual for s in state.seeds(arm) if (r := state.runs.get(f"{state.name}/{arm}/seed{s}")) and r.actual]
    return statistics.mean(costs) if costs else 1e-9


def _embedding_parameters(store: Any, state: Any, arm: str) -> float | None:
    rows = store.experiments_by_keys(store.campaign(state.name).id, [f"{state.name}/{arm}/seed1"])
    metrics = (rows[0].metrics or {}).get("metrics") if rows else None
    return (metrics or {}).get("embedding_parameters")


def dedupe(insights: Sequence[Insight]) -> list[Insight]:
    """One insight per campaign comparison: the one measured with the most seeds."""
    best: dict[tuple[str, str, str], Insight] = {}
    for i in insights:
        key = (i.campaign, i.technique, json.dumps(i.changes, sort_keys=True, default=str)
               + str(i.context.fidelity))
        if key not in best or i.seeds > best[key].seeds:
            best[key] = i
    return list(best.values())


def research(spec: CampaignSpec, target: Target, store: Any, root: Path, *, use_llm: bool = True,
             diagnose_key: str | None = None) -> tuple[Ranking, list[str]]:
    """Everything the research agent knows now, ranked: the knowledge base, the insights in
    the store, the diagnosis of the finished baseline (if it has run) and the LLM (if one is
    configured). `diagnose_key` names the run to diagnose (default: the baseline's first
    seed). Returns the ranking and notes on what was (not) used and why."""
    from rankwright.agent.naming import experiment_key, work_dir
    from rankwright.hypotheses.diagnosis import budget_of_config, diagnose_budget, diagnose_run
    from rankwright.hypotheses.llm import llm_config_from_env, suggest

    notes: list[str] = []
    campaign = store.campaign(spec.name)
    # the validation baseline: at low fidelity when the approved plan validates there
    seeds = range(1, spec.baseline_seeds + 1)
    arms = {arm: [experiment_key(spec.name, arm, s) for s in seeds] for arm in ("baseline@low", "baseline")}
    finished = {} if campaign is None else {
        e.idempotency_key: e for e in store.experiments_by_keys(campaign.id, [k for ks in arms.values() for k in ks])
        if e.status.value == "succeeded" and e.metrics}
    base_keys = next((ks for ks in arms.values() if any(k in finished for k in ks)), arms["baseline"])
    base_rows = [finished[k] for k in base_keys if k in finished]
    baseline = [abs(float(e.metrics["objective"])) for e in base_rows]
    findings: list[Any] = []
    embedding = None
    if base_rows:
        diagnosed = diagnose_key or base_rows[0].idempotency_key
        findings = diagnose_run(work_dir(root, diagnosed), config_file=target.config_file,
                                epochs_path=target.role_paths().get("epochs"))
        embedding = (base_rows[0].metrics.get("metrics") or {}).get("embedding_parameters")
        notes.append(f"diagnosis of {diagnosed}: "
                     + ("; ".join(f"{f.signal} ({f.strength:.2f})" for f in findings) or "nothing notable"))
    else:
        # before any run, the training budget alone may say it: a one-epoch baseline has no curve
        epochs_path = target.role_paths().get("epochs")
        budget = budget_of_config(target.base_config, epochs_path=epochs_path,
                                  epochs_default=target.knob(epochs_path).default if epochs_path else None)
        findings = diagnose_budget(budget)
        notes.append("no finished baseline yet: ranked without a diagnosis of its runs (it comes once the baseline "
                     "has run)" + "".join(f"; from the training budget alone: {f.signal} ({f.strength:.2f})"
                                          for f in findings))
    suggestions: list[Any] = []
    config = llm_config_from_env() if use_llm else None
    if config is None:
        notes.append("LLM: off (set RANKWRIGHT_LLM_PROVIDER and RANKWRIGHT_LLM_MODEL to use one)")
    else:
        insights = [i.to_json() for i in load_all(store)][-50:]
        outcome = suggest(
            config, baseline={"config": target.base_config, "objective": spec.objective.metric,
                              "values": baseline, "model": model_family(spec, target)},
            knobs=[k.model_dump(mode="json") for k in target.knobs],
            diagnosis=[{"signal": f.signal, "strength": f.strength, "reason": f.reason} for f in findings],
            insights=insights, validate=target.validate_changes)
        suggestions = list(outcome.suggestions)
        if outcome.fallback_reason:
            notes.append(f"LLM ({config.provider} {config.model}): fell back to the offline source: "
                         f"{outcome.fallback_reason}")
        else:
            notes.append(f"LLM ({config.provider} {config.model}): {len(suggestions)} suggestions, "
                         f"{len(outcome.rejected)} rejected")
        for name, why in outcome.rejected:
            notes.append(f"LLM suggestion {name!r} rejected: {why}")
    ranking = rank_for_campaign(spec, target, store, baseline=baseline, findings=findings,
                                llm_suggestions=suggestions, embedding_parameters=embedding)
    return ranking, notes


class ResearchAgent:
    """The built-in hypothesis source: knowledge base, insights, diagnosis and (when asked
    for and configured) the LLM, through `research`."""

    def __init__(self, use_llm: bool = False) -> None:
        self.use_llm = use_llm

    def rank(self, spec: CampaignSpec, target: Target, store: Any, root: Path, *,
             diagnose_key: str | None = None) -> tuple[Ranking, list[str]]:
        return research(spec, target, store, root, use_llm=self.use_llm, diagnose_key=diagnose_key)


def record_ranking(store: Any, campaign_id: int, ranking: Ranking) -> None:
    store.replace_hypotheses(campaign_id, [
        {"name": h.name, "source": h.source, "changes": h.changes, "expected_effect": h.expected_effect,
         "probability": h.p_success, "expected_cost": h.expected_cost, "reason": h.reason}
        for h in ranking.hypotheses])
    top = ", ".join(h.name for h in ranking.hypotheses[:5])
    store.append_event(campaign_id, "hypotheses", f"ranked {len(ranking.hypotheses)} hypotheses "
                       f"({len(ranking.dropped)} dropped); top: {top}")
