"""Tables. The experiment ledger is also the insights database (DESIGN.md), so experiment
rows keep everything a later comparison needs: configuration, fidelity, seed, phase, costs
and metrics. Events are append-only: they explain every decision the agent took."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the approved strategy, beside the document: a wake reads it without parsing every planned run
    strategy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    estimated_cost: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Approval(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    approved_by: Mapped[str] = mapped_column(String(200))
    budget: Mapped[float] = mapped_column(Float)
    budget_unit: Mapped[str] = mapped_column(String(20))
    via_yes_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Hypothesis(Base):
    __tablename__ = "hypotheses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # history | knowledge | diagnosis | llm
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    expected_effect: Mapped[float | None] = mapped_column(Float, nullable=True)
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


class Revision(Base):
    """One re-plan inside the approved strategy: the experiments it adds and why. Number 0
    is the approved plan itself (in `plans`); revisions count up from 1, once each."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("campaign_id", "number", name="uq_revisions_campaign_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlannedExperiment(Base):
    """One planned run, by key: the approved plan's experiments and each revision's, kept
    beside their documents so that a wake finds what is not yet submitted, and whether
    everything planned has ended, with one indexed query however long the campaign."""

    __tablename__ = "planned_experiments"
    __table_args__ = (UniqueConstraint("campaign_id", "key", name="uq_planned_campaign_key"),
                      Index("ix_planned_campaign_arm", "campaign_id", "arm"),
                      Index("ix_planned_campaign_state", "campaign_id", "state", "position"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    key: Mapped[str] = mapped_column(String(200))
    arm: Mapped[str] = mapped_column(String(200))
    source: Mapped[int] = mapped_column(Integer)  # 0: the approved plan; n: revision n
    position: Mapped[int] = mapped_column(BigInteger)  # plan order: the plan's entries, then each revision's
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    # where its run is, kept with the experiment row in the same transactions: 0 not yet
    # handed to an executor (no row, or an intent), 1 handed over, 2 ended
    state: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_experiments_idempotency_key"),
                      # a wake's reads, without a scan of a long campaign: its unfinished runs, its ledger
                      Index("ix_experiments_campaign_status", "campaign_id", "status"),
                      Index("ix_experiments_ledger", "campaign_id", "actual_cost", "prior_cost", "reserved_cost"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))  # indexed with status, below
    hypothesis_id: Mapped[int | None] = mapped_column(ForeignKey("hypotheses.id"), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    fidelity: Mapped[float] = mapped_column(Float, default=1.0)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    phase: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="intent")
    executor_handle: Mapped[str | None] = mapped_column(String(400), nullable=True)
    reserved_cost: Mapped[float] = mapped_column(Float, default=0.0)
    actual_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # the runbook's retries: which attempt is current, what the earlier ones cost, and why they failed
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    prior_cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Insight(Base):
    """What one finished comparison taught (technique vs its baseline, in a context).

    Insights outlive campaigns (no foreign key to one: they are also imported from other
    teams' stores) and are written once; `uid` makes export and import idempotent.
    """

    __tablename__ = "insights"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    technique: Mapped[str] = mapped_column(String(200), index=True)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    effect: Mapped[float] = mapped_column(Float)  # relative change of the objective, negative = better
    effect_se: Mapped[float] = mapped_column(Float)
    seeds: Mapped[int] = mapped_column(Integer)
    noise: Mapped[float] = mapped_column(Float)
    cost_factor: Mapped[float] = mapped_column(Float)
    campaign: Mapped[str] = mapped_column(String(200))
    # measured (an effect), or why there is none: unstable (it diverged), invalid (it could not run)
    outcome: Mapped[str] = mapped_column(String(20), default="measured", server_default="measured")
    author: Mapped[str] = mapped_column(String(200), default="", server_default="")  # who approved the campaign
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lease(Base):
    """Who acts on a named thing (a campaign) until when. Times are seconds since the epoch
    on the holder's clock; `token` counts the hand-overs, so a holder can tell that its
    lease was taken over while it was stalled."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class ExecutorRun(Base):
    """One run on a cluster: claimed by the agent (key, spec, input files), then written by
    the run's wrapper on the host that ran it (start, heartbeats, end, used compute, small
    output files, the log's tail). The claim's uniqueness makes submitting idempotent."""

    __tablename__ = "executor_runs"
    __table_args__ = (UniqueConstraint("key", name="uq_executor_runs_key"),
                      Index("ix_executor_runs_engine_ended", "engine", "ended_at"))

    handle: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    engine: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    job_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_rss_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log_tail: Mapped[str] = mapped_column(Text, default="", server_default="")
