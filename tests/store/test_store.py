"""Store contract, written once and run over every backend: SQLite always, PostgreSQL when
RANKWRIGHT_TEST_POSTGRES holds a URL of a scratch database (issue 3 wires it into CI)."""

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from rankwright.store import StoreError, open_store
from rankwright.store.engine import head_revision
from rankwright.store.models import Base
from rankwright.store.records import ExperimentStatus

@pytest.fixture
def url(store_url):
    return store_url


def test_new_store_is_at_head_and_matches_the_models(url):
    from rankwright.store.engine import HEAD

    assert HEAD == head_revision()  # the constant a wake checks instead of walking the migrations
    store = open_store(url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, Base.metadata) == []
    assert open_store(url).campaign("none") is None  # opened again, at head: the short way


def test_campaign_names_are_unique_and_the_store_keeps_the_first(url):
    store = open_store(url)
    first = store.create_campaign("ctr-q4", {"budget": 10})
    with pytest.raises(StoreError, match="already exists"):
        store.create_campaign("ctr-q4", {"budget": 99})
    assert store.campaign("ctr-q4") == first
    assert store.campaign("nope") is None


def test_the_same_idempotency_key_never_makes_a_second_experiment(url):
    store = open_store(url)
    campaign = store.create_campaign("c", {})
    a = store.record_intent(campaign.id, "c/baseline/seed1", {"model": {"name": "dnn"}}, phase="validation", seed=1)
    b = store.record_intent(campaign.id, "c/baseline/seed1", {"model": {"name": "other"}}, phase="validation", seed=1)
    assert a == b and a.status is ExperimentStatus.INTENT and not a.status.is_terminal
    assert len(store.experiments(campaign.id)) == 1


def test_events_are_kept_in_order_with_their_data(url):
    store = open_store(url)
    campaign = store.create_campaign("c", {})
    for i in range(3):
        store.append_event(campaign.id, "decide", f"step {i}", step=i)
    events = store.events(campaign.id)
    assert [e.message for e in events] == ["step 0", "step 1", "step 2"]
    assert [e.data["step"] for e in events] == [0, 1, 2]


def test_reopening_is_a_no_op_and_sqlite_runs_in_wal_mode(tmp_path):
    path = tmp_path / "rankwright.db"
    store = open_store(f"sqlite:///{path}")
    store.create_campaign("c", {})
    again = open_store(f"sqlite:///{path}")
    assert again.campaign("c") is not None
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "rankwright.db"
    open_store(f"sqlite:///{path}").create_campaign("c", {})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer version"):
        open_store(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM campaigns").fetchall() == [("c",)]


def test_a_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a Rankwright store"):
        open_store(f"sqlite:///{path}")


def test_unfinished_and_key_states_agree_with_the_full_rows(url):
    store = open_store(url)
    campaign = store.create_campaign("c", {})
    other = store.create_campaign("other", {})
    rows = [store.record_intent(campaign.id, f"c/e{i}/seed1", {"i": i}, phase="validation", seed=1,
                                reserved_cost=0.1 * i) for i in range(4)]
    store.record_intent(other.id, "other/e/seed1", {}, phase="validation")
    store.mark_submitted(rows[1].id, "h1")
    store.mark_submitted(rows[2].id, "h2")
    store.mark_finished(rows[2].id, ExperimentStatus.SUCCEEDED, 0.25, {"objective": 0.5})
    store.mark_finished(rows[3].id, ExperimentStatus.CANCELLED, 0.0, None)
    assert [e.idempotency_key for e in store.unfinished(campaign.id)] == ["c/e0/seed1", "c/e1/seed1"]
    states = store.key_states(campaign.id)
    full = {e.idempotency_key: e for e in store.experiments(campaign.id)}
    assert set(states) == set(full)
    for key, state in states.items():
        e = full[key]
        assert (state.id, state.status, state.executor_handle, state.reserved_cost, state.actual_cost) == \
            (e.id, e.status, e.executor_handle, e.reserved_cost, e.actual_cost)


def test_batch_insights_skip_stored_uids_and_experiments_by_keys_reads_only_those(url):
    store = open_store(url)
    row = {"technique": "t", "changes": {"a": 1}, "context": {"model_family": "dnn"}, "effect": -0.01,
           "effect_se": 0.001, "seeds": 2, "noise": 0.002, "cost_factor": 1.0, "campaign": "c"}
    assert store.add_insights([{**row, "uid": "u1"}, {**row, "uid": "u2"}]) == ["u1", "u2"]
    assert store.add_insights([{**row, "uid": "u2"}, {**row, "uid": "u3"}, {**row, "uid": "u3"}]) == ["u3"]
    assert [i.uid for i in store.insights()] == ["u1", "u2", "u3"]
    campaign = store.create_campaign("c", {})
    for i in range(5):
        store.record_intent(campaign.id, f"c/e{i}/seed1", {}, phase="validation")
    got = store.experiments_by_keys(campaign.id, ["c/e1/seed1", "c/e3/seed1", "c/nope/seed1"])
    assert sorted(e.idempotency_key for e in got) == ["c/e1/seed1", "c/e3/seed1"]


def test_insights_and_the_events_explaining_them_are_written_together(url):
    store = open_store(url)
    campaign = store.create_campaign("c", {})
    row = {"technique": "t", "changes": {}, "context": {}, "effect": -0.01, "effect_se": 0.001, "seeds": 2,
           "noise": 0.002, "cost_factor": 1.0, "campaign": "c"}

    def explain(new_rows):
        return [(campaign.id, "learn", f"learned {r['uid']}") for r in new_rows]

    store.add_insights([{**row, "uid": "a"}], explain=explain)
    store.add_insights([{**row, "uid": "a"}, {**row, "uid": "b"}], explain=explain)
    assert [e.message for e in store.events(campaign.id)] == ["learned a", "learned b"]

    def broken(new_rows):
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        store.add_insights([{**row, "uid": "c"}], explain=broken)
    assert [i.uid for i in store.insights()] == ["a", "b"]  # neither the insight nor its event


def test_a_result_with_undefined_metrics_is_stored_as_null(url):
    store = open_store(url)
    campaign = store.create_campaign("nan-metrics", {"name": "nan-metrics"})
    row = store.record_intent(campaign.id, "nan-metrics/a/seed1", {}, phase="validation")
    stored = store.mark_finished(row.id, ExperimentStatus.SUCCEEDED, 0.1,
                                 {"objective": 0.4, "metrics": {"valid": {"calibration": float("nan")}}})
    assert stored.metrics == {"objective": 0.4, "metrics": {"valid": {"calibration": None}}}
    store.append_event(campaign.id, "collect", "x", cost=float("inf"))
    assert store.events(campaign.id)[-1].data == {"cost": None}


# ---------------------------------------------------------------- leases (team mode)
def test_a_lease_is_held_by_one_owner_until_it_expires(url):
    store = open_store(url)
    first = store.try_lease("campaign:c", "a:1:x", ttl_s=60, now=1000.0)
    assert first is not None and first.token == 1 and first.expires_at == 1060.0
    assert store.try_lease("campaign:c", "b:2:y", ttl_s=60, now=1059.0) is None  # still a's
    renewed = store.try_lease("campaign:c", "a:1:x", ttl_s=60, now=1050.0)
    assert renewed.token == 1 and renewed.acquired_at == 1000.0 and renewed.expires_at == 1110.0
    taken = store.try_lease("campaign:c", "b:2:y", ttl_s=60, now=1111.0)  # a stopped renewing
    assert taken.owner == "b:2:y" and taken.token == 2 and taken.acquired_at == 1111.0
    assert store.release_lease("campaign:c", "a:1:x") is False  # a's lease is gone: a cannot free b's
    assert store.lease("campaign:c").owner == "b:2:y"
    assert store.try_lease("campaign:c", "c:3:z", ttl_s=60, now=1112.0, replacing="b:2:y").token == 3
    assert store.release_lease("campaign:c", "c:3:z") is True and store.lease("campaign:c") is None
    assert store.try_lease("campaign:other", "b:2:y", ttl_s=60, now=1112.0) is not None  # one lease a name


def test_agents_racing_for_a_lease_get_it_exactly_once(url):
    """Eight agents, each with its own connection, try at the same instant: one wins."""
    import threading

    open_store(url)
    stores = [open_store(url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    won: list[str] = []

    def race(i: int) -> None:
        barrier.wait()
        if stores[i].try_lease("campaign:race", f"h:{i}:r", ttl_s=60, now=5000.0) is not None:
            won.append(f"h:{i}:r")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and stores[0].lease("campaign:race").owner == won[0]


def _entry(name: str, seed: int, hours: float = 0.1) -> dict:
    return {"name": name, "seed": seed, "phase": "validation", "changes": {}, "predicted_hours": hours}


def test_the_planned_index_follows_the_plan_and_its_revisions_in_order(url):
    """What a wake submits next and whether everything planned ended come from the index,
    exactly as from the plan's and revisions' documents (a later entry of a key wins and
    keeps the key's place)."""
    from rankwright.agent.observe import planned_experiments
    from rankwright.agent.naming import experiment_key

    store = open_store(url)
    campaign = store.create_campaign("c", {})
    store.record_plan(campaign.id, {"experiments": [_entry("old", 1)]}, 1.0)  # re-planned before approval
    plan = {"experiments": [_entry("baseline", 1), _entry("baseline", 2), _entry("a", 1)]}
    store.record_plan(campaign.id, {**plan, "strategy": {"rounds": 2}}, 1.0)
    assert store.plan_strategy(store.latest_plan_id(campaign.id)) == {"rounds": 2}
    store.record_revision(campaign.id, 1, "validation", "more", {"experiments": [_entry("b", 1), _entry("a", 1, 0.5)]})
    expected = {experiment_key("c", p["name"], p["seed"]): p
                for p in planned_experiments(store.latest_plan(campaign.id)[1], store.revisions(campaign.id))}
    got = store.unsubmitted(campaign.id)
    assert [(k, e) for k, e, _ in got] == list(expected.items())
    assert all(state is None for *_, state in got) and not store.all_planned_ended(campaign.id)
    assert store.planned_of_arms(campaign.id, ["a"]) == [_entry("a", 1, 0.5)]
    assert store.planned_entries(campaign.id, ["c/b/seed1", "c/old/seed1"]) == {"c/b/seed1": _entry("b", 1)}
    assert store.current_phase(campaign.id) == "validation"

    rows = {k: store.record_intent(campaign.id, k, {}, phase="validation", reserved_cost=0.1) for k in expected}
    store.mark_submitted(rows["c/baseline/seed1"].id, "h1")
    assert [k for k, _, _ in store.unsubmitted(campaign.id)] == ["c/baseline/seed2", "c/a/seed1", "c/b/seed1"]
    assert store.unsubmitted(campaign.id)[0][2].status is ExperimentStatus.INTENT  # an intent without a handle
    store.retry(rows["c/baseline/seed1"].id, 2, 0.1, {"kind": "oom"})  # a retry is to be submitted again
    assert [k for k, _, _ in store.unsubmitted(campaign.id)][:2] == ["c/baseline/seed1", "c/baseline/seed2"]
    for key, row in rows.items():
        store.mark_submitted(row.id, f"h-{key}")
        store.mark_finished(row.id, ExperimentStatus.SUCCEEDED, 0.2, {"objective": 0.5})
    assert store.unsubmitted(campaign.id) == [] and store.all_planned_ended(campaign.id)


def test_the_ledger_summed_in_the_store_is_the_ledger_of_the_rows(url):
    from rankwright.agent.budget import LedgerEntry, ledger

    store = open_store(url)
    campaign = store.create_campaign("c", {})
    other = store.create_campaign("other", {})
    store.record_intent(other.id, "other/x/seed1", {}, phase="validation", reserved_cost=9.0)
    assert store.ledger_sums(campaign.id) == (0.0, 0.0)
    rows = [store.record_intent(campaign.id, f"c/e{i}/seed1", {}, phase="validation", reserved_cost=0.25 * (i + 1))
            for i in range(5)]
    store.mark_submitted(rows[0].id, "h0")
    store.mark_finished(rows[0].id, ExperimentStatus.SUCCEEDED, 0.125, {"objective": 0.5})
    store.retry(rows[1].id, 2, 0.5, {"kind": "oom"})  # a failed attempt's cost stays charged while it is retried
    store.mark_finished(rows[2].id, ExperimentStatus.CANCELLED, 0.0, None)
    entries = [LedgerEntry(e.reserved_cost, e.actual_cost, e.prior_cost) for e in store.experiments(campaign.id)]
    want = ledger(entries)
    spent, reserved = store.ledger_sums(campaign.id)
    assert spent == pytest.approx(want.spent, abs=1e-12) and reserved == pytest.approx(want.reserved, abs=1e-12)
    assert (want.spent, want.reserved) == (0.125 + 0.5, 0.5 + 1.0 + 1.25)


def test_an_older_store_gets_its_plans_indexed_when_it_is_upgraded(tmp_path):
    """A store at 0008 (before the planned index) is upgraded in place: its campaigns' plans
    and revisions are indexed, so their next wake finds what is still to submit."""
    from alembic import command
    from sqlalchemy import create_engine

    from rankwright.store.engine import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    command.upgrade(_alembic_config(engine), "0008")
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO campaigns (id, name, spec, status, created_at) "
                          "VALUES (1, 'c', '{}', 'approved', '2026-01-01')")
        c.exec_driver_sql("INSERT INTO plans (id, campaign_id, body, estimated_cost, created_at) VALUES "
                          "(1, 1, '{\"experiments\": [{\"name\": \"baseline\", \"seed\": 1}], "
                          "\"strategy\": {\"low_fidelity\": {\"x\": 1}}}', 1.0, '2026-01-01')")
        c.exec_driver_sql("INSERT INTO revisions (campaign_id, number, phase, reason, body, created_at) VALUES "
                          "(1, 1, 'combination', 'r', '{\"experiments\": [{\"name\": \"x\", \"seed\": 1}]}', "
                          "'2026-01-01')")
        c.exec_driver_sql("INSERT INTO experiments (campaign_id, idempotency_key, config, fidelity, seed, phase, "
                          "status, executor_handle, reserved_cost, created_at, updated_at) VALUES (1, "
                          "'c/baseline/seed1', '{}', 1.0, 1, 'validation', 'succeeded', 'h', 0.1, '2026-01-01', "
                          "'2026-01-01')")
    engine.dispose()
    store = open_store(url)
    assert [k for k, _, _ in store.unsubmitted(1)] == ["c/x/seed1"]  # the baseline ran before the upgrade
    assert store.current_phase(1) == "combination" and not store.all_planned_ended(1)
    assert store.plan_strategy(1) == {"low_fidelity": {"x": 1}}  # moved beside the document
