"""`wake`: one idempotent, level-triggered step of a campaign.

observe -> decide -> apply, and nothing else:
- observe: reconcile every unfinished experiment with the executor, collect finished runs
  (metrics, cost settled), prune exploitation trials the median pruner rejects, learn an
  insight from every finished comparison that has none, check the budget;
- decide: once every planned run has ended, the pure `decide(state)` picks the next step
  of the current phase (or ends the campaign, or pauses it at a guardrail);
- apply: record the decision as a plan revision (before anything is submitted), then
  submit every planned experiment that has no run yet, intent first.
Killing the agent anywhere and waking again gives the same result: an intent without a
handle is resolved by asking the executor for its key, a key is never submitted twice, and
a revision number is written once, so a decision taken again after a kill is the same one.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rankwright.agent.access import allowed_roots, outside_writes
from rankwright.agent.budget import BudgetAction, BudgetPolicy, Ledger, can_reserve, check_thresholds
from rankwright.agent.collect import attempt_key, collect_ended, is_hung, prepare_attempt, timed_out
from rankwright.agent.runbook import load_runbook
from rankwright.agent.naming import fidelity_share, is_baseline, work_dir
from rankwright.agent.spec import CampaignSpec, gpus_per_run, training_seed
from rankwright.agent.states import CampaignStatus, move, parse_status
from rankwright.executors import Executor, ExecutorFull, RunSpec, RunStatus, thread_env
from rankwright.store import Store
from rankwright.store.records import ExperimentStatus
from rankwright.targets import Target

@dataclass
class WakeReport:
    collected: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    state: str = ""
    reasons: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)  # revisions recorded in this wake, in words
    phase: str = ""


def _crash_point(name: str) -> None:
    """Fault injection for the chaos test: `RANKWRIGHT_CRASH_AT=after_submit` kills this
    process at that point, the way a power cut would (no cleanup, no atexit). A list
    (`after_collect,in_decide`) kills at the first of them reached, which is appended to the
    file `RANKWRIGHT_CRASH_LOG` names (if set) first."""
    if name in os.environ.get("RANKWRIGHT_CRASH_AT", "").split(","):
        log = os.environ.get("RANKWRIGHT_CRASH_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(name + "\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _arm_crash_timer() -> None:
    """Fault injection: `RANKWRIGHT_CRASH_AFTER_S=0.4` kills this process 0.4 s after the
    wake started its work (not its imports), so a chaos test's kills land inside the work."""
    delay = os.environ.get("RANKWRIGHT_CRASH_AFTER_S")
    if delay:
        import threading

        timer = threading.Timer(float(delay), lambda: os.kill(os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()


def cancel_in_flight(store: Store, executor: Executor, campaign_id: int) -> int:
    """Cancel every unfinished run; intents the executor never saw are settled as cancelled
    at no cost (nothing ran). Returns how many experiments were affected."""
    count = 0
    for e in store.experiments(campaign_id):
        if e.status.is_terminal:
            continue
        handle = e.executor_handle or executor.find(e.idempotency_key)
        if handle:
            executor.cancel(handle)  # settled by the next wake's collect
        else:
            store.mark_finished(e.id, ExperimentStatus.CANCELLED, 0.0, None)
        count += 1
    return count


def _llm_remedy(spec: CampaignSpec, target: Target) -> Any:
    """The LLM's remedy for an unknown failure, when one is configured and the spec lets the
    agent use it; None otherwise (the runbook's own remedy applies)."""
    if not spec.hypotheses.use_llm:
        return None
    from rankwright.hypotheses.llm import LLMConfigError, llm_config_from_env

    try:
        config = llm_config_from_env()
    except LLMConfigError:
        return None  # `plan` already reported the broken settings
    if config is None:
        return None

    def remedy(diagnosis: Any, run_config: Any) -> Any:
        from rankwright.agent.llm_triage import llm_treatment
        from rankwright.agent.observe import allowed_knobs

        return llm_treatment(diagnosis, run_config, target, set(allowed_knobs(spec, target)), config)

    return remedy


def _breaker(store: Store, campaign_id: int, runbook: Any) -> str | None:
    """Why the failure-rate breaker trips now, or None: too many of the attempts collected
    since the last approval or resume failed (the infrastructure is likely down)."""
    from rankwright.agent.triage import breaker_trips

    window, failures = runbook.breaker.window, runbook.breaker.failures
    outcomes = []
    for event in store.latest_events(campaign_id, ("collect", "approve", "resume"), window):
        if event.kind != "collect":
            break
        outcomes.append(not event.data.get("ok", True))
    if not breaker_trips(outcomes, window, failures):
        return None
    return (f"{sum(outcomes)} of the last {len(outcomes)} runs failed (breaker: {failures} of {window}); "
            "the infrastructure may be down. Fix it, then `rankwright resume` goes on")


def _set_status(store: Store, campaign: Any, new: CampaignStatus) -> None:
    store.set_campaign_status(campaign.id, move(campaign.status, new, by="agent").value)


def wake(store: Store, executor: Executor, spec: CampaignSpec, target: Target, root: Path,
         on_exit: tuple[str, ...] | None = None) -> WakeReport:
    from rankwright.agent.observe import observe, observe_arms

    _arm_crash_timer()
    report = WakeReport()
    campaign = store.campaign(spec.name)
    plan_id = None if campaign is None else store.latest_plan_id(campaign.id)
    if campaign is None or plan_id is None or store.approval_of(plan_id) is None:
        report.state = "waiting for approval"
        return report
    documents: list[Any] = []

    def plan() -> Any:
        """The approved plan's document, read only when the whole campaign is observed (it
        lists every planned run; an idle or collecting wake reads the index instead)."""
        if not documents:
            documents.append(store.latest_plan(campaign.id)[1])
        return documents[0]

    # the planned entries a wake needs: those of its unfinished runs, then those it submits
    unfinished = store.unfinished(campaign.id)
    by_key = store.planned_entries(campaign.id, [e.idempotency_key for e in unfinished])

    seed_knob = target.role_paths().get("seed")

    def config_changes(key: str, remedy: dict | None = None) -> dict:
        entry = by_key[key]
        changes = dict(entry["changes"])
        if seed_knob:  # repeats differ only by their seed (the target's knob with the seed role)
            changes.setdefault(seed_knob, training_seed(spec, entry["seed"]))
        changes.update(remedy or {})  # a runbook retry's remedied knobs
        return changes

    def render(key: str, remedy: dict | None = None) -> tuple[tuple[str, ...], dict]:
        command, config = target.render(config_changes(key, remedy), work_dir(root, key))
        return tuple(command), config

    def send(key: str, attempt: int = 1, failure: dict | None = None) -> str | None:
        """Submit one attempt of a planned experiment (idempotent per attempt); None when the
        executor is full."""
        failure = failure or {}
        command, config = render(key, failure.get("changes"))
        run_key = attempt_key(key, attempt)
        if attempt > 1 and executor.find(run_key) is None:
            prepare_attempt(work_dir(root, key), attempt, failure.get("action"))
        target.write_config(work_dir(root, key), config)
        try:
            env = {**target.render_env(config_changes(key, failure.get("changes")), work_dir(root, key)), **threads}
            return executor.submit(run_key, RunSpec(command=command, run_dir=work_dir(root, key), on_exit=on_exit,
                                                    env=env, delay_s=float(failure.get("backoff_s") or 0.0),
                                                    gpus=gpus))
        except ExecutorFull:
            return None

    # the runs' share of the cores, and one processed-data cache for all of a campaign's runs
    threads = {**thread_env(spec.max_parallel), "RANKWRIGHT_CACHE_DIR": str(root / "cache")}
    roots = allowed_roots(spec.allowed_paths)
    gpus = gpus_per_run(spec)
    runbook = load_runbook(spec.runbook)
    policy = BudgetPolicy(spec.budget.amount, spec.budget.pause_threshold, spec.budget.hard_cap)
    may_retry = parse_status(campaign.status) in (CampaignStatus.APPROVED, CampaignStatus.PAUSED)  # queued, not sent
    llm_remedy = _llm_remedy(spec, target)

    # observe 1-2. reconcile and collect (only what is unfinished: a long history costs nothing here);
    # each run is collected on its own, and what a bad run left behind becomes a triaged failure
    running = []
    seen: list[float] = []

    def longest_seen() -> float:
        """The longest wall time of a run of this campaign that finished (read once, and only
        when a run is past the prior's time limit: the usual wake reads no history)."""
        if not seen:
            seen.append(max((float((x.metrics or {}).get("wall_s") or 0.0) for x in store.experiments(campaign.id)
                             if x.status is ExperimentStatus.SUCCEEDED), default=0.0))
        return seen[0]

    collected_arms: set[str] = set()
    for e in unfinished:
        key = e.idempotency_key
        handle = e.executor_handle or executor.find(attempt_key(key, e.attempt))
        if handle is None:
            continue  # an intent the executor never saw: submitted below
        if e.executor_handle is None:
            store.mark_submitted(e.id, handle)
        info = executor.status(handle)
        if info.status is not RunStatus.PENDING:
            executor.fetch(handle, work_dir(root, key))  # a cluster run's files, where they are read
        phase = by_key.get(key, {}).get("phase", "")
        if info.status is RunStatus.PENDING and key in by_key:
            send(key, e.attempt, e.failure)  # claimed but never launched (its submitter died): launch it
            continue
        if not info.status.is_terminal:
            found = None
            if not (e.failure or {}).get("pending"):
                found = (("hang", is_hung(target, work_dir(root, key), info))
                         if info.status is RunStatus.RUNNING else ("hang", None))
                if not found[1]:
                    why = timed_out(info, e.reserved_cost, float(threads["OMP_NUM_THREADS"]), spec.run_timeout_s)
                    if why and spec.run_timeout_s is None:  # past the prior's limit: what runs took decides
                        why = timed_out(info, e.reserved_cost, float(threads["OMP_NUM_THREADS"]), None,
                                        longest_seen_s=longest_seen())
                    found = ("timeout", why)
            if found and found[1]:  # the next wake collects it as cancelled for this, and the runbook decides
                kind, why = found
                store.note_failure(e.id, {**(e.failure or {}), "pending": kind, "evidence": why})
                executor.cancel(handle)
                store.append_event(campaign.id, "triage", f"{key}: {'hung' if kind == 'hang' else 'timed out'}, "
                                   f"cancelled: {why}", phase=phase)
            running.append((e, handle))
            continue
        done = collect_ended(store, executor, target, root, runbook, e, handle, info, campaign_id=campaign.id,
                             phase=phase, policy=policy, may_retry=may_retry,
                             threads=float(threads["OMP_NUM_THREADS"]), gpus=gpus, llm_remedy=llm_remedy)
        store.append_event(campaign.id, "collect", done.message, cost=done.cost, phase=phase, ok=done.ok,
                           status=done.status.value if done.status else "retry")
        if done.attention:  # the message to the engineer: an event of its own kind, and said by `run`
            store.append_event(campaign.id, "attention", done.attention, phase=phase)
            report.reasons.append(done.attention)
        report.collected.append(done.message)
        if key in by_key:
            collected_arms.add(by_key[key]["name"])
    _crash_point("after_collect")

    # observe 3. prune exploitation trials that the median pruner rejects
    from rankwright.agent.phases.exploitation import prunable

    trials = [(e, h) for e, h in running if prunable(by_key.get(e.idempotency_key, {}))]
    status = parse_status(store.campaign(spec.name).status)
    observed = None  # the store as this wake's collect left it: read once, used by prune, learn, decide
    if trials and status.may_submit and spec.strategy.prune:
        from rankwright.agent.phases.exploitation import should_prune

        observed = observe(store, spec, target, root, campaign.id, plan(), rank=False)
        for e, handle in trials:
            prune, why = should_prune(observed, by_key[e.idempotency_key]["name"])
            if prune:
                executor.cancel(handle)  # collected as cancelled by the next wake, its compute charged
                store.append_event(campaign.id, "prune", why)

    # observe 4. learn: every finished comparison without an insight (from the store, not from this
    # wake). When everything planned has ended (a decision follows), over the whole campaign; after a
    # run of a hypothesis ended, over its arm and the baseline (a wake killed before learning is made
    # good by that whole-campaign pass, which comes before any decision)
    all_ended = store.all_planned_ended(campaign.id)
    if report.collected or all_ended:
        from rankwright.agent.learning import learn

        if all_ended or observed is not None or any(is_baseline(arm) for arm in collected_arms):
            observed = observed or observe(store, spec, target, root, campaign.id, plan(), rank=False)
            learn(store, spec, target, observed)
        else:
            learn(store, spec, target, observe_arms(store, spec, target, campaign.id, plan_id, collected_arms))

    # observe 5. budget (summed in the store: the ledger is derived, never kept)
    current = Ledger(*store.ledger_sums(campaign.id))
    action, why = check_thresholds(policy, current)
    campaign = store.campaign(spec.name)
    status = parse_status(campaign.status)
    if action is BudgetAction.HALT and not status.is_terminal:
        cancel_in_flight(store, executor, campaign.id)
        _set_status(store, campaign, CampaignStatus.HALTED)
    elif action is BudgetAction.PAUSE and status is CampaignStatus.APPROVED:
        _set_status(store, campaign, CampaignStatus.PAUSED)
    if action is not BudgetAction.CONTINUE and not status.is_terminal:
        store.append_event(campaign.id, "budget", why)
        report.state, report.reasons = ("halted" if action is BudgetAction.HALT else "paused"), [why]
        return report
    tripped = _breaker(store, campaign.id, runbook) if report.collected and status is CampaignStatus.APPROVED else None
    if tripped:
        store.append_event(campaign.id, "guardrail", tripped)
        _set_status(store, campaign, CampaignStatus.PAUSED)
        report.state, report.reasons = "paused", [tripped]
        return report
    if not status.may_submit:
        report.state = status.value
        return report

    # decide: once every planned run has ended, the current phase's policy picks the next step
    if all_ended:
        from rankwright.agent.decide import decide
        from rankwright.agent.observe import with_ranking

        state = with_ranking(observed, store, spec, target, root)  # learned insights count in the ranking
        decision = decide(state)
        _crash_point("in_decide")
        report.phase = decision.phase
        if decision.action == "finish":
            store.append_event(campaign.id, "finish", decision.reason)
            _set_status(store, campaign, CampaignStatus.FINISHED)
            report.state, report.reasons = "finished", [decision.reason]
            return report
        if decision.action == "pause":
            store.append_event(campaign.id, "guardrail", decision.reason)
            _set_status(store, campaign, CampaignStatus.PAUSED)
            report.state, report.reasons = "paused", [decision.reason]
            return report
        if decision.action == "run":
            number = state.next_revision
            body = {"step": decision.step, "experiments": list(decision.experiments), "data": decision.data or {}}
            revision = store.record_revision(
                campaign.id, number, decision.phase, decision.reason, body,
                event=f"revision {number} ({decision.phase}, {decision.step}): {decision.reason}")
            _crash_point("after_revision")
            report.decisions.append(f"revision {revision.number} ({revision.phase}): {revision.reason}")

    # apply: submit what the plan and its revisions still miss (indexed with them), intent first
    for key, entry, known in store.unsubmitted(campaign.id):
        if known is not None and (known.status is not ExperimentStatus.INTENT or known.executor_handle):
            continue  # the index says open, the row says handed over: the row is the truth
        by_key[key] = entry
        ok, why = can_reserve(policy, current, entry["predicted_hours"])
        if not ok and known is None:
            report.reasons.append(why)
            store.append_event(campaign.id, "budget", f"not submitting {key}: {why}")
            if not report.submitted and not any(e.executor_handle for e in store.unfinished(campaign.id)):
                # nothing in flight will free a reservation: waiting would wait for ever
                reason = (f"{key} cannot start within the approved budget ({why}) and nothing is in flight; "
                          "raise budget.amount in the spec and run `rankwright approve` to go on")
                store.append_event(campaign.id, "guardrail", reason)
                _set_status(store, store.campaign(spec.name), CampaignStatus.PAUSED)
                report.state, report.reasons = "paused", [reason]
                return report
            break
        if known is None:  # the ledger in hand stays exact without re-reading every row
            current = replace(current, reserved=current.reserved + entry["predicted_hours"])
        config = render(key)[1]
        row = known or store.record_intent(campaign.id, key, config, phase=entry["phase"],
                                           seed=entry["seed"], reserved_cost=entry["predicted_hours"],
                                           fidelity=fidelity_share(entry["changes"]))
        refused = outside_writes(target, config, roots, work_dir(root, key))
        if refused:  # access control: a run told to write outside the allowed paths never starts
            why = "; ".join(refused)
            store.mark_finished(row.id, ExperimentStatus.FAILED, 0.0, None, failure={
                "kind": "config_error", "ended_as": "invalid", "evidence": why, "history": []})
            store.append_event(campaign.id, "guardrail", f"{key} not submitted: {why}")
            continue
        _crash_point("after_intent")
        attempt = known.attempt if known is not None else 1
        failure = store.experiments_by_keys(campaign.id, [key])[0].failure if attempt > 1 else None
        handle = send(key, attempt, failure)
        if handle is None:
            break
        _crash_point("after_submit")
        store.mark_submitted(row.id, handle)
        store.append_event(campaign.id, "submit", f"{key}: submitted as {handle}", plan_id=plan_id)
        report.submitted.append(key)
    report.state = "running"
    report.phase = report.phase or store.current_phase(campaign.id)
    return report


def wake_command(spec_path: Path) -> tuple[str, ...]:
    """What a run's wrapper calls when the run ends (detached mode): a wake in the campaign's
    working folder, where its store and allowed paths are (the run itself works elsewhere)."""
    return (sys.executable, "-m", "rankwright", "wake", str(Path(spec_path).resolve()),
            "--workdir", str(Path.cwd().resolve()))
