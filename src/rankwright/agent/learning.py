"""The campaign side of the hypothesis engine: the context a campaign runs in, the ranked
hypotheses it plans from, and the `learn` step of `wake` that turns finished comparisons
into insights for every later campaign."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

from rankwright.agent.spec import CampaignSpec
from rankwright.hypotheses.engine import Ranking, rank_hypotheses
from rankwright.hypotheses.insights import (
    Context, Insight, comparison_insight, data_identity, load_all, noise_threshold,
)
from rankwright.hypotheses.knowledge import knob_values, load_knowledge_base
from rankwright.targets import Target


def model_family(spec: CampaignSpec, target: Target) -> str:
    if spec.target == "builtin":
        return spec.model
    model = (target.base_config.get("model") or {}) if isinstance(target.base_config, dict) else {}
    return str(model.get("name") or target.name) if isinstance(model, dict) else target.name


def campaign_context(spec: CampaignSpec, target: Target, baseline: Sequence[float] = (),
                     embedding_parameters: float | None = None) -> Context:
    """Where this campaign's comparisons are made. What cannot be known yet (the baseline NE
    before the baseline ran) is left out of similarity rather than guessed."""
    features = target.cost_features(target.base_config)
    fields, mean_cardinality = 0, None
    from rankwright.targets.builtin import BuiltinTarget, field_names

    if isinstance(target, BuiltinTarget):
        categorical, numeric = field_names(target.run_config(target.base_config).data, Path("."))
        fields = len(categorical) + len(numeric)
        dim = (target.base_config.get("model") or {}).get("embedding_dim") or 1
        if embedding_parameters and categorical:
            mean_cardinality = embedding_parameters / dim / len(categorical)
    data = target.base_config.get("data") or {}
    return Context(model_family=model_family(spec, target), rows=features.rows, fields=fields,
                   mean_cardinality=mean_cardinality, baseline_ne=statistics.mean(baseline) if baseline else None,
                   fidelity=float(data.get("train_fraction", 1.0) or 1.0) if isinstance(data, dict) else 1.0,
                   task=str((data.get("synthetic") or {}).get("structure", data.get("source", ""))
                            if isinstance(data, dict) else ""),
                   data_id=data_identity(data))


def rank_for_campaign(spec: CampaignSpec, target: Target, store: Any, *, baseline: Sequence[float] = (),
                      findings: Sequence[Any] = (), llm_suggestions: Sequence[Any] = (),
                      embedding_parameters: float | None = None, baseline_cost: float = 1.0) -> Ranking:
    kb = load_knowledge_base()
    paths = {k.path for k in target.knobs}
    # "beats the noise" as the learn step will judge it: the plan's seeds per hypothesis
    noise = noise_threshold(baseline, spec.hypotheses.seeds) if len(baseline) >= 2 else 0.002
    return rank_hypotheses(
        kb=kb, model_family=model_family(spec, target), knob_paths=paths,
        current=knob_values(target.base_config, paths), validate=target.validate_changes,
        context=campaign_context(spec, target, baseline, embedding_parameters), insights=load_all(store),
        findings=findings, llm_suggestions=llm_suggestions, noise=noise, baseline_cost=baseline_cost,
    )


def learn(store: Any, spec: CampaignSpec, target: Target, plan: dict[str, Any], campaign_id: int,
          key_of: Any, collected: Sequence[str]) -> list[str]:
    """Record an insight for every comparison that the runs `collected` in this wake may
    have completed: all seeds of a planned change and of the baseline succeeded. Only those
    comparisons are read, so a campaign with thousands of finished experiments pays for
    what changed. Insights are keyed by technique, changes, context and campaign, so a
    comparison is learned once. Returns the techniques learned now."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    name_of: dict[str, str] = {}
    for p in plan["experiments"]:
        by_name.setdefault(p["name"], []).append(p)
        name_of[key_of(p["name"], p["seed"])] = p["name"]
    touched = {name_of[k] for k in collected if k in name_of}
    if "baseline" not in by_name or not touched:
        return []
    names = [n for n in by_name if n != "baseline" and ("baseline" in touched or n in touched)]
    keys = [key_of(n, p["seed"]) for n in ["baseline", *names] for p in by_name[n]]
    done = {e.idempotency_key: e for e in store.experiments_by_keys(campaign_id, keys)
            if e.status.value == "succeeded" and e.metrics}
    sign = 1.0 if spec.objective.direction == "minimize" else -1.0

    def objectives(name: str) -> dict[int, float] | None:
        """Seed -> objective (as minimised), once every seed of `name` succeeded."""
        keys = {p["seed"]: key_of(name, p["seed"]) for p in by_name[name]}
        if not all(k in done for k in keys.values()):
            return None
        return {seed: sign * float(done[k].metrics["objective"]) for seed, k in keys.items()}

    base_by_seed = objectives("baseline")
    if not base_by_seed:
        return []
    base = list(base_by_seed.values())
    base_rows = [done[key_of("baseline", p["seed"])] for p in by_name["baseline"]]
    emb = (base_rows[0].metrics.get("metrics") or {}).get("embedding_parameters")
    context = campaign_context(spec, target, [abs(b) for b in base], emb)
    base_cost = statistics.mean(max(e.actual_cost or 0.0, 1e-9) for e in base_rows)
    fresh: list[Insight] = []
    for name in names:
        values = objectives(name)
        if values is None:
            continue
        rows = [done[key_of(name, p["seed"])] for p in by_name[name]]
        fresh.append(comparison_insight(
            by_name[name][0].get("technique") or name, by_name[name][0]["changes"], context, values, base_by_seed,
            statistics.mean(max(e.actual_cost or 0.0, 1e-9) for e in rows) / base_cost, spec.name))

    def explain(new_rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        events = [(campaign_id, "learn", f"{r['technique']}: {r['effect'] * 100:+.2f}% {spec.objective.metric} "
                                        f"(se {r['effect_se'] * 100:.2f}%, noise {r['noise'] * 100:.2f}%) -> "
                                        f"{'helped' if r['effect'] < -r['noise'] else 'did not help'}")
                  for r in new_rows[:50]]  # a flood (a late baseline seed) is summarised
        if len(new_rows) > 50:
            events.append((campaign_id, "learn", f"... and {len(new_rows) - 50} more insights"))
        return events

    new = set(store.add_insights([i.to_json() for i in fresh], explain=explain))
    learned = [i for i in fresh if i.uid in new]
    return [i.technique for i in learned]


def research(spec: CampaignSpec, target: Target, store: Any, root: Path, *, use_llm: bool = True
             ) -> tuple[Ranking, list[str]]:
    """Everything the research agent knows now, ranked: the knowledge base, the insights in
    the store, the diagnosis of the finished baseline (if it has run) and the LLM (if one is
    configured). Returns the ranking and notes on what was (not) used and why."""
    from rankwright.agent.wake import experiment_key, work_dir
    from rankwright.hypotheses.diagnosis import diagnose_run
    from rankwright.hypotheses.llm import llm_config_from_env, suggest

    notes: list[str] = []
    campaign = store.campaign(spec.name)
    base_keys = [experiment_key(spec.name, "baseline", s) for s in range(1, spec.baseline_seeds + 1)]
    finished = {} if campaign is None else {
        e.idempotency_key: e for e in store.experiments_by_keys(campaign.id, base_keys)
        if e.status.value == "succeeded" and e.metrics}
    base_rows = [finished[k] for k in base_keys if k in finished]
    baseline = [abs(float(e.metrics["objective"])) for e in base_rows]
    findings: list[Any] = []
    embedding = None
    if base_rows:
        findings = diagnose_run(work_dir(root, base_rows[0].idempotency_key))
        embedding = (base_rows[0].metrics.get("metrics") or {}).get("embedding_parameters")
        notes.append(f"diagnosis of {base_rows[0].idempotency_key}: "
                     + ("; ".join(f"{f.signal} ({f.strength:.2f})" for f in findings) or "nothing notable"))
    else:
        notes.append("no finished baseline yet: ranked without a diagnosis (it comes once the baseline has run)")
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


def record_ranking(store: Any, campaign_id: int, ranking: Ranking) -> None:
    store.replace_hypotheses(campaign_id, [
        {"name": h.name, "source": h.source, "changes": h.changes, "expected_effect": h.expected_effect,
         "probability": h.p_success, "expected_cost": h.expected_cost, "reason": h.reason}
        for h in ranking.hypotheses])
    top = ", ".join(h.name for h in ranking.hypotheses[:5])
    store.append_event(campaign_id, "hypotheses", f"ranked {len(ranking.hypotheses)} hypotheses "
                       f"({len(ranking.dropped)} dropped); top: {top}")
