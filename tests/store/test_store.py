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
