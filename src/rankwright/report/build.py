"""The proposal of a campaign, built from its store and run files (the agent never imports
this): the confirmed winner against the baseline on the test split, the evidence for every
hypothesis tried, the cost against the estimate, and the decisions with their reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rankwright.agent.naming import BASELINE, base_name, is_low, work_dir
from rankwright.agent.observe import observe
from rankwright.agent.phases.combination import best_combination, fidelity_check, low_vs_full
from rankwright.agent.phases.exploitation import trial_arms
from rankwright.agent.phases.validation import judgements
from rankwright.agent.state import PHASES, CampaignState
from rankwright.analysis import Verdict, mean_ci, paired_test, spearman
from rankwright.report.proposal import (
    Curve, HypothesisEvidence, MetricComparison, PhaseCost, Proposal, Revision, SpendPoint, config_diff,
)
from rankwright.store.records import ExperimentStatus

TEST_METRICS = (("ne", True), ("auc", False), ("logloss", True), ("calibration_error", True))


def run_metric(metrics: dict[str, Any] | None, split: str, name: str) -> float | None:
    """One number of a run's stored result (`metrics[split][name]`), None wherever any level
    is missing or null (the trainer writes `bayes_test: null` off synthetic data)."""
    value = ((((metrics or {}).get("metrics") or {}).get(split)) or {}).get(name)
    return None if value is None else float(value)


def _bayes_ne(metrics: dict[str, Any] | None) -> float | None:
    """The Bayes-limit test NE a run reported: only synthetic data has one."""
    return run_metric(metrics, "bayes_test", "ne")


def _test_metric(metrics: dict[str, Any] | None, name: str) -> float | None:
    if name == "calibration_error":
        value = run_metric(metrics, "test", "calibration")
        return None if value is None else abs(value - 1.0)
    return run_metric(metrics, "test", name)


def _winner(state: CampaignState) -> str | None:
    for r in reversed(state.revisions):
        if r.body.get("step") == "confirmation":
            return r.body.get("data", {}).get("winner")
    return None


def _evidence(state: CampaignState) -> list[HypothesisEvidence]:
    out = []
    verdicts = judgements(state)
    promoted, sampled = fidelity_check(state)
    for arm in state.arms("validation"):
        name = base_name(arm)
        if name == BASELINE:
            continue
        first = state.first_entry(arm)
        fidelity = ("low (" + ", ".join(f"{k} {v}" for k, v in state.low.items()) + ")") if is_low(arm) else "full"
        j = verdicts.get(name)
        if j is None:
            out.append(HypothesisEvidence(name, first["source"], first["delta"], "validation", fidelity,
                                          len(state.seeds(arm)), None, None, None, None, "failed", False,
                                          "every run of it failed"))
            continue
        low, high = j.result.ci()
        out.append(HypothesisEvidence(name, first["source"], first["delta"], "validation", fidelity, j.result.n,
                                      j.result.effect, low, high, j.p_adjusted_lower, j.verdict.value,
                                      j.verdict is Verdict.HELPED, j.reason))
    base_full = state.values(BASELINE)
    best = best_combination(state)
    for arm in state.arms("combination"):
        if arm == BASELINE or not state.values(arm) or len(base_full) < 2:
            continue
        first = state.first_entry(arm)
        r = paired_test(state.values(arm), base_full)
        low, high = r.ci()
        role = ("promoted, checked at full fidelity" if arm in promoted else
                "rejected, checked at full fidelity" if arm in sampled else "a combination of promoted changes")
        kept = arm == best.arm
        out.append(HypothesisEvidence(arm, first["source"], first["delta"], "combination", "full", r.n, r.effect,
                                      low, high, r.p_lower, "helped" if r.ci()[1] < 0 else "inconclusive", kept,
                                      role + ("; the best combination" if kept else "")))
    base1 = base_full.get(1)
    for arm in trial_arms(state):
        first = state.first_entry(arm)
        run = state.runs.get(f"{state.name}/{arm}/seed1")
        value = state.values(arm).get(1)
        if run is not None and run.status is ExperimentStatus.CANCELLED:
            verdict, why = "pruned", "the median pruner stopped it early; its compute is charged"
        elif value is None:
            verdict, why = "failed", "the run failed"
        else:
            verdict, why = "trial", "one seed, judged only by the confirmation"
        effect = None if value is None or base1 is None else (value - base1) / abs(base1)
        out.append(HypothesisEvidence(arm, "exploitation", first["params"], "exploitation", "full", 1, effect, None,
                                      None, None, verdict, False, why))
    return out


def build_proposal(store: Any, spec: Any, target: Any, root: Path) -> Proposal:
    campaign = store.campaign(spec.name)
    plan_id, plan, _ = store.latest_plan(campaign.id)
    state = observe(store, spec, target, root, campaign.id, plan, rank=False)
    winner = _winner(state)
    experiments = {e.idempotency_key: e for e in store.experiments(campaign.id)}
    metrics: list[MetricComparison] = []
    found, headline, gap, bayes = False, "", None, None
    seeds = []
    if winner is not None:
        seeds = sorted(set(state.values(winner)) & set(state.values(BASELINE)))
        for name, lower in TEST_METRICS:
            pairs = [(_test_metric(experiments[f"{spec.name}/{BASELINE}/seed{s}"].metrics, name),
                      _test_metric(experiments[f"{spec.name}/{winner}/seed{s}"].metrics, name)) for s in seeds]
            pairs = [(b, p) for b, p in pairs if b is not None and p is not None]
            if len(pairs) < 2:
                continue
            diff, low, high = mean_ci([p - b for b, p in pairs])
            metrics.append(MetricComparison(name, lower, sum(b for b, _ in pairs) / len(pairs),
                                            sum(p for _, p in pairs) / len(pairs), diff, low, high, len(pairs)))
        if not metrics:  # a target without test-split metrics: the objective itself, as it was measured
            pairs = [(state.values(BASELINE)[s], state.values(winner)[s]) for s in seeds]
            if len(pairs) >= 2:
                diff, low, high = mean_ci([p - b for b, p in pairs])
                metrics.append(MetricComparison("objective", True, sum(b for b, _ in pairs) / len(pairs),
                                                sum(p for _, p in pairs) / len(pairs), diff, low, high, len(pairs)))
        bayes_values = [_bayes_ne(experiments[f"{spec.name}/{BASELINE}/seed{s}"].metrics) for s in seeds]
        bayes = bayes_values[0] if bayes_values and bayes_values[0] is not None else None
    ne = next((m for m in metrics if m.metric in ("ne", "objective")), None)
    if ne is not None:
        found = ne.ci_high < 0
        if bayes is not None and ne.baseline > bayes:
            gap = (ne.baseline - ne.proposal) / (ne.baseline - bayes)
        rel = ne.diff / ne.baseline
        what = "Test NE" if ne.metric == "ne" else f"{spec.objective.metric} (as minimised; no test metrics)"
        headline = (f"{what} {ne.baseline:.4f} -> {ne.proposal:.4f} ({rel:+.2%}; 95% CI {ne.ci_low / ne.baseline:+.2%} "
                    f"to {ne.ci_high / ne.baseline:+.2%}, paired over {ne.seeds} seeds)"
                    + (f", closing {gap:.0%} of the gap to the Bayes limit {bayes:.4f}." if gap is not None else "."))
        if not found:
            headline = "No change beat the baseline with confidence on the test split. " + headline
    else:
        headline = ("No change beat the baseline: nothing reached the confirmation. "
                    "What was ruled out is listed below.")
    delta = state.first_entry(winner)["delta"] if winner else {}
    proposal_config = target.config_with(delta) if found else dict(target.base_config)
    verdicts = judgements(state)
    pairs = low_vs_full(state)
    rank = ("Spearman", spearman([p[1] for p in pairs], [p[2] for p in pairs]), len(pairs)) if len(pairs) >= 2 \
        else None
    ruled_out = tuple(f"{n}: {j.reason}" for n, j in verdicts.items() if j.verdict in (Verdict.NO_GAIN, Verdict.HURT))
    events = store.events(campaign.id)
    start = events[0].time if events else None
    spend, total = [], 0.0
    for e in events:
        if e.kind == "collect" and e.data.get("cost"):
            total += float(e.data["cost"])
            spend.append(SpendPoint((e.time - start).total_seconds() / 3600.0, e.data.get("phase") or "validation",
                                    total))
    plannable = spec.budget.amount * spec.budget.pause_threshold
    phase_costs = tuple(PhaseCost(p, float(plan.get("phases", {}).get(p, 0.0)),
                                  sum(e.actual_cost or 0.0 for e in experiments.values() if e.phase == p),
                                  spec.strategy.phases.of(p) * plannable) for p in PHASES)
    curves = []
    for label, arm in (("baseline", BASELINE), ("proposal", winner)):
        if arm is None:
            continue
        curve = target.read_curve(work_dir(root, f"{spec.name}/{arm}/seed1"))
        if curve:
            curves.append(Curve(f"{label} seed 1", tuple(range(1, len(curve) + 1)), tuple(curve)))
    notes = [*best_combination(state).notes]
    pruned = sum(1 for h in trial_arms(state)
                 if (r := state.runs.get(f"{spec.name}/{h}/seed1")) and r.status is ExperimentStatus.CANCELLED)
    if pruned:
        notes.append(f"{pruned} exploitation trial(s) were pruned early; their compute is in the spend")
    notes.append(f"the cost estimate was corrected by x{state.correction():.2f} from the measured runs")
    return Proposal(
        campaign=spec.name, objective=spec.objective.metric, unit=spec.budget.unit,
        approved_budget=spec.budget.amount, spent=sum(e.actual_cost or 0.0 for e in experiments.values()),
        found_better=found, headline=headline, baseline_config=dict(target.base_config),
        proposal_config=proposal_config, config_diff=config_diff(target.base_config, proposal_config),
        metrics=tuple(metrics), hypotheses=tuple(_evidence(state)), curves=tuple(curves), spend=tuple(spend),
        phase_costs=phase_costs,
        revisions=tuple(Revision(r.number, r.phase, r.reason, len(r.body.get("experiments", ())))
                        for r in state.revisions),
        correction=f"{spec.strategy.correction.upper()} over the {len(verdicts)} hypotheses judged in validation, "
                   f"alpha {spec.strategy.alpha:g}",
        rank_agreement=rank, bayes_ne=bayes, gap_closed=gap, ruled_out=ruled_out, notes=tuple(notes),
        **({} if spec.target == "builtin" else {"reproduce": reproduce_command(target, delta if found else {})}))


def reproduce_command(target: Any, changes: dict[str, Any]) -> str:
    """The shell line that trains the proposal with a target of the user's own, run in the
    report's folder: a `run/` folder to run in, as the agent's runs do, the proposal as the
    target's config file where its command reads one, its environment, its command."""
    import shlex

    command, _ = target.render(changes, Path("."))
    env = target.render_env(changes, Path("."))
    steps = ["mkdir -p run", "cd run"]
    if any("{config}" in part for part in (*target.launcher, *target.command)):
        steps.append(f"cp ../proposal.yaml {shlex.quote(target.config_file)}" if not target.config_file.endswith(".json")
                     else "python3 -c " + shlex.quote("import json, yaml; json.dump(yaml.safe_load(open("
                                                      f"'../proposal.yaml')), open('{target.config_file}', 'w'))"))
    prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in env.items())
    return " && ".join([*steps, prefix + " ".join(shlex.quote(part) for part in command)])
