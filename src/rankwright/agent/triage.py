"""Triage: what went wrong with a run, and what the runbook lets the agent do about it.

Pure functions over evidence the wake gathered (exit code or signal, log tail, result,
training-loss stream, heartbeat, peak memory); no I/O, so every rule is tested on its own
and a wake taken again after a kill decides the same thing.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass, field
from typing import Any, Mapping

from rankwright.agent.runbook import Runbook

DIVERGENCE_FACTOR = 3.0  # a training loss this many times its first epoch's has exploded
OOM_RSS_SHARE = 0.9  # a SIGKILL near the memory limit is the host's out-of-memory killer
EXCERPT_LINES = 20
COLLAPSE_NE = 1.0  # valid NE at or above this (no better than predicting the base rate) ...
COLLAPSE_AUC = 0.6  # ... while it ranks this well: the probabilities collapsed, not the model
_TERMINATING = {signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT}


@dataclass(frozen=True)
class Evidence:
    exit_code: int | None = None  # negative: killed by that signal (also read from 128+N)
    cancelled_for: str | None = None  # the agent cancelled it: "hang", "timeout" (else not a failure)
    cancel_evidence: str = ""
    log_tail: str = ""
    result_problem: str | None = None  # the run exited 0 but its result is unusable: why
    objective: float | None = None
    valid_ne: float | None = None  # from the result, where the target reports them (the collapse check)
    valid_auc: float | None = None
    train_losses: tuple[float, ...] = ()
    max_rss_mb: float | None = None
    memory_limit_mb: float | None = None
    lost: bool = False  # the run's supervisor vanished without recording how it ended


@dataclass(frozen=True)
class Diagnosis:
    kind: str
    evidence: str  # the one line that decided it
    excerpt: str = ""  # the log's last lines, for a person


@dataclass(frozen=True)
class RoleKnob:
    """A knob a remedy reaches by its role, with the schema's bounds (remedies stay inside)."""

    path: str
    value: float | None  # None: unset (a remedy may set it, not scale it)
    low: float | None = None
    high: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class Treatment:
    action: str  # resume | retry | give_up | keep (the result stands; a person is told)
    why: str
    changes: Mapping[str, Any] = field(default_factory=dict)  # knob path -> value, for a retry
    ends_as: str | None = None  # give_up: failed | unstable | quarantined | invalid
    backoff_s: float = 0.0


def _signal(code: int | None) -> signal.Signals | None:
    if code is None:
        return None
    number = -code if code < 0 else code - 128 if 128 < code < 160 else None
    try:
        return None if number is None else signal.Signals(number)
    except ValueError:
        return None


def _excerpt(log: str) -> str:
    return "\n".join(log.rstrip().splitlines()[-EXCERPT_LINES:])


def _diverged(losses: tuple[float, ...]) -> str | None:
    if not losses:
        return None
    if any(not math.isfinite(v) for v in losses):
        return f"training loss became {next(v for v in losses if not math.isfinite(v))}"
    first = losses[0]
    worst = max(losses[1:], default=first)
    if first > 0 and worst >= DIVERGENCE_FACTOR * first:
        return f"training loss rose from {first:.4g} to {worst:.4g} ({worst / first:.1f}x its first epoch)"
    return None


def _collapsed(ev: Evidence) -> str | None:
    ne, auc = ev.valid_ne, ev.valid_auc
    if ne is None or auc is None or not (math.isfinite(ne) and math.isfinite(auc)):
        return None
    if ne < COLLAPSE_NE or auc < COLLAPSE_AUC:
        return None
    train = f"; final training loss {ev.train_losses[-1]:.4g}" if ev.train_losses else ""
    return (f"ranks at valid AUC {auc:.4f} but predicts worse than the base rate (valid NE {ne:.4f} >= "
            f"{COLLAPSE_NE:g}){train}")


def classify(ev: Evidence, runbook: Runbook) -> Diagnosis | None:
    """The failure kind of an ended run, or None when nothing is wrong with it."""
    excerpt = _excerpt(ev.log_tail)
    if ev.cancelled_for is not None:
        return Diagnosis(ev.cancelled_for, ev.cancel_evidence or f"cancelled by the agent ({ev.cancelled_for})",
                         excerpt)
    if ev.objective is not None and not math.isfinite(ev.objective):
        return Diagnosis("nan_loss", f"the objective is {ev.objective}", excerpt)
    diverged = _diverged(ev.train_losses)
    if ev.exit_code == 0 and not ev.lost:
        if diverged:
            return Diagnosis("nan_loss" if "became" in diverged else "divergence", diverged, excerpt)
        if ev.result_problem:
            return Diagnosis("bad_result", ev.result_problem, excerpt)
        collapsed = _collapsed(ev)
        return None if collapsed is None else Diagnosis("collapsed", collapsed, excerpt)
    if ev.lost:
        return Diagnosis("preempted", "the run's supervisor vanished without recording an end (lost node)", excerpt)
    sig = _signal(ev.exit_code)
    if sig in _TERMINATING:
        limit, rss = ev.memory_limit_mb, ev.max_rss_mb
        if sig is signal.SIGKILL and limit and rss and rss >= OOM_RSS_SHARE * limit:
            return Diagnosis("oom", f"killed by SIGKILL at {rss:.0f} MB of a {limit:.0f} MB limit "
                             "(the out-of-memory killer)", excerpt)
        return Diagnosis("preempted", f"terminated by {sig.name} from outside the run", excerpt)
    for kind, pattern in runbook.pattern_kinds():
        lines = [line for line in ev.log_tail.splitlines() if pattern.search(line)]
        if lines:
            return Diagnosis(kind, f"log: {lines[-1].strip()[:200]}", excerpt)
    if diverged:
        return Diagnosis("nan_loss" if "became" in diverged else "divergence", diverged, excerpt)
    how = f"signal {sig.name}" if sig else f"exit code {ev.exit_code}"
    return Diagnosis("unknown", f"{how}; no known failure in the log", excerpt)


def _remedied(roles: Mapping[str, RoleKnob], scale: Mapping[str, float],
              values: Mapping[str, float]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    said = []
    for role, target in [*((r, None) for r in scale), *((r, v) for r, v in values.items())]:
        knob = roles.get(role)
        if knob is None or (target is None and knob.value is None):
            continue
        new = knob.value * scale[role] if target is None else float(target)
        if knob.low is not None:
            new = max(new, knob.low)
        if knob.high is not None:
            new = min(new, knob.high)
        new = max(1, round(new)) if knob.integer else new
        if new != knob.value:
            out[knob.path] = new
            said.append(f"{knob.path} {'unset' if knob.value is None else f'{knob.value:g}'} -> {new:g}")
    return out, said


def treat(diagnosis: Diagnosis, attempt: int, runbook: Runbook, roles: Mapping[str, RoleKnob]) -> Treatment:
    """What to do after `attempt` (1 = the first try) failed as `diagnosis` says.

    A retry that would change knobs the target does not have, or that the schema's bounds
    leave unchanged, is still a plain retry: trying again is the only remedy left then."""
    kind = runbook.kinds.get(diagnosis.kind) or runbook.kinds["unknown"]
    remedy = kind.remedy
    if remedy.action == "invalid":
        return Treatment("give_up", f"{diagnosis.kind}: not retried ({kind.describe})", ends_as="invalid")
    if remedy.action == "flag":
        return Treatment("keep", f"{diagnosis.kind}: the result stands, a person is told ({kind.describe})")
    if remedy.action == "quarantine":
        return Treatment("give_up", f"{diagnosis.kind}: kept for a person ({kind.describe})", ends_as="quarantined")
    if attempt >= kind.max_attempts:
        return Treatment("give_up", f"{diagnosis.kind} again on attempt {attempt} of {kind.max_attempts}",
                         ends_as=kind.on_exhausted)
    changes, said = _remedied(roles, remedy.scale, remedy.set)
    if remedy.action == "resume":
        return Treatment("resume", f"{diagnosis.kind}: resume from the last checkpoint (attempt {attempt + 1} of "
                         f"{kind.max_attempts})", backoff_s=remedy.backoff_s)
    what = "; ".join(said) if said else "unchanged"
    return Treatment("retry", f"{diagnosis.kind}: retry from scratch, {what} (attempt {attempt + 1} of "
                     f"{kind.max_attempts})", changes=changes, backoff_s=remedy.backoff_s)


def breaker_trips(outcomes: list[bool], window: int, failures: int) -> bool:
    """True when at least `failures` of the last `window` outcomes (newest first; True =
    the attempt failed) failed: the infrastructure is likely down."""
    recent = outcomes[:window]
    return len(recent) >= failures and sum(recent) >= failures
