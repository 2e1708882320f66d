"""The budget ledger, as pure functions over what the store says.

Each run reserves its predicted cost when it is submitted and settles its measured cost
when it ends; the ledger is derived from the experiment rows every time (never kept as
a counter), so a crash between any two steps cannot make it drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable


class BudgetAction(str, Enum):
    CONTINUE = "continue"
    PAUSE = "pause"  # pause threshold reached: stop submitting, wait for a person
    HALT = "halt"  # hard cap reached: cancel what is still running


@dataclass(frozen=True)
class BudgetPolicy:
    """What the engineer approved. Amounts are in the campaign's unit (GPU- or CPU-hours)."""

    approved: float
    pause_fraction: float = 0.8
    hard_cap: float | None = None  # defaults to the approved budget

    def __post_init__(self) -> None:
        if self.approved <= 0:
            raise ValueError("the approved budget must be positive")
        if not 0 < self.pause_fraction <= 1:
            raise ValueError("pause_fraction must be in (0, 1]")
        if self.hard_cap is not None and self.hard_cap < self.approved:
            raise ValueError("the hard cap cannot be below the approved budget")

    @property
    def cap(self) -> float:
        return self.approved if self.hard_cap is None else self.hard_cap


@dataclass(frozen=True)
class LedgerEntry:
    """One experiment as the ledger sees it."""

    reserved: float
    actual: float | None  # None while the run has not ended (then with its earlier attempts' cost)
    prior: float = 0.0  # measured cost of earlier, failed attempts of a run still in flight

    @property
    def settled(self) -> bool:
        return self.actual is not None


@dataclass(frozen=True)
class Ledger:
    spent: float  # settled, measured cost
    reserved: float  # predicted cost of runs still in flight

    @property
    def committed(self) -> float:
        return self.spent + self.reserved

    def left(self, policy: BudgetPolicy) -> float:
        return policy.approved - self.committed


def ledger(entries: Iterable[LedgerEntry]) -> Ledger:
    spent = reserved = 0.0
    for entry in entries:
        if entry.settled:
            spent += entry.actual  # type: ignore[operator]
        else:
            spent += entry.prior
            reserved += entry.reserved
    return Ledger(spent=spent, reserved=reserved)


def can_reserve(policy: BudgetPolicy, current: Ledger, amount: float) -> tuple[bool, str]:
    """May a run with predicted cost `amount` be submitted now? (answer, reason)"""
    if amount < 0:
        return False, f"a predicted cost cannot be negative ({amount})"
    after = current.committed + amount
    if after > policy.approved:
        return False, (
            f"reserving {amount:.4g} would commit {after:.4g} of the approved {policy.approved:.4g} "
            f"(spent {current.spent:.4g}, reserved {current.reserved:.4g})"
        )
    return True, f"reserving {amount:.4g} leaves {policy.approved - after:.4g} of {policy.approved:.4g}"


def check_thresholds(policy: BudgetPolicy, current: Ledger) -> tuple[BudgetAction, str]:
    """Halt at the hard cap (measured spend), pause at the threshold (spend + reservations)."""
    if current.spent >= policy.cap:
        return BudgetAction.HALT, f"spent {current.spent:.4g} reached the hard cap {policy.cap:.4g}"
    threshold = policy.pause_fraction * policy.approved
    if current.committed >= threshold:
        return BudgetAction.PAUSE, (
            f"committed {current.committed:.4g} reached the pause threshold "
            f"{policy.pause_fraction:.0%} of {policy.approved:.4g}"
        )
    return BudgetAction.CONTINUE, f"committed {current.committed:.4g} of {policy.approved:.4g}"
