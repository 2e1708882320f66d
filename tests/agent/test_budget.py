"""Budget rules, tested without I/O (including a randomized never-overspend check)."""

import random

import pytest

from rankwright.agent.budget import (
    BudgetAction, BudgetPolicy, LedgerEntry, can_reserve, check_thresholds, ledger,
)


def test_ledger_is_derived_from_entries():
    current = ledger([LedgerEntry(2.0, 1.5), LedgerEntry(3.0, None), LedgerEntry(1.0, 0.0)])
    assert (current.spent, current.reserved, current.committed) == (1.5, 3.0, 4.5)
    assert current.left(BudgetPolicy(approved=10)) == 5.5


def test_a_reservation_that_would_pass_the_budget_is_refused_with_a_reason():
    policy = BudgetPolicy(approved=10)
    ok, reason = can_reserve(policy, ledger([LedgerEntry(4, 4), LedgerEntry(5, None)]), 2)
    assert not ok and "approved 10" in reason
    assert can_reserve(policy, ledger([LedgerEntry(4, 4), LedgerEntry(5, None)]), 1)[0]


def test_pause_at_the_threshold_and_halt_at_the_cap():
    policy = BudgetPolicy(approved=10, pause_fraction=0.8, hard_cap=12)
    assert check_thresholds(policy, ledger([LedgerEntry(7, 7)]))[0] is BudgetAction.CONTINUE
    assert check_thresholds(policy, ledger([LedgerEntry(7, 7), LedgerEntry(1, None)]))[0] is BudgetAction.PAUSE
    action, reason = check_thresholds(policy, ledger([LedgerEntry(10, 12.5)]))
    assert action is BudgetAction.HALT and "hard cap 12" in reason


@pytest.mark.parametrize("bad", [dict(approved=0), dict(approved=5, pause_fraction=1.5), dict(approved=5, hard_cap=4)])
def test_policy_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        BudgetPolicy(**bad)


@pytest.mark.parametrize("seed", range(20))
def test_committed_cost_never_passes_the_approved_budget(seed):
    """Random interleavings of submit and settle: reservations alone never overspend.
    (Measured costs may exceed predictions; that is what the hard cap is for.)"""
    rng = random.Random(seed)
    policy = BudgetPolicy(approved=rng.uniform(1, 20))
    entries: list[LedgerEntry] = []
    for _ in range(200):
        in_flight = [i for i, e in enumerate(entries) if not e.settled]
        if in_flight and rng.random() < 0.4:
            i = rng.choice(in_flight)
            entries[i] = LedgerEntry(entries[i].reserved, entries[i].reserved * rng.uniform(0.5, 1.0))
        else:
            amount = rng.uniform(0, 3)
            if can_reserve(policy, ledger(entries), amount)[0]:
                entries.append(LedgerEntry(amount, None))
        assert ledger(entries).committed <= policy.approved + 1e-9
