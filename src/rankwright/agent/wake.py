"""`wake`: one idempotent, level-triggered step of a campaign.

It reads the whole state from the store and moves it one step: reconcile every unfinished
experiment with the executor, collect finished runs (metrics, cost settled), check the
budget, decide what is missing from the approved plan, submit it intent-first. Killing the
agent anywhere and waking again gives the same result: an intent without a handle is
resolved by asking the executor for its key, and a key is never submitted twice.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from rankwright.agent.budget import BudgetAction, BudgetPolicy, LedgerEntry, can_reserve, check_thresholds, ledger
from rankwright.agent.spec import CampaignSpec
from rankwright.executors import Executor, ExecutorFull, RunSpec, RunStatus
from rankwright.store import Store
from rankwright.store.records import ExperimentStatus
from rankwright.targets import Target

SEED_KNOB = "train.seed"
_TERMINAL = {RunStatus.SUCCEEDED: ExperimentStatus.SUCCEEDED, RunStatus.FAILED: ExperimentStatus.FAILED,
             RunStatus.CANCELLED: ExperimentStatus.CANCELLED, RunStatus.LOST: ExperimentStatus.FAILED}


@dataclass
class WakeReport:
    collected: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    state: str = ""
    reasons: list[str] = field(default_factory=list)


def _crash_point(name: str) -> None:
    """Fault injection for the chaos test: `RANKWRIGHT_CRASH_AT=after_submit` kills this
    process at that point, the way a power cut would (no cleanup, no atexit)."""
    if os.environ.get("RANKWRIGHT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


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


def experiment_key(campaign: str, name: str, seed: int) -> str:
    return f"{campaign}/{name}/seed{seed}"


def work_dir(root: Path, key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", key)[:80]
    return (root / "experiments" / f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}").resolve()


def wake(store: Store, executor: Executor, spec: CampaignSpec, target: Target, root: Path,
         on_exit: tuple[str, ...] | None = None) -> WakeReport:
    report = WakeReport()
    campaign = store.campaign(spec.name)
    latest = None if campaign is None else store.latest_plan(campaign.id)
    if campaign is None or latest is None or store.approval_of(latest[0]) is None:
        report.state = "waiting for approval"
        return report
    plan_id, plan, _ = latest
    planned_by_key = {experiment_key(spec.name, p["name"], p["seed"]): p for p in plan["experiments"]}

    def render(key: str) -> tuple[tuple[str, ...], dict]:
        planned = planned_by_key[key]
        changes = dict(planned["changes"])
        if any(k.path == SEED_KNOB for k in target.knobs):  # repeats differ only by their seed
            changes.setdefault(SEED_KNOB, planned["seed"])
        command, config = target.render(changes, work_dir(root, key))
        return tuple(command), config

    def send(key: str) -> str | None:
        """Submit one planned experiment (idempotent per key); None when the executor is full."""
        command, config = render(key)
        target.write_config(work_dir(root, key), config)
        try:
            return executor.submit(key, RunSpec(command=command, run_dir=work_dir(root, key), on_exit=on_exit))
        except ExecutorFull:
            return None

    # 1-2. reconcile and collect (only what is unfinished: a long history costs nothing here)
    for e in store.unfinished(campaign.id):
        handle = e.executor_handle or executor.find(e.idempotency_key)
        if handle is None:
            continue  # an intent the executor never saw: submitted below
        if e.executor_handle is None:
            store.mark_submitted(e.id, handle)
        info = executor.status(handle)
        if info.status is RunStatus.PENDING and e.idempotency_key in planned_by_key:
            send(e.idempotency_key)  # claimed but never launched (its submitter died): launch it
            continue
        if not info.status.is_terminal:
            continue
        result = target.read_result(work_dir(root, e.idempotency_key)) if info.status is RunStatus.SUCCEEDED else None
        status = _TERMINAL[info.status] if info.status is not RunStatus.SUCCEEDED or result else ExperimentStatus.FAILED
        cost = (info.cpu_seconds or 0.0) / 3600.0
        store.mark_finished(e.id, status, cost, result)
        store.append_event(campaign.id, "collect", f"{e.idempotency_key}: {status.value}"
                           + (f", objective {result['objective']:.5g}" if result else ""), cost=cost)
        report.collected.append(e.idempotency_key)

    # 3. learn: finished comparisons become insights (only when something finished)
    if report.collected:
        from rankwright.agent.learning import learn

        learn(store, spec, target, plan, campaign.id, lambda name, seed: experiment_key(spec.name, name, seed),
              report.collected)

    # 4. budget
    existing = store.key_states(campaign.id)
    policy = BudgetPolicy(spec.budget.amount, spec.budget.pause_threshold, spec.budget.hard_cap)
    current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost) for e in existing.values())
    action, why = check_thresholds(policy, current)
    if action is BudgetAction.HALT:
        cancel_in_flight(store, executor, campaign.id)
        store.set_campaign_status(campaign.id, "halted")
    elif action is BudgetAction.PAUSE and campaign.status == "approved":
        store.set_campaign_status(campaign.id, "paused")
    if action is not BudgetAction.CONTINUE:
        store.append_event(campaign.id, "budget", why)
        report.state, report.reasons = ("halted" if action is BudgetAction.HALT else "paused"), [why]
        return report
    state = store.campaign(spec.name).status
    if state not in ("approved", "running"):
        report.state = state
        return report

    # 5-6. decide what the plan still misses, submit intent-first
    for planned in plan["experiments"]:
        key = experiment_key(spec.name, planned["name"], planned["seed"])
        known = existing.get(key)
        if known is not None and (known.status is not ExperimentStatus.INTENT or known.executor_handle):
            continue
        ok, why = can_reserve(policy, current, planned["predicted_hours"])
        if not ok and known is None:
            report.reasons.append(why)
            store.append_event(campaign.id, "budget", f"not submitting {key}: {why}")
            break
        if known is None:  # the ledger in hand stays exact without re-reading every row
            current = replace(current, reserved=current.reserved + planned["predicted_hours"])
        row = known or store.record_intent(campaign.id, key, render(key)[1], phase=planned["phase"],
                                           seed=planned["seed"], reserved_cost=planned["predicted_hours"])
        _crash_point("after_intent")
        handle = send(key)
        if handle is None:
            break
        _crash_point("after_submit")
        store.mark_submitted(row.id, handle)
        store.append_event(campaign.id, "submit", f"{key}: submitted as {handle}", plan_id=plan_id)
        report.submitted.append(key)

    planned_keys = {experiment_key(spec.name, p["name"], p["seed"]) for p in plan["experiments"]}
    done = {key for key, e in store.key_states(campaign.id).items() if e.status.is_terminal}
    if planned_keys <= done:
        store.set_campaign_status(campaign.id, "finished")
        report.state = "finished"
    else:
        report.state = "running"
    return report


def wake_command(spec_path: Path) -> tuple[str, ...]:
    """What a run's wrapper calls when the run ends (detached mode): a wake in the campaign's
    working folder, where its store and allowed paths are (the run itself works elsewhere)."""
    return (sys.executable, "-m", "rankwright", "wake", str(Path(spec_path).resolve()),
            "--workdir", str(Path.cwd().resolve()))
