"""One agent acts on a campaign at a time, across machines: a lease kept in the store.

A file lock keeps two agents on one machine apart, but not two machines sharing one
PostgreSQL store (team mode). The lease row does: an agent takes it before a wake step,
renews it from a thread while the step runs, and gives it up after. An agent that dies
holding it (SIGKILL, a lost machine) blocks the campaign only until its lease expires.

Holders compare expiry times on their own clocks, so the machines' clocks must agree to
well within the lease time (NTP does). An agent stalled past its lease (a suspended
laptop) may find it taken over: it then learns so (`lost`) at its next renewal, and what
it does meanwhile is kept safe by the idempotency keys (a key never starts a second run)
and the store's unique rows, not by the lease.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Callable

from rankwright.store import Store
from rankwright.store.records import LeaseRecord

TTL_S = 60.0  # how long a lease outlives its last renewal
POLL_S = (0.05, 2.0)  # first and longest wait between tries for a held lease
# Leases this process gave up but could not delete (the store was down at the time): its
# next lease of the same name replaces them instead of waiting out their expiry.
_UNRELEASED: set[str] = set()


def lease_ttl_s() -> float:
    return float(os.environ.get("RANKWRIGHT_LEASE_TTL_S", TTL_S))


def agent_owner() -> str:
    """Who this agent is, as a person reading `status` wants to see it: host, process, and
    a random part so that two leases of one process are told apart."""
    return f"{agent_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def agent_host() -> str:
    """This machine's name in leases: RANKWRIGHT_AGENT_HOST when machines share a host name
    (containers), else the host name. Processes are only judged dead on the same host."""
    return os.environ.get("RANKWRIGHT_AGENT_HOST") or socket.gethostname()


def died_here(owner: str) -> bool:
    """Whether the lease's holder was an agent on this machine that no longer runs (killed
    with SIGKILL, say): then its lease need not be waited out. A reused process id reads
    as alive, which only means waiting for the expiry."""
    from rankwright.executors._files import pid_alive

    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != agent_host():
        return False
    return int(parts[1]) != os.getpid() and not pid_alive(int(parts[1]), None)


def campaign_lease_name(campaign: str) -> str:
    return f"campaign:{campaign}"


def portfolio_lease_name(portfolio: str) -> str:
    """One portfolio step at a time: its members' quotas of the team's slots are computed
    from what the step before submitted. A member's own wake takes it too."""
    return f"portfolio:{portfolio}"


class LeaseHeld(RuntimeError):
    """The lease is held by another agent and the wait ran out."""


class Lease:
    """`with Lease(store, name):` waits for the lease, keeps it renewed while the block
    runs, and gives it up after. `wait_s=None` waits as long as it takes."""

    def __init__(self, store: Store, name: str, *, ttl_s: float | None = None, wait_s: float | None = None,
                 owner: str | None = None, clock: Callable[[], float] = time.time,
                 on_wait: Callable[[LeaseRecord], None] | None = None) -> None:
        self.store, self.name = store, name
        self.ttl_s = lease_ttl_s() if ttl_s is None else ttl_s
        self.wait_s, self.clock, self.on_wait = wait_s, clock, on_wait
        self.owner = owner or agent_owner()
        self.record: LeaseRecord | None = None
        self.lost = False  # another agent took it over while this one held it
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> LeaseRecord:
        deadline = None if self.wait_s is None else time.monotonic() + self.wait_s
        pause, told = POLL_S[0], False
        dead: str | None = None
        while True:
            record = self.store.try_lease(self.name, self.owner, self.ttl_s, self.clock(), replacing=dead)
            if record is not None:
                _UNRELEASED.discard(dead or "")
                self.record = record
                return record
            holder = self.store.lease(self.name)
            dead = holder.owner if holder is not None and (holder.owner in _UNRELEASED
                                                           or died_here(holder.owner)) else None
            if dead is not None:
                continue  # its holder was killed on this machine, or is this process's own
                # lease that an outage kept from being released: no need to wait for the expiry
            if holder is not None and not told and self.on_wait is not None:
                self.on_wait(holder)
                told = True
            if deadline is not None and time.monotonic() >= deadline:
                who = f"{holder.owner} until {holder.expires_at - self.clock():.0f} s from now" if holder else "another agent"
                raise LeaseHeld(f"{self.name} is held by {who}")
            time.sleep(pause)
            pause = min(POLL_S[1], pause * 2)

    def renew(self) -> bool:
        """Extend the lease; False (and `lost`) when another agent took it over."""
        try:
            record = self.store.try_lease(self.name, self.owner, self.ttl_s, self.clock())
        except Exception:  # noqa: BLE001 - a store outage: the next renewal tries again
            return True
        if record is None or (self.record is not None and record.token != self.record.token):
            self.lost = True
            return False
        self.record = record
        return True

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self.record is not None:
            try:
                if not self.store.release_lease(self.name, self.owner):
                    self.lost = True
            except Exception:  # noqa: BLE001 - unreleased, it expires by itself (or this process replaces it)
                _UNRELEASED.add(self.owner)
            self.record = None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if not self.renew():
                return

    def __enter__(self) -> Lease:
        self.acquire()
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease {self.name}", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
