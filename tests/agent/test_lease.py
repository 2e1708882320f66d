"""The campaign lease (team mode): agents in separate processes with their own connections
to one store never hold it at once, a dead holder frees it, a stalled one learns it lost it."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from rankwright.agent.lease import Lease, LeaseHeld, died_here
from rankwright.store import open_store


@pytest.fixture
def url(store_url):
    """A store each agent opens on its own: a SQLite file, and (when CI gives one) a
    PostgreSQL server, the team set-up the lease is for."""
    open_store(store_url)
    return store_url


def test_a_renewed_lease_outlives_its_ttl_and_is_freed_after(url):
    store = open_store(url)
    with Lease(store, "campaign:c", ttl_s=2.0) as held:
        time.sleep(5.0)  # 2.5 lease times: only the renewals (every 0.67 s) keep it, on a loaded machine too
        with pytest.raises(LeaseHeld, match="held by"):
            Lease(open_store(url), "campaign:c", ttl_s=0.6, wait_s=0.3).acquire()
        assert not held.lost
    assert store.lease("campaign:c") is None


def test_a_stalled_holder_learns_that_its_lease_was_taken_over(url):
    store = open_store(url)
    stalled = Lease(store, "campaign:c", ttl_s=0.2)
    stalled.acquire()  # no renewer: as if the process was suspended
    time.sleep(0.3)
    other = Lease(open_store(url), "campaign:c", ttl_s=60, wait_s=1)
    other.acquire()
    assert stalled.renew() is False and stalled.lost
    stalled.release()  # must not free the new holder's lease
    assert store.lease("campaign:c").owner == other.owner
    other.release()


def test_the_lease_of_an_agent_killed_on_this_machine_is_taken_at_once(url):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}:deadbeef"
    assert died_here(owner) and not died_here(f"{socket.gethostname()}:{os.getpid()}:x")
    assert not died_here(f"another-host:{dead.pid}:x")  # another machine's process is not judged from here
    store = open_store(url)
    assert store.try_lease("campaign:c", owner, ttl_s=3600, now=time.time()) is not None
    started = time.monotonic()
    with Lease(store, "campaign:c", wait_s=5) as lease:
        assert lease.record.token == 2
    assert time.monotonic() - started < 2  # not the hour the dead holder's lease had left


def test_agents_in_separate_processes_never_hold_the_lease_at_once(url, tmp_path):
    """Four processes, each its own store connection and working folder, each enter the
    lease 5 times and write enter/leave lines to one journal: no two inside at once."""
    journal = tmp_path / "journal"
    script = textwrap.dedent(f"""
        import os, sys, time
        from rankwright.agent.lease import Lease
        from rankwright.store import open_store
        store = open_store({url!r})
        for _ in range(5):
            with Lease(store, "campaign:shared", ttl_s=5):
                with open({str(journal)!r}, "a") as f:
                    f.write(f"enter {{os.getpid()}}\\n"); f.flush()
                time.sleep(0.05)
                with open({str(journal)!r}, "a") as f:
                    f.write(f"leave {{os.getpid()}}\\n"); f.flush()
    """)
    procs = []
    for i in range(4):
        folder = tmp_path / f"agent{i}"
        folder.mkdir()
        procs.append(subprocess.Popen([sys.executable, "-c", script], cwd=folder))
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = journal.read_text().split("\n")[:-1]
    assert len(lines) == 40
    for enter, leave in zip(lines[::2], lines[1::2]):
        assert enter.startswith("enter ") and leave == "leave " + enter.split()[1]
    assert open_store(url).lease("campaign:shared") is None


def test_wake_waits_for_an_agent_on_another_machine_and_status_names_it(tmp_path, monkeypatch):
    """Two working folders, one store: the second agent's file lock is its own, so only the
    lease in the store keeps it from acting while the first (on another host) holds it."""
    import yaml
    from typer.testing import CliRunner

    from rankwright.cli.main import app

    runner = CliRunner()
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.chdir(tmp_path)
    spec = {"name": "team", "base_config": {"data": {"source": "synthetic", "synthetic": {"rows": 10_000}},
                                              "train": {"epochs": 1}},
            "budget": {"amount": 1.0}, "baseline_seeds": 2,
            "changes": [{"name": "wider", "set": {"model.embedding_dim": 16}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    assert runner.invoke(app, ["plan", "c.yaml", "--skip-smoke"]).exit_code == 1  # stored, not approvable
    store = open_store()
    assert store.try_lease("campaign:team", "other-host:4242:abcd", ttl_s=2.0, now=time.time()) is not None
    status = runner.invoke(app, ["status", "c.yaml"])
    assert "agent acting now: other-host:4242:abcd" in status.output
    started = time.monotonic()
    woke = runner.invoke(app, ["wake", "c.yaml"])
    assert time.monotonic() - started >= 1.0  # it waited out the other agent's lease
    assert "another agent (other-host:4242:abcd) is acting on this campaign" in " ".join(woke.output.split())
    assert woke.exit_code == 2 and "no approved plan" in woke.output  # then acted (and found nothing approved)
    assert store.lease("campaign:team") is None  # and gave the lease up


def test_a_lease_an_outage_kept_from_being_released_does_not_block_this_process(url, monkeypatch):
    """`rankwright run` takes a lease per wake step: when the store was down as a step gave
    its lease up, the next step replaces that lease at once, not after its expiry."""
    store = open_store(url)
    first = Lease(store, "campaign:c", ttl_s=3600)
    first.acquire()

    def down(*args, **kwargs):
        raise OSError("the store is down")

    with monkeypatch.context() as m:
        m.setattr(store, "release_lease", down)
        first.release()
    assert store.lease("campaign:c").owner == first.owner  # still there: the release failed
    started = time.monotonic()
    with Lease(store, "campaign:c", wait_s=5) as second:
        assert second.record.token == 2
    assert time.monotonic() - started < 2  # not the hour the unreleased lease had left
    other = Lease(open_store(url), "campaign:c", ttl_s=3600)
    other.acquire()  # a live holder that released nothing is still waited for
    with pytest.raises(LeaseHeld):
        Lease(store, "campaign:c", wait_s=0.3).acquire()
    other.release()
