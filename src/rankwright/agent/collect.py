"""Collect: settle one ended run, or find a hung one, whatever its files hold.

Each experiment is collected on its own and nothing a run left behind (no result, no
objective, NaN, infinity, garbage, a vanished supervisor) raises out of here: a bad run
becomes a triaged failure, and the runbook says whether it is tried again (a new attempt
of the same experiment, its cost charged) or ends, and how. The evidence and the remedy go
into the event log and onto the experiment's row, where `status` and the report show them.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rankwright.agent.budget import BudgetPolicy, Ledger, can_reserve
from rankwright.agent.naming import work_dir
from rankwright.agent.runbook import Runbook
from rankwright.agent.triage import Diagnosis, Evidence, RoleKnob, Treatment, classify, treat
from rankwright.executors import Executor, RunInfo, RunStatus
from rankwright.redact import redact
from rankwright.store import Store
from rankwright.store.records import ExperimentRecord, ExperimentStatus
from rankwright.targets import Target, value_at

HANG_FLOOR_S = 30.0  # a learnt hang limit is never shorter than this
HANG_EPOCHS = 3.0  # stale for this many of the run's longest epoch: hung
LOG_TAIL_LINES = 60


def attempt_key(key: str, attempt: int) -> str:
    """The executor's key of one attempt: the first is the experiment's own key, so stores
    from before retries existed find their runs unchanged."""
    return key if attempt <= 1 else f"{key}#attempt{attempt}"


def memory_limit_mb() -> float | None:
    """This host's memory limit for the runs: the cgroup's if it sets one, else the RAM."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text) / 2**20
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None


def roles_of(target: Target, config: Mapping[str, Any]) -> dict[str, RoleKnob]:
    """The knobs a remedy may reach, with their current values in `config`."""
    out = {}
    for role, path in target.role_paths().items():
        node = value_at(config, path)
        knob = target.knob(path)
        if knob.kind in ("int", "float") and (node is None or (isinstance(node, (int, float))
                                                               and not isinstance(node, bool))):
            out[role] = RoleKnob(path, None if node is None else float(node), knob.low, knob.high, knob.kind == "int")
    return out


def hang_limit_s(target: Target, run_dir: Path) -> float:
    """Stale for longer than this, a live run is hung: learnt from the run's own epoch
    times once it has some, never above the target's `heartbeat_max_age_s`."""
    ceiling = target.metrics.heartbeat_max_age_s
    stamps = [r["time"] for r in target.read_epochs(run_dir) if isinstance(r.get("time"), (int, float))]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    if not gaps:
        return ceiling
    return min(ceiling, max(HANG_FLOOR_S, HANG_EPOCHS * max(gaps)))


def is_hung(target: Target, run_dir: Path, info: RunInfo, now: float | None = None) -> str | None:
    """Evidence that a live run is hung (its heartbeat or metrics went stale), or None. Only
    what this attempt wrote counts: a resumed run starts with its predecessor's files."""
    now = time.time() if now is None else now
    started = info.started_at.timestamp() if info.started_at else None
    limit = hang_limit_s(target, run_dir)
    if started is None or now - started <= limit:
        return None
    age = target.heartbeat_age(run_dir, now)
    if age is not None and now - age >= started and age > limit:
        return f"no heartbeat for {age:.0f} s (limit {limit:.0f} s) while the process is alive"
    stamps = [t for r in target.read_epochs(run_dir) if isinstance(t := r.get("time"), (int, float)) and t >= started]
    if len(stamps) >= 2 and now - stamps[-1] > limit:
        return f"no new epoch for {now - stamps[-1]:.0f} s (limit {limit:.0f} s, learnt from its epoch times)"
    return None


TIMEOUT_FACTOR = 10.0  # a run taking this many times its predicted time has run away
TIMEOUT_SEEN_FACTOR = 3.0  # ... or this many times the longest run this campaign has seen finish
TIMEOUT_FLOOR_S = 600.0


def timed_out(info: RunInfo, predicted_hours: float, threads: float, limit_s: float | None,
              now: float | None = None, longest_seen_s: float = 0.0) -> str | None:
    """Evidence that a live run went past its time limit, or None. The limit is the spec's,
    else the largest of 10x its predicted wall time, 3x the longest wall time of a run of
    this campaign that finished, and 10 minutes: a prior can be far off (a codebase whose
    data pipeline starts a cluster, a machine shared with other work), what was seen is not."""
    if info.started_at is None:
        return None
    elapsed = (time.time() if now is None else now) - info.started_at.timestamp()
    limit = limit_s if limit_s is not None else max(TIMEOUT_FLOOR_S, TIMEOUT_SEEN_FACTOR * longest_seen_s,
                                                    TIMEOUT_FACTOR * predicted_hours * 3600.0 / max(threads, 1.0))
    if elapsed > limit:
        return f"running for {elapsed:.0f} s, past its limit of {limit:.0f} s"
    return None


@dataclass(frozen=True)
class Collected:
    key: str
    status: ExperimentStatus | None  # None: tried again (a new attempt is queued)
    message: str  # one line for the event log and the console
    cost: float
    ok: bool  # False when the attempt failed (what the failure breaker counts)
    attention: str | None = None  # for a person: why this run was kept for one, with the log's last lines


def _cost(info: RunInfo, threads: float, gpus: int = 0) -> tuple[float, str]:
    """The ledger's hours of an attempt: GPU-hours (the GPUs it was given, for as long as it
    ran) when it had GPUs, else CPU hours. A run whose supervisor vanished recorded no
    usage: charge its threads for the time it was seen alive (an estimate, said so)."""
    if gpus > 0:
        end = info.ended_at or info.last_heartbeat
        if info.started_at is not None and end is not None:
            return gpus * max(0.0, (end - info.started_at).total_seconds()) / 3600.0, ""
        return 0.0, " (no start or end recorded; nothing charged)"
    if info.cpu_seconds is not None:
        return info.cpu_seconds / 3600.0, ""
    if info.started_at is not None and info.last_heartbeat is not None:
        alive = max(0.0, (info.last_heartbeat - info.started_at).total_seconds())
        return threads * alive / 3600.0, f" (usage not recorded; charged {threads:g} threads x {alive:.0f} s alive)"
    return 0.0, ""


def _read(target: Target, run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(result, problem): a usable result, or why there is none."""
    try:
        result = target.read_result(run_dir)
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, the run is triaged, the wake goes on
        return None, str(exc).replace(str(run_dir) + ": ", "")
    if result is None:
        return None, f"no result in {target.metrics.result_file or target.metrics.file}"
    return result, None


def collect_ended(store: Store, executor: Executor, target: Target, root: Path, runbook: Runbook,
                  e: ExperimentRecord, handle: str, info: RunInfo, *, campaign_id: int, phase: str,
                  policy: BudgetPolicy, may_retry: bool, threads: float, gpus: int = 0,
                  llm_remedy: Any = None) -> Collected:
    key = e.idempotency_key
    run_dir = work_dir(root, key)
    cost, estimated = _cost(info, threads, gpus)
    pending = (e.failure or {}).get("pending")
    if info.status is RunStatus.CANCELLED and not pending:  # pruned or stopped: not a failure
        store.mark_finished(e.id, ExperimentStatus.CANCELLED, cost, None)
        return Collected(key, ExperimentStatus.CANCELLED, f"{key}: cancelled{estimated}", cost, True)
    result, problem = _read(target, run_dir) if info.status is RunStatus.SUCCEEDED else (None, None)
    try:
        tail = redact(executor.logs(handle, LOG_TAIL_LINES))  # the excerpt is stored and shown
    except Exception:  # noqa: BLE001 - a missing log is no reason to stop collecting
        tail = ""
    objective = result["objective"] if result else None
    evidence = Evidence(
        exit_code=info.exit_code if info.status is not RunStatus.SUCCEEDED else 0,
        cancelled_for=pending, cancel_evidence=(e.failure or {}).get("evidence", ""), log_tail=tail,
        result_problem=problem, objective=objective,
        valid_ne=target.result_number(result, target.metrics.valid_ne) if result else None,
        valid_auc=target.result_number(result, target.metrics.valid_auc) if result else None,
        train_losses=tuple(target.read_losses(run_dir)),
        max_rss_mb=info.max_rss_mb, memory_limit_mb=memory_limit_mb(), lost=info.status is RunStatus.LOST)
    diagnosis = classify(evidence, runbook)
    if result is not None and info.started_at is not None and info.ended_at is not None:
        result = {**result, "wall_s": max(0.0, (info.ended_at - info.started_at).total_seconds())}  # for time limits
    if diagnosis is None and result is not None:
        store.mark_finished(e.id, ExperimentStatus.SUCCEEDED, cost, result)
        return Collected(key, ExperimentStatus.SUCCEEDED, f"{key}: succeeded, objective {objective:.5g}"
                         + (f" (attempt {e.attempt})" if e.attempt > 1 else "") + estimated, cost, True)
    if diagnosis is None:  # an unusable result the classifier did not name
        diagnosis = Diagnosis("bad_result", problem or "no usable result", evidence.log_tail[-2000:])
    treatment = treat(diagnosis, e.attempt, runbook, roles_of(target, e.config))
    if treatment.action == "keep":  # flagged: the result stands, when there is one to keep
        if result is not None and objective is not None and math.isfinite(objective):
            record = {"kind": diagnosis.kind, "evidence": diagnosis.evidence, "kept": True,
                      "history": [*(e.failure or {}).get("history", ())]}
            store.mark_finished(e.id, ExperimentStatus.SUCCEEDED, cost, result, failure=record)
            return Collected(key, ExperimentStatus.SUCCEEDED,
                             f"{key}: succeeded, objective {objective:.5g}, flagged {diagnosis.kind}{estimated}", cost,
                             True, f"{key} is flagged {diagnosis.kind}: {diagnosis.evidence}. Its result stands; look "
                             "at the model's calibration (BatchNorm statistics, a logit offset, a too-short recipe).")
        treatment = Treatment("give_up", f"{diagnosis.kind}: flagged, but the run left no result to keep",
                              ends_as="quarantined")
    if diagnosis.kind == "unknown" and llm_remedy is not None and treatment.action != "give_up":
        suggested, note = llm_remedy(diagnosis, e.config)  # debugging from first principles, checked
        treatment = suggested or Treatment(treatment.action, f"{treatment.why} (LLM gave no usable remedy: {note})",
                                           treatment.changes, treatment.ends_as, treatment.backoff_s)
    if treatment.action != "give_up" and not may_retry:
        treatment = Treatment("give_up", f"{diagnosis.kind}: not retried (the campaign may not submit now)",
                              ends_as="failed")
    if treatment.action != "give_up":
        spent, reserved = store.ledger_sums(campaign_id)  # this run is still open: its prior and reservation
        others = Ledger(spent - (e.prior_cost or 0.0), reserved - e.reserved_cost)
        spent_so_far = (e.prior_cost or 0.0) + cost
        ok, why = can_reserve(policy, Ledger(others.spent + spent_so_far, others.reserved), e.reserved_cost)
        if not ok:
            treatment = Treatment("give_up", f"{diagnosis.kind}: not retried, {why}", ends_as="failed")
    history = [*(e.failure or {}).get("history", ()),
               {"attempt": e.attempt, "kind": diagnosis.kind, "evidence": diagnosis.evidence,
                "remedy": treatment.action, "why": treatment.why, "cost": cost}]
    changes = {**(e.failure or {}).get("changes", {}), **treatment.changes}
    record = {"kind": diagnosis.kind, "evidence": diagnosis.evidence, "excerpt": diagnosis.excerpt,
              "history": history, "changes": changes}
    message = f"{key}: {diagnosis.kind} on attempt {e.attempt} ({diagnosis.evidence}); {treatment.why}{estimated}"
    if treatment.action == "give_up":
        record["ended_as"] = treatment.ends_as
        store.mark_finished(e.id, ExperimentStatus.FAILED, cost, None, failure=record)
        attention = None
        if treatment.ends_as == "quarantined":
            tail = " | ".join(diagnosis.excerpt.strip().splitlines()[-3:])
            attention = (f"{key} needs a person: {diagnosis.kind} ({diagnosis.evidence}); the runbook has no remedy "
                         f"left. Log: {tail or '(empty)'}")
        return Collected(key, ExperimentStatus.FAILED, message, cost, False, attention)
    record.update(action=treatment.action, backoff_s=treatment.backoff_s)
    store.retry(e.id, e.attempt + 1, cost, record, config=_with_changes(e.config, treatment.changes))
    return Collected(key, None, message, cost, False)


def _with_changes(config: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with knob values set at their dotted paths (what the retry will run)."""
    import copy

    out = copy.deepcopy(dict(config))
    for path, value in changes.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def prepare_attempt(run_dir: Path, attempt: int, action: str | None) -> None:
    """Before an attempt from scratch starts, the last attempt's folder is kept aside under
    its number (its logs and files stay as evidence); a resumed attempt keeps it in place,
    checkpoint included. Safe to call again after a kill."""
    if attempt <= 1 or action != "retry" or not run_dir.exists():
        return
    kept = run_dir.with_name(f"{run_dir.name}.attempt{attempt - 1}")
    if kept.exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # a kill between the move and the submit left a fresh one
    else:
        run_dir.rename(kept)
