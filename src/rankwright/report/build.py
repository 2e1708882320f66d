"""The proposal of a campaign, built from its store and run files (the agent never imports
this): what ships, decided on validation only (the test split is never read to decide),
the test split as the claim beside it, the evidence for every hypothesis tried, the cost
against the estimate, and the decisions with their reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rankwright.agent.naming import BASELINE, base_name, is_baseline, is_low, work_dir
from rankwright.agent.observe import observe
from rankwright.agent.phases.combination import best_combination, fidelity_check, low_vs_full
from rankwright.agent.phases.exploitation import SELECTION_SEED, trial_arms
from rankwright.agent.phases.validation import judgements
from rankwright.agent.state import PHASES, CampaignState
from rankwright.analysis import Verdict, mean_ci, paired_test, spearman
from rankwright.report.document import claim_of, probability
from rankwright.report.proposal import (
    ArmResult, Curve, Decision, HypothesisEvidence, MetricComparison, PhaseCost, Proposal, Revision, SpendPoint,
    config_diff,
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
            verdict, why = "trial", "one seed; an arm ships only with 2 or more seeds paired with the baseline's"
        effect = None if value is None or base1 is None else (value - base1) / abs(base1)
        out.append(HypothesisEvidence(arm, "exploitation", first["params"], "exploitation", "full", 1, effect, None,
                                      None, None, verdict, False, why))
    return out


def _shown(a: ArmResult) -> str:
    over = f"paired over {a.seeds} seeds" if a.seeds > 1 else "on 1 seed, against the baseline's spread"
    return (f"{a.effect:+.2%} (95% CI {a.ci_low:+.2%} to {a.ci_high:+.2%}, {over}), "
            f"P(better) {probability(a.p_better)}")


def ship_decision(state: CampaignState) -> Decision:
    """What ships, read on validation only: every full-fidelity arm with at least 2 seeds
    paired with the baseline's (low-fidelity arms ran on other data than the full
    baseline), against it on those seeds; an exploitation trial on its fresh seeds only,
    as its confirmation is judged (it was picked as the best of many on `SELECTION_SEED`:
    counting that seed ships the selection's luck: b7bcee7's `wide` weak seed 5 shipped a
    trial 1.1% worse than the baseline on its fresh seed, test NE 1.2% worse). One fresh
    seed is read against the baseline's run on it (`paired_test`). `strategy.ship`
    "expected" ships the best expected gain, if it is a gain; "confirmed" only an arm whose 95% interval is wholly a gain.
    A paused or unfinished campaign decides the same way on what it has measured; one that
    has no such arm (its budget ended before a confirmation) on its one-seed arms, whose
    interval is wider (`_single_seed_arms`)."""
    base = state.values(BASELINE)
    picked = set(trial_arms(state))
    arms = []
    for arm in state.arms():
        if is_baseline(arm) or is_low(arm):
            continue
        values = state.values(arm)
        shared = sorted(set(values) & set(base))
        if len(shared) < 2:
            continue
        if arm in picked:  # the winner's curse: a trial picked as the best of many on that seed
            fresh = {s: values[s] for s in shared if s != SELECTION_SEED}
            r = paired_test(fresh, base)  # one fresh seed: against the baseline's spread, unpaired
        else:
            r = paired_test({s: values[s] for s in shared}, {s: base[s] for s in shared})
        low, high = r.ci()
        # P(the true difference is below zero) under a flat prior is the paired t's p_higher
        arms.append(ArmResult(arm, state.first_entry(arm)["phase"], r.n, r.effect, low, high, r.p_higher))
    if not arms:  # a campaign that ended before any confirmation: its one-seed arms, on the baseline's noise
        arms = _single_seed_arms(state, base)
    arms.sort(key=lambda a: (a.effect, a.arm))
    rule = state.strategy.ship
    eligible = [a for a in arms if a.effect < 0 and (rule == "expected" or a.confirmed)]
    ships = eligible[0] if eligible else None
    best = arms[0] if arms else None
    n = f"{len(arms)} arm{'s' if len(arms) != 1 else ''}"
    if best is None:
        reason = ("No arm has a full-fidelity validation seed paired with the baseline's yet, so the "
                  "baseline stands")
    elif ships is not None and rule == "expected":
        reason = f"{ships.arm} has the best expected validation gain of the {n} measured against the baseline: " \
                 f"{_shown(ships)}"
    elif ships is not None:
        confirmed = sum(1 for a in arms if a.confirmed and a.effect < 0)
        reason = f"{ships.arm} is the best of the {confirmed} arm(s) whose paired 95% validation interval " \
                 f"is wholly a gain (strategy.ship: confirmed): {_shown(ships)}"
    elif best.effect >= 0:
        reason = f"No arm improves on the baseline in expectation: the best of the {n}, {best.arm}, " \
                 f"{_shown(best)}"
    else:
        reason = f"No arm's paired 95% validation interval is wholly a gain (strategy.ship: confirmed); " \
                 f"the best expected gain, {best.arm}, {_shown(best)}, would ship under strategy.ship: expected"
    return Decision(rule, ships.arm if ships else None, tuple(arms), reason)


def _single_seed_arms(state: CampaignState, base: dict[int, float]) -> list[ArmResult]:
    """Full-fidelity arms measured on one seed that the baseline also ran (the tuner's
    trials, when the budget ended before a confirmation), against the baseline on that
    seed, with the baseline's own run spread x sqrt(2) as the noise (no credit for pairing)
    and its degrees of freedom (`paired_test`'s lone-candidate reading); none without 2
    baseline seeds."""
    if len(base) < 2 or not sum(base.values()):
        return []
    out = []
    for arm in state.arms():
        if is_baseline(arm) or is_low(arm):
            continue
        values = state.values(arm)
        shared = sorted(set(values) & set(base))
        if len(shared) != 1:
            continue
        r = paired_test({shared[0]: values[shared[0]]}, base)
        low, high = r.ci()
        out.append(ArmResult(arm, state.first_entry(arm)["phase"], 1, r.effect, low, high, r.p_higher))
    return out


def _comparisons(state: CampaignState, experiments: dict[str, Any], arm: str | None) -> list[MetricComparison]:
    """The test split as the claim: the shipped arm against the baseline over the seeds both
    ran; the baseline alone (proposal = baseline) when it is what ships."""
    base_seeds = sorted(state.values(BASELINE))
    seeds = base_seeds if arm is None else sorted(set(state.values(arm)) & set(base_seeds))
    out = []
    for name, lower in TEST_METRICS:
        def read(a: str, s: int) -> float | None:
            e = experiments.get(f"{state.name}/{a}/seed{s}")
            return None if e is None else _test_metric(e.metrics, name)

        if arm is None:
            values = [v for s in seeds if (v := read(BASELINE, s)) is not None]
            if values:
                mean = sum(values) / len(values)
                out.append(MetricComparison(name, lower, mean, mean, 0.0, 0.0, 0.0, len(values)))
            continue
        pairs = [(b, p) for s in seeds if (b := read(BASELINE, s)) is not None and (p := read(arm, s)) is not None]
        if len(pairs) < 2:
            continue
        diff, low, high = mean_ci([p - b for b, p in pairs])
        out.append(MetricComparison(name, lower, sum(b for b, _ in pairs) / len(pairs),
                                    sum(p for _, p in pairs) / len(pairs), diff, low, high, len(pairs)))
    return out


def _headline(objective: str, decision: Decision, ne: MetricComparison | None, gap: float | None,
              bayes: float | None) -> str:
    """The decision on validation, then the test split as the claim beside it."""
    shipped = decision.shipped
    if shipped is None:
        head = decision.reason + "."
        return head + (f" Baseline test NE {ne.baseline:.4f}, mean over {ne.seeds} seeds." if ne else "")
    head = f"Ships {shipped.arm}: on validation {objective} {_shown(shipped)}."
    if ne is None:
        return head + " No test-split metrics were recorded: the claim rests on validation alone."
    rel = ne.diff / ne.baseline
    claim = (f" Test NE {ne.baseline:.4f} -> {ne.proposal:.4f} ({rel:+.2%}; 95% CI {ne.ci_low / ne.baseline:+.2%} "
             f"to {ne.ci_high / ne.baseline:+.2%}, paired over {ne.seeds} seeds): {claim_of(ne)}")
    if gap is not None:
        claim += f", closing {gap:.0%} of the gap to the Bayes limit {bayes:.4f}"
    return head + claim + "."


def build_proposal(store: Any, spec: Any, target: Any, root: Path) -> Proposal:
    campaign = store.campaign(spec.name)
    plan_id, plan, _ = store.latest_plan(campaign.id)
    state = observe(store, spec, target, root, campaign.id, plan, rank=False)
    decision = ship_decision(state)
    winner = decision.ships
    found = winner is not None
    experiments = {e.idempotency_key: e for e in store.experiments(campaign.id)}
    metrics = _comparisons(state, experiments, winner)
    bayes_values = [_bayes_ne(e.metrics) for s in sorted(state.values(BASELINE))
                    if (e := experiments.get(f"{spec.name}/{BASELINE}/seed{s}")) is not None]
    bayes = next((b for b in bayes_values if b is not None), None)
    ne = next((m for m in metrics if m.metric == "ne"), None)
    gap = None
    if found and ne is not None and bayes is not None and ne.baseline > bayes and ne.outcome == "better":
        gap = (ne.baseline - ne.proposal) / (ne.baseline - bayes)  # claimed only where test confirms the gain
    objective = spec.objective.metric + (" (as minimised)" if spec.objective.direction == "maximize" else "")
    headline = _headline(objective, decision, ne, gap, bayes)
    delta = dict(state.first_entry(winner)["delta"]) if winner else {}
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
    shared = sorted(set(state.values(BASELINE)) & set(state.values(winner))) if winner else \
        sorted(state.values(BASELINE))
    seed = 1 if 1 in shared or not shared else shared[0]
    for label, arm in (("baseline", BASELINE), ("proposal", winner)) if winner else \
            (("baseline", BASELINE),):
        curve = target.read_curve(work_dir(root, f"{spec.name}/{arm}/seed{seed}"))
        if curve:
            suffix = "" if winner else " (the proposal)"
            curves.append(Curve(f"{label} seed {seed}{suffix}", tuple(range(1, len(curve) + 1)), tuple(curve)))
    notes = []
    if campaign.status != "finished":
        notes.append(f"the campaign is {campaign.status}, not finished: the proposal is the best it has measured "
                     "so far, by the same rule")
    if found and len(decision.arms) > 1:
        notes.append(f"{winner} was chosen as the best of {len(decision.arms)} arms on validation, so its "
                     "validation gain is optimistic; the test split, which no decision reads, is the unbiased "
                     "check")
    notes += best_combination(state).notes
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
        decision=decision,
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
