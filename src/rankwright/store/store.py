"""The store's operations. One session helper commits or rolls back and turns driver errors
into `StoreError`, or `StoreUnavailable` when the store cannot be reached now (a step may
be retried); every method returns frozen records."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rankwright.store import models as m
from rankwright.finite_json import finite as _finite
from rankwright.store.engine import StoreError, store_failure
from rankwright.store.records import (CampaignRecord, EventRecord, ExperimentRecord, ExperimentState, ExperimentStatus,
                                      InsightRecord, LeaseRecord, RevisionRecord)
from rankwright.store.records import ExecutorRunRecord, experiment_key

REVISION_STRIDE = 10**7  # planned positions: plan entry i at i, revision n's entry i at n * stride + i
PLANNED_OPEN, PLANNED_HANDED, PLANNED_ENDED = 0, 1, 2  # planned_experiments.state


def planned_state(status: str, handle: str | None) -> int:
    """Where a planned run is, from its experiment row's status and handle."""
    if ExperimentStatus(status).is_terminal:
        return PLANNED_ENDED
    return PLANNED_OPEN if status == ExperimentStatus.INTENT.value and handle is None else PLANNED_HANDED


def _mark_planned(s: Session, row: m.Experiment) -> None:
    """Keep the planned index's state of a run with its experiment row (same transaction)."""
    s.execute(update(m.PlannedExperiment).where(m.PlannedExperiment.campaign_id == row.campaign_id,
                                                m.PlannedExperiment.key == row.idempotency_key)
              .values(state=planned_state(row.status, row.executor_handle)))


def planned_rows(campaign: str, entries: Any, source: int) -> list[dict[str, Any]]:
    """The `planned_experiments` rows of a plan (source 0) or of revision `source`."""
    return [{"key": experiment_key(campaign, e["name"], e["seed"]), "arm": e["name"], "source": source,
             "position": source * REVISION_STRIDE + i, "entry": e} for i, e in enumerate(entries)]


def put_planned(s: Session | Connection, campaign_id: int, rows: list[dict[str, Any]]) -> None:
    """Add planned runs; a key planned before takes the later entry and keeps its place
    (as a dict updated in plan order would)."""
    table = m.PlannedExperiment.__table__
    existing: set[str] = set()
    keys = [r["key"] for r in rows]
    for start in range(0, len(keys), 500):
        existing |= set(s.scalars(select(m.PlannedExperiment.key).where(
            m.PlannedExperiment.campaign_id == campaign_id, m.PlannedExperiment.key.in_(keys[start:start + 500]))))
    fresh = [{"campaign_id": campaign_id, **r} for r in rows if r["key"] not in existing]
    runs: dict[str, tuple[str, str | None]] = {}  # a key planned again, or indexed late: where its run is
    for start in range(0, len(fresh), 500):
        runs.update((key, (status, handle)) for key, status, handle in s.execute(
            select(m.Experiment.idempotency_key, m.Experiment.status, m.Experiment.executor_handle)
            .where(m.Experiment.idempotency_key.in_([r["key"] for r in fresh[start:start + 500]]))))
    for r in fresh:
        r["state"] = planned_state(*runs[r["key"]]) if r["key"] in runs else PLANNED_OPEN
    for start in range(0, len(fresh), 2000):
        s.execute(table.insert(), fresh[start:start + 2000])
    for r in rows:
        if r["key"] in existing:
            s.execute(update(m.PlannedExperiment).where(m.PlannedExperiment.campaign_id == campaign_id,
                                                        m.PlannedExperiment.key == r["key"])
                      .values(entry=r["entry"], source=r["source"], arm=r["arm"]))


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _campaign(row: m.Campaign) -> CampaignRecord:
    return CampaignRecord(row.id, row.name, row.spec, row.status, _utc(row.created_at))


def _experiment(row: m.Experiment) -> ExperimentRecord:
    return ExperimentRecord(
        row.id, row.campaign_id, row.idempotency_key, row.config, row.fidelity, row.seed, row.phase,
        ExperimentStatus(row.status), row.executor_handle, row.reserved_cost, row.actual_cost, row.metrics,
        row.attempt, row.prior_cost, row.failure,
    )


def _event(row: m.Event) -> EventRecord:
    return EventRecord(row.id, row.campaign_id, _utc(row.time), row.kind, row.message, row.data)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise store_failure(exc, self.engine.url) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # ------------------------------------------------------------- campaigns
    def create_campaign(self, name: str, spec: dict[str, Any]) -> CampaignRecord:
        try:
            with self.session() as s:
                row = m.Campaign(name=name, spec=spec)
                s.add(row)
                s.flush()
                return _campaign(row)
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise StoreError(f"a campaign named {name!r} already exists") from None
            raise

    def campaign(self, name: str) -> CampaignRecord | None:
        with self.session() as s:
            row = s.scalars(select(m.Campaign).where(m.Campaign.name == name)).one_or_none()
            return None if row is None else _campaign(row)

    def campaign_summaries(self) -> list[dict[str, Any]]:
        """Every campaign with its experiment count and settled spend, oldest first."""
        from sqlalchemy import func

        with self.session() as s:
            counts = dict(s.execute(select(m.Experiment.campaign_id, func.count())
                                    .group_by(m.Experiment.campaign_id)).all())
            spent = dict(s.execute(select(m.Experiment.campaign_id,
                                          func.coalesce(func.sum(m.Experiment.actual_cost), 0.0))
                                   .group_by(m.Experiment.campaign_id)).all())
            flying = dict(s.execute(select(m.Experiment.campaign_id, func.count())
                                    .where(m.Experiment.status.in_(("submitted", "running")))
                                    .group_by(m.Experiment.campaign_id)).all())
            return [{"name": c.name, "status": c.status, "experiments": counts.get(c.id, 0),
                     "spent": float(spent.get(c.id, 0.0)), "in_flight": int(flying.get(c.id, 0)),
                     "portfolio": (c.spec or {}).get("portfolio"), "created_at": _utc(c.created_at)}
                    for c in s.scalars(select(m.Campaign).order_by(m.Campaign.id))]

    def set_campaign_spec(self, campaign_id: int, spec: dict[str, Any]) -> None:
        """The approved spec, after an engineer approved a change to it (a larger budget)."""
        with self.session() as s:
            s.get_one(m.Campaign, campaign_id).spec = spec

    def set_campaign_status(self, campaign_id: int, status: str) -> None:
        with self.session() as s:
            s.get_one(m.Campaign, campaign_id).status = status

    # ------------------------------------------------------ plans, approvals
    def record_plan(self, campaign_id: int, body: dict[str, Any], estimated_cost: float) -> int:
        """The newest plan replaces the older plans' runs in the index of planned runs (a
        revision's runs stay: revisions come after the approved plan)."""
        with self.session() as s:
            row = m.Plan(campaign_id=campaign_id, body=body, estimated_cost=estimated_cost,
                         strategy=body.get("strategy"))
            s.add(row)
            s.flush()
            s.execute(delete(m.PlannedExperiment).where(m.PlannedExperiment.campaign_id == campaign_id,
                                                        m.PlannedExperiment.source == 0))
            name = s.get_one(m.Campaign, campaign_id).name
            put_planned(s, campaign_id, planned_rows(name, body.get("experiments", ()), 0))
            return row.id

    def latest_plan_id(self, campaign_id: int) -> int | None:
        """The newest plan's id, without its document (which lists every planned run)."""
        with self.session() as s:
            return s.scalars(select(m.Plan.id).where(m.Plan.campaign_id == campaign_id)
                             .order_by(m.Plan.id.desc()).limit(1)).one_or_none()

    def plan_strategy(self, plan_id: int) -> dict[str, Any] | None:
        """The strategy section of a plan's document, kept in a column of its own (the
        document lists every planned run: a long campaign's is megabytes of JSON)."""
        with self.session() as s:
            return s.scalar(select(m.Plan.strategy).where(m.Plan.id == plan_id))

    def latest_plan(self, campaign_id: int) -> tuple[int, dict[str, Any], float] | None:
        with self.session() as s:
            row = s.scalars(
                select(m.Plan).where(m.Plan.campaign_id == campaign_id).order_by(m.Plan.id.desc()).limit(1)
            ).one_or_none()
            return None if row is None else (row.id, row.body, row.estimated_cost)

    def record_approval(
        self, plan_id: int, approved_by: str, budget: float, budget_unit: str, via_yes_flag: bool
    ) -> int:
        with self.session() as s:
            row = m.Approval(plan_id=plan_id, approved_by=approved_by, budget=budget,
                             budget_unit=budget_unit, via_yes_flag=via_yes_flag)
            s.add(row)
            s.flush()
            return row.id

    def approval_of(self, plan_id: int) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.scalars(select(m.Approval).where(m.Approval.plan_id == plan_id).order_by(m.Approval.id.desc())
                            .limit(1)).one_or_none()
            if row is None:
                return None
            return {"approved_by": row.approved_by, "budget": row.budget, "unit": row.budget_unit,
                    "via_yes_flag": row.via_yes_flag, "time": _utc(row.created_at).isoformat()}

    # ------------------------------------------------------------- revisions
    def record_revision(self, campaign_id: int, number: int, phase: str, reason: str, body: dict[str, Any],
                        event: str | None = None) -> RevisionRecord:
        """Record re-plan `number` once: a second writer of the same number (a wake that
        decided again after a kill) gets the stored one back, whatever it decided. The
        event explaining it is written in the same transaction."""
        try:
            with self.session() as s:
                row = m.Revision(campaign_id=campaign_id, number=number, phase=phase, reason=reason, body=body)
                s.add(row)
                s.flush()
                put_planned(s, campaign_id, planned_rows(s.get_one(m.Campaign, campaign_id).name,
                                                         body.get("experiments", ()), number))
                if event is not None:
                    s.add(m.Event(campaign_id=campaign_id, kind="decide", message=event, data={"revision": number}))
                s.flush()
                return RevisionRecord(row.number, row.phase, row.reason, row.body, _utc(row.created_at))
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        stored = [r for r in self.revisions(campaign_id) if r.number == number]
        if not stored:
            raise StoreError(f"revision {number} of campaign {campaign_id} could not be written")
        return stored[0]

    def current_phase(self, campaign_id: int) -> str:
        """The phase of the newest revision (validation before the first)."""
        with self.session() as s:
            phase = s.scalars(select(m.Revision.phase).where(m.Revision.campaign_id == campaign_id)
                              .order_by(m.Revision.number.desc()).limit(1)).one_or_none()
            return phase or "validation"

    # --------------------------------------------------- planned experiments
    def planned_entries(self, campaign_id: int, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Key -> planned entry, for just these keys."""
        out: dict[str, dict[str, Any]] = {}
        with self.session() as s:
            for start in range(0, len(keys), 500):
                out.update((key, entry) for key, entry in s.execute(
                    select(m.PlannedExperiment.key, m.PlannedExperiment.entry).where(
                        m.PlannedExperiment.campaign_id == campaign_id,
                        m.PlannedExperiment.key.in_(keys[start:start + 500]))))
        return out

    def planned_of_arms(self, campaign_id: int, arms: list[str]) -> list[dict[str, Any]]:
        """The planned entries of these arms, in plan order."""
        p = m.PlannedExperiment
        with self.session() as s:
            return list(s.scalars(select(p.entry).where(p.campaign_id == campaign_id, p.arm.in_(arms))
                                  .order_by(p.position)))

    def unsubmitted(self, campaign_id: int) -> list[tuple[str, dict[str, Any], ExperimentState | None]]:
        """Planned runs not yet handed to an executor, in plan order: no experiment row yet,
        or an intent without a handle. (key, entry, its row's state or None)."""
        p, e = m.PlannedExperiment, m.Experiment
        query = (select(p.key, p.entry, e.id, e.status, e.executor_handle, e.reserved_cost, e.actual_cost, e.attempt,
                        e.prior_cost)
                 .outerjoin(e, e.idempotency_key == p.key)
                 .where(p.campaign_id == campaign_id, p.state == PLANNED_OPEN).order_by(p.position))
        with self.session() as s:
            return [(key, entry, None if id is None else ExperimentState(
                        id, ExperimentStatus(status), handle, reserved, actual, attempt, prior))
                    for key, entry, id, status, handle, reserved, actual, attempt, prior in s.execute(query)]

    def all_planned_ended(self, campaign_id: int) -> bool:
        """Whether every planned run has ended (true of a plan with none)."""
        p = m.PlannedExperiment
        with self.session() as s:
            return s.scalar(select(p.id).where(p.campaign_id == campaign_id, p.state < PLANNED_ENDED).limit(1)) is None

    def ledger_sums(self, campaign_id: int) -> tuple[float, float]:
        """(spent, reserved) over every experiment, summed in the database: the budget
        ledger's two numbers (see `agent.budget.ledger`), without reading the rows."""
        e = m.Experiment
        settled = e.actual_cost.is_not(None)
        spent = case((settled, e.actual_cost), else_=func.coalesce(e.prior_cost, 0.0))
        reserved = case((settled, 0.0), else_=e.reserved_cost)
        with self.session() as s:
            got = s.execute(select(func.coalesce(func.sum(spent), 0.0), func.coalesce(func.sum(reserved), 0.0))
                            .where(e.campaign_id == campaign_id)).one()
            return float(got[0]), float(got[1])

    def revisions(self, campaign_id: int) -> list[RevisionRecord]:
        with self.session() as s:
            rows = s.scalars(select(m.Revision).where(m.Revision.campaign_id == campaign_id).order_by(m.Revision.number))
            return [RevisionRecord(r.number, r.phase, r.reason, r.body, _utc(r.created_at)) for r in rows]

    # ----------------------------------------------------------- experiments
    def record_intent(
        self, campaign_id: int, key: str, config: dict[str, Any], *, phase: str, fidelity: float = 1.0,
        seed: int = 0, reserved_cost: float = 0.0, hypothesis_id: int | None = None,
    ) -> ExperimentRecord:
        """Write the experiment row before submitting it. The same key twice returns the
        existing row: a re-run decision can never create a second experiment."""
        with self.session() as s:
            existing = s.scalars(select(m.Experiment).where(m.Experiment.idempotency_key == key)).one_or_none()
            if existing is not None:
                return _experiment(existing)
            row = m.Experiment(
                campaign_id=campaign_id, idempotency_key=key, config=config, phase=phase, fidelity=fidelity,
                seed=seed, reserved_cost=reserved_cost, hypothesis_id=hypothesis_id,
                status=ExperimentStatus.INTENT.value,
            )
            s.add(row)
            s.flush()
            return _experiment(row)

    def mark_submitted(self, experiment_id: int, handle: str) -> ExperimentRecord:
        """intent -> submitted, recording the executor's handle (idempotent)."""
        with self.session() as s:
            row = s.get_one(m.Experiment, experiment_id)
            if row.status == ExperimentStatus.INTENT.value:
                row.status, row.executor_handle = ExperimentStatus.SUBMITTED.value, handle
                _mark_planned(s, row)
            elif row.executor_handle != handle:
                raise StoreError(f"experiment {experiment_id} already has handle {row.executor_handle!r}")
            return _experiment(row)

    def mark_finished(
        self, experiment_id: int, status: ExperimentStatus, actual_cost: float, metrics: dict[str, Any] | None,
        failure: dict[str, Any] | None = None,
    ) -> ExperimentRecord:
        """Settle a run once: a terminal status is never changed again. `actual_cost` is this
        attempt's; the row's settled cost adds the attempts before it."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not a terminal status")
        with self.session() as s:
            row = s.get_one(m.Experiment, experiment_id)
            if not ExperimentStatus(row.status).is_terminal:
                row.status, row.actual_cost = status.value, (row.prior_cost or 0.0) + actual_cost
                _mark_planned(s, row)
                row.metrics = _finite(metrics)  # NaN is not JSON (PostgreSQL refuses it): an undefined metric is null
                if failure is not None:
                    row.failure = _finite(failure)
            return _experiment(row)

    def retry(self, experiment_id: int, attempt: int, cost: float, failure: dict[str, Any],
              config: dict[str, Any] | None = None) -> ExperimentRecord:
        """A failed attempt that the runbook remedies: the row goes back to an intent for
        attempt `attempt`, the failed attempt's measured cost joins `prior_cost` (it stays
        charged), `failure` (kind, evidence, remedies so far) replaces the old record and
        `config`, when given, is what the retry runs. Idempotent: asking for an attempt the row already reached changes nothing."""
        with self.session() as s:
            row = s.get_one(m.Experiment, experiment_id)
            if row.attempt >= attempt or ExperimentStatus(row.status).is_terminal:
                return _experiment(row)
            row.attempt, row.prior_cost, row.failure = attempt, (row.prior_cost or 0.0) + cost, failure
            if config is not None:
                row.config = config
            row.status, row.executor_handle, row.actual_cost, row.metrics = ExperimentStatus.INTENT.value, None, None, None
            _mark_planned(s, row)
            return _experiment(row)

    def note_failure(self, experiment_id: int, failure: dict[str, Any]) -> None:
        """Record a triage finding on a run still in flight (a hang the agent is cancelling),
        so that the wake collecting it knows why it ended."""
        with self.session() as s:
            row = s.get_one(m.Experiment, experiment_id)
            if not ExperimentStatus(row.status).is_terminal:
                row.failure = failure

    def experiments(self, campaign_id: int) -> list[ExperimentRecord]:
        with self.session() as s:
            rows = s.scalars(select(m.Experiment).where(m.Experiment.campaign_id == campaign_id).order_by(m.Experiment.id))
            return [_experiment(r) for r in rows]

    def unfinished(self, campaign_id: int) -> list[ExperimentRecord]:
        """Experiments not yet settled: what a wake reconciles (few, however long the history)."""
        open_ = [st.value for st in ExperimentStatus if not st.is_terminal]  # an index lookup, not a scan
        with self.session() as s:
            rows = s.scalars(select(m.Experiment).where(m.Experiment.campaign_id == campaign_id,
                                                        m.Experiment.status.in_(open_)).order_by(m.Experiment.id))
            return [_experiment(r) for r in rows]

    def experiments_by_keys(self, campaign_id: int, keys: list[str]) -> list[ExperimentRecord]:
        """Just these experiments (what one comparison needs), however many the campaign has."""
        out: list[ExperimentRecord] = []
        with self.session() as s:
            for start in range(0, len(keys), 500):
                rows = s.scalars(select(m.Experiment).where(m.Experiment.campaign_id == campaign_id,
                                                            m.Experiment.idempotency_key.in_(keys[start:start + 500])))
                out += [_experiment(r) for r in rows]
        return out

    def key_states(self, campaign_id: int) -> dict[str, ExperimentState]:
        """Key -> (id, status, handle, reserved, actual) of every experiment, without the
        configs and metrics: enough for the ledger and for deciding what is missing."""
        columns = (m.Experiment.idempotency_key, m.Experiment.id, m.Experiment.status, m.Experiment.executor_handle,
                   m.Experiment.reserved_cost, m.Experiment.actual_cost, m.Experiment.attempt,
                   m.Experiment.prior_cost)
        with self.session() as s:
            rows = s.execute(select(*columns).where(m.Experiment.campaign_id == campaign_id))
            return {key: ExperimentState(id, ExperimentStatus(status), handle, reserved, actual, attempt, prior)
                    for key, id, status, handle, reserved, actual, attempt, prior in rows}

    # ---------------------------------------------------------------- events
    def append_event(self, campaign_id: int, kind: str, message: str, **data: Any) -> EventRecord:
        from rankwright.redact import redact

        with self.session() as s:
            row = m.Event(campaign_id=campaign_id, kind=kind, message=redact(message), data=_finite(data))
            s.add(row)
            s.flush()
            return _event(row)

    def latest_events(self, campaign_id: int, kinds: tuple[str, ...], limit: int) -> list[EventRecord]:
        """The last `limit` events of these kinds, newest first (what the failure breaker reads)."""
        with self.session() as s:
            rows = s.scalars(select(m.Event).where(m.Event.campaign_id == campaign_id, m.Event.kind.in_(kinds))
                             .order_by(m.Event.id.desc()).limit(limit))
            return [_event(r) for r in rows]

    def events(self, campaign_id: int) -> list[EventRecord]:
        with self.session() as s:
            rows = s.scalars(select(m.Event).where(m.Event.campaign_id == campaign_id).order_by(m.Event.id))
            return [_event(r) for r in rows]

    # -------------------------------------------------------------- insights
    _INSIGHT_FIELDS = ("uid", "technique", "changes", "context", "effect", "effect_se", "seeds", "noise",
                       "cost_factor", "campaign")

    def add_insight(self, **fields: Any) -> bool:
        """Write one insight unless its uid is already stored; True when it was new."""
        missing = [f for f in self._INSIGHT_FIELDS if f not in fields]
        if missing:
            raise ValueError(f"an insight needs {missing}")
        return bool(self.add_insights([fields]))

    def add_insights(self, rows: list[dict[str, Any]], explain: Any = None) -> list[str]:
        """Write many insights in one transaction, skipping stored uids; returns the new uids.

        `explain(new_rows) -> [(campaign_id, kind, message)]` gives the events that explain
        them; they are written in the same transaction, so a kill keeps both or neither."""
        new: list[str] = []
        with self.session() as s:
            uids = [r["uid"] for r in rows]
            known: set[str] = set()
            for start in range(0, len(uids), 500):
                known.update(s.scalars(select(m.Insight.uid).where(m.Insight.uid.in_(uids[start:start + 500]))))
            for r in rows:
                if r["uid"] in known:
                    continue
                known.add(r["uid"])
                s.add(m.Insight(**{f: r[f] for f in self._INSIGHT_FIELDS}, outcome=r.get("outcome", "measured"),
                                author=str(r.get("author") or "")[:200]))
                new.append(r["uid"])
            if explain is not None and new:
                fresh = set(new)
                for campaign_id, kind, message in explain([r for r in rows if r["uid"] in fresh]):
                    s.add(m.Event(campaign_id=campaign_id, kind=kind, message=message, data={}))
        return new

    def insight_uids(self, campaign: str) -> set[str]:
        """The uids of the insights a campaign learned (one column: cheap at any size)."""
        with self.session() as s:
            return set(s.scalars(select(m.Insight.uid).where(m.Insight.campaign == campaign)))

    def insights(self, technique: str | None = None) -> list[InsightRecord]:
        with self.session() as s:
            query = select(m.Insight).order_by(m.Insight.id)
            if technique is not None:
                query = query.where(m.Insight.technique == technique)
            return [InsightRecord(**{f: getattr(r, f) for f in self._INSIGHT_FIELDS}, created_at=_utc(r.created_at),
                                  outcome=r.outcome or "measured", author=r.author or "")
                    for r in s.scalars(query)]

    # ------------------------------------------------------------ hypotheses
    def replace_hypotheses(self, campaign_id: int, hypotheses: list[dict[str, Any]]) -> None:
        """The campaign's current ranked hypotheses (name, source, changes, expected_effect,
        probability, expected_cost, reason), replacing the last ranking; the event log keeps
        the history of rankings."""
        with self.session() as s:
            for row in s.scalars(select(m.Hypothesis).where(m.Hypothesis.campaign_id == campaign_id)):
                s.delete(row)
            s.add_all(m.Hypothesis(campaign_id=campaign_id, **h) for h in hypotheses)

    def hypotheses(self, campaign_id: int) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(select(m.Hypothesis).where(m.Hypothesis.campaign_id == campaign_id).order_by(m.Hypothesis.id))
            return [{"name": r.name, "source": r.source, "changes": r.changes, "expected_effect": r.expected_effect,
                     "probability": r.probability, "expected_cost": r.expected_cost, "reason": r.reason} for r in rows]

    # ---------------------------------------------------------------- leases
    def try_lease(self, name: str, owner: str, ttl_s: float, now: float,
                  replacing: str | None = None) -> LeaseRecord | None:
        """Take or renew the lease `name` for `owner` until `now + ttl_s`: it is taken when
        nobody holds it, its holder's time ran out, `owner` holds it already, or its holder
        is `replacing` (one known dead). None when another holds it. One conditional UPDATE,
        else one INSERT: the database decides between two agents racing for it, on SQLite
        and PostgreSQL alike."""
        with self.session() as s:
            free = (m.Lease.owner == owner) | (m.Lease.expires_at < now)
            if replacing is not None:
                free = free | (m.Lease.owner == replacing)
            taken = s.execute(
                update(m.Lease)
                .where(m.Lease.name == name, free)
                .values(token=m.Lease.token + case((m.Lease.owner == owner, 0), else_=1),
                        acquired_at=case((m.Lease.owner == owner, m.Lease.acquired_at), else_=now),
                        owner=owner, expires_at=now + ttl_s)
                .execution_options(synchronize_session=False))
            if taken.rowcount == 1:
                row = s.get_one(m.Lease, name, populate_existing=True)
                return LeaseRecord(row.name, row.owner, row.token, row.acquired_at, row.expires_at)
        try:
            with self.session() as s:
                s.add(m.Lease(name=name, owner=owner, token=1, acquired_at=now, expires_at=now + ttl_s))
            return LeaseRecord(name, owner, 1, now, now + ttl_s)
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # another inserted it first
                return None
            raise

    def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up if `owner` still holds it; False when it was taken over."""
        with self.session() as s:
            return s.execute(delete(m.Lease).where(m.Lease.name == name, m.Lease.owner == owner)
                             .execution_options(synchronize_session=False)).rowcount == 1

    def lease(self, name: str) -> LeaseRecord | None:
        """The lease `name` as stored (it may have expired: compare `expires_at`)."""
        with self.session() as s:
            row = s.get(m.Lease, name)
            return None if row is None else LeaseRecord(row.name, row.owner, row.token, row.acquired_at,
                                                         row.expires_at)

    # -------------------------------------------------- cluster runs (executors)
    _RUN_FIELDS = tuple(ExecutorRunRecord.__dataclass_fields__)

    def _run(self, row: m.ExecutorRun) -> ExecutorRunRecord:
        return ExecutorRunRecord(**{f: getattr(row, f) for f in self._RUN_FIELDS})

    def claim_run(self, handle: str, key: str, engine: str, spec: dict[str, Any], inputs: dict[str, Any],
                  now: float) -> bool:
        """Claim `key` for one run; False when it was claimed before (by anyone, ever)."""
        try:
            with self.session() as s:
                s.add(m.ExecutorRun(handle=handle, key=key, engine=engine, spec=spec, inputs=inputs,
                                    claimed_at=now, outputs={}))
            return True
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise

    def executor_run(self, handle: str) -> ExecutorRunRecord | None:
        with self.session() as s:
            row = s.get(m.ExecutorRun, handle)
            return None if row is None else self._run(row)

    def open_executor_runs(self, engine: str, key_prefix: str = "") -> list[ExecutorRunRecord]:
        """The runs of `engine` (keys starting with `key_prefix`) without a recorded end."""
        with self.session() as s:
            query = select(m.ExecutorRun).where(m.ExecutorRun.engine == engine, m.ExecutorRun.ended_at.is_(None))
            if key_prefix:
                query = query.where(m.ExecutorRun.key.startswith(key_prefix, autoescape=True))
            return [self._run(r) for r in s.scalars(query.order_by(m.ExecutorRun.claimed_at))]

    def update_executor_run(self, handle: str, *, only_if: str | None = None, **fields: Any) -> bool:
        """Set fields of a run's record. `only_if` names a field that must still be empty
        (NULL): the one wrapper that starts a run, the one end that is recorded. False when
        the record is missing or the condition failed."""
        with self.session() as s:
            query = update(m.ExecutorRun).where(m.ExecutorRun.handle == handle)
            if only_if is not None:
                query = query.where(getattr(m.ExecutorRun, only_if).is_(None))
            return s.execute(query.values(**fields).execution_options(synchronize_session=False)).rowcount == 1
