"""Observe: read the store (and the run files a decision needs) into a `CampaignState`.

This is the only place where a decision's inputs are gathered with I/O: the experiment
rows, the plan and its revisions, the ranking re-computed with this campaign's insights
and the diagnosis of its best run so far, and the per-epoch curves of exploitation trials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rankwright.agent.naming import base_name, split_key, work_dir
from rankwright.agent.ports import DescribedTarget, HypothesisSource
from rankwright.agent.spec import CampaignSpec, SearchRange, low_fidelity, search_space
from rankwright.agent.state import CampaignState, Candidate, Run
from rankwright.targets import Target


def planned_experiments(plan: Mapping[str, Any], revisions: list[Any]) -> list[dict[str, Any]]:
    return [*plan["experiments"], *(e for r in revisions for e in r.body.get("experiments", ()))]


def _runs(store: Any, campaign: str, campaign_id: int, sign: float, records: Any = None) -> dict[str, Run]:
    out = {}
    for e in store.experiments(campaign_id) if records is None else records:
        arm_seed = split_key(campaign, e.idempotency_key)
        if arm_seed is None:
            continue
        objective = None if not e.metrics else sign * float(e.metrics["objective"])
        out[e.idempotency_key] = Run(e.idempotency_key, arm_seed[0], arm_seed[1], e.status, objective,
                                     e.reserved_cost, e.actual_cost, (e.failure or {}).get("ended_as"))
    return out


def allowed_knobs(spec: CampaignSpec, target: Target, low: Mapping[str, Any] | None = None) -> frozenset[str]:
    """Every knob the agent may set without asking: those of the allowed techniques, the
    spec's changes, the low fidelity, the exploitation space, and the seed."""
    from rankwright.agent.learning import model_family
    from rankwright.hypotheses.knowledge import load_knowledge_base

    paths = {k.path for k in target.knobs}
    seed = target.role_paths().get("seed")
    knobs = {*([seed] if seed else []), *(low_fidelity(spec, target) if low is None else low),
             *search_space(spec, target)}
    for change in spec.changes:
        knobs |= set(change.set)
    alias = target.builtin_aliases()  # a foreign codebase's knob of the same role as a built-in one
    for technique in load_knowledge_base().for_model(model_family(spec, target)):
        if spec.strategy.techniques is None or technique.id in spec.strategy.techniques:
            knobs |= {alias.get(p, p) for p in technique.knob_paths} & paths
    return frozenset(knobs)


def approved_space(plan: Mapping[str, Any], spec: CampaignSpec, target: Target) -> dict[str, SearchRange]:
    """The exploitation space the engineer approved with the plan (older plans, and a plan
    that did not show one: as the spec and target say now), so a later default never moves
    a campaign approved under an earlier one."""
    shown = (plan.get("strategy") or {}).get("search_space")
    if not shown:
        return search_space(spec, target)
    return {knob: SearchRange.model_validate(r) for knob, r in shown.items()}


def observe(store: Any, spec: CampaignSpec, target: DescribedTarget, root: Path, campaign_id: int,
            plan: Mapping[str, Any], *, rank: bool = True, source: HypothesisSource | None = None) -> CampaignState:
    """The campaign as a decision sees it. `rank=False` skips the research step (what the
    learn step and the pruner need does not include a fresh ranking); `source` ranks the
    hypotheses (default: the offline research agent; the LLM is asked only at plan time, so
    that the same store always decides the same thing)."""
    from rankwright.hypotheses.knowledge import knob_values

    revisions = store.revisions(campaign_id)
    planned = planned_experiments(plan, revisions)
    sign = 1.0 if spec.objective.direction == "minimize" else -1.0
    runs = _runs(store, spec.name, campaign_id, sign)
    space = approved_space(plan, spec, target)
    curves = {}
    exploiting = bool(revisions) and revisions[-1].phase == "exploitation"  # before it, no curve is read
    for p in planned:
        key = f"{spec.name}/{p['name']}/seed{p['seed']}"
        # in exploitation, what the tuner is told: every seed-1 full-fidelity run, with its curve
        told = exploiting and p["seed"] == 1 and p.get("fidelity", "full") == "full"
        if (told or p["phase"] == "exploitation" and p.get("params")) and key in runs:
            curves[key] = tuple(sign * v for v in target.read_curve(work_dir(root, key)))
    # the fidelity the engineer approved with the plan (older plans: as the spec and target say)
    approved = (plan.get("strategy") or {}).get("low_fidelity")
    low = low_fidelity(spec, target) if approved is None else dict(approved)
    state = CampaignState(
        name=spec.name, strategy=spec.strategy, low=low, space=space,
        allowed_knobs=allowed_knobs(spec, target, low), plannable=spec.budget.amount * spec.budget.pause_threshold,
        round_size=spec.hypotheses.top_k, validation_seeds=spec.hypotheses.seeds,
        max_parallel=spec.max_parallel,
        planned=tuple(planned), revisions=tuple(revisions), runs=runs, curves=curves,
        base_values=knob_values(target.base_config, set(space)),
        first_round=frozenset(f"{spec.name}/{p['name']}/seed{p['seed']}" for p in plan["experiments"]),
    )
    state = _with_conflicts(state, target, spec)
    return with_ranking(state, store, spec, target, root, source) if rank else state


def observe_arms(store: Any, spec: CampaignSpec, target: DescribedTarget, campaign_id: int, plan_id: int,
                 arms: set[str]) -> CampaignState:
    """These arms and the baselines as the learn step needs them, after a run of them ended:
    their planned entries from the store's index and their experiments, however long the
    campaign. Only what `learn` reads is filled in (no exploitation space, no ranking, no
    revisions): decisions always observe the whole campaign."""
    from rankwright.agent.naming import BASELINE, LOW

    entries = store.planned_of_arms(campaign_id, sorted({*arms, BASELINE, BASELINE + LOW}))
    records = store.experiments_by_keys(campaign_id, [f"{spec.name}/{p['name']}/seed{p['seed']}" for p in entries])
    sign = 1.0 if spec.objective.direction == "minimize" else -1.0
    approved = (store.plan_strategy(plan_id) or {}).get("low_fidelity")
    return CampaignState(
        name=spec.name, strategy=spec.strategy, low=low_fidelity(spec, target) if approved is None else dict(approved),
        space={}, allowed_knobs=frozenset(), plannable=spec.budget.amount * spec.budget.pause_threshold,
        round_size=spec.hypotheses.top_k, validation_seeds=spec.hypotheses.seeds, max_parallel=spec.max_parallel,
        planned=tuple(entries), revisions=(), runs=_runs(store, spec.name, campaign_id, sign, records))


def with_ranking(state: CampaignState, store: Any, spec: CampaignSpec, target: Target, root: Path,
                 source: HypothesisSource | None = None) -> CampaignState:
    """The state with the ranking re-computed, when a validation round may be chosen from it
    (or, tuner first, the tuner's expert trials)."""
    from rankwright.agent.phases._base import tuner_first
    from rankwright.agent.phases.exploitation import EXPERT_TRIALS, trial_arms

    # tuner first, the ranking seeds the first `EXPERT_TRIALS` trials, whichever phase the wake
    # that asks them starts in (a combination step may come between); once asked it is not read
    wanted = state.phase == "validation" or (tuner_first(state) and len(trial_arms(state)) < EXPERT_TRIALS)
    if not spec.hypotheses.top_k or not wanted or not state.all_ended:
        return state
    return _with_candidates(state, store, spec, target, root, source)


def best_validation_run(state: CampaignState) -> str | None:
    """Key of seed 1 of the validation arm with the best mean objective so far."""
    best = None
    for arm in state.arms("validation"):
        values = state.values(arm)
        if values and 1 in values and (best is None or sum(values.values()) / len(values) < best[0]):
            best = (sum(values.values()) / len(values), arm)
    return None if best is None else f"{state.name}/{best[1]}/seed1"


def _with_candidates(state: CampaignState, store: Any, spec: CampaignSpec, target: Target, root: Path,
                     source: HypothesisSource | None) -> CampaignState:
    from dataclasses import replace

    from rankwright.agent.learning import ResearchAgent

    source = source or ResearchAgent(use_llm=False)
    ranking, _ = source.rank(spec, target, store, root, diagnose_key=best_validation_run(state))
    allowed = spec.strategy.techniques
    candidates = tuple(
        Candidate(h.name, dict(h.changes), h.technique, h.source, h.expected_effect, h.p_success, h.cost_factor,
                  h.reason)
        for h in ranking.hypotheses if allowed is None or h.technique is None or h.technique in allowed)
    return replace(state, candidates=candidates)


def _with_conflicts(state: CampaignState, target: Target, spec: CampaignSpec) -> CampaignState:
    from dataclasses import replace

    from rankwright.hypotheses.knowledge import load_knowledge_base

    kb = load_knowledge_base()
    techniques = {base_name(p["name"]): p.get("technique") for p in state.planned if p.get("technique")}
    pairs = set()
    names = sorted(techniques)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if kb.conflicts(techniques[a], techniques[b]):
                pairs.add(frozenset((a, b)))
    return replace(state, conflicts=frozenset(pairs))

