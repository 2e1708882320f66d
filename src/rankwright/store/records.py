"""Frozen records: what leaves the store. Rows never do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any


def experiment_key(campaign: str, arm: str, seed: int) -> str:
    """The idempotency key of one run of an arm: the store indexes planned runs by it."""
    return f"{campaign}/{arm}/seed{seed}"


class ExperimentStatus(str, Enum):
    INTENT = "intent"  # row written, not yet known to the executor
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    spec: dict[str, Any]
    status: str
    created_at: datetime


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    campaign_id: int
    idempotency_key: str
    config: dict[str, Any]
    fidelity: float
    seed: int
    phase: str
    status: ExperimentStatus
    executor_handle: str | None
    reserved_cost: float
    actual_cost: float | None
    metrics: dict[str, Any] | None
    attempt: int = 1
    prior_cost: float = 0.0  # measured cost of the attempts before the current one
    failure: dict[str, Any] | None = None  # the triage record: kind, evidence, remedies, how it ended


@dataclass(frozen=True)
class EventRecord:
    id: int
    campaign_id: int
    time: datetime
    kind: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ExperimentState:
    """An experiment's bookkeeping without its config and metrics (cheap to load by the 10,000)."""

    id: int
    status: ExperimentStatus
    executor_handle: str | None
    reserved_cost: float
    actual_cost: float | None
    attempt: int = 1
    prior_cost: float = 0.0


@dataclass(frozen=True)
class InsightRecord:
    uid: str
    technique: str
    changes: dict[str, Any]
    context: dict[str, Any]
    effect: float
    effect_se: float
    seeds: int
    noise: float
    cost_factor: float
    campaign: str
    created_at: datetime
    outcome: str = "measured"
    author: str = ""


@dataclass(frozen=True)
class RevisionRecord:
    number: int
    phase: str
    reason: str
    body: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds a lease, since and until when (seconds since the epoch), and its hand-over
    count (`token`)."""

    name: str
    owner: str
    token: int
    acquired_at: float
    expires_at: float


@dataclass(frozen=True)
class ExecutorRunRecord:
    """A cluster run as the store holds it (see `models.ExecutorRun`); times in seconds
    since the epoch, `outputs` the run's small files by name."""

    handle: str
    key: str
    engine: str
    spec: dict[str, Any]
    inputs: dict[str, Any]
    job_id: str | None
    claimed_at: float
    started_at: float | None
    host: str | None
    heartbeat_at: float | None
    ended_at: float | None
    exit_code: int | None
    cpu_seconds: float | None
    max_rss_mb: float | None
    cancelled: bool
    cancel_requested: bool
    outputs: dict[str, Any]
    log_tail: str
