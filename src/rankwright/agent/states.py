"""A campaign's life as an Enum with guarded moves: every change of state names who made
it and is refused (with the reason) when it is not allowed from where the campaign is."""

from __future__ import annotations

from enum import Enum


class CampaignStatus(str, Enum):
    DRAFT = "draft"  # planned, not approved
    APPROVED = "approved"  # approved; the agent may submit
    PAUSED = "paused"  # a person, the pause threshold or a guardrail stopped submissions
    HALTED = "halted"  # the hard cap was reached; runs were cancelled
    STOPPED = "stopped"  # a person ended it
    FINISHED = "finished"  # the phases ended; the proposal can be written

    @property
    def is_terminal(self) -> bool:
        return self in (CampaignStatus.HALTED, CampaignStatus.STOPPED, CampaignStatus.FINISHED)

    @property
    def may_submit(self) -> bool:
        return self is CampaignStatus.APPROVED


class TransitionError(ValueError):
    """A move the campaign's state does not allow; the message says from where to where."""


# (from, to) -> who may make it
_MOVES: dict[tuple[CampaignStatus, CampaignStatus], frozenset[str]] = {
    (CampaignStatus.DRAFT, CampaignStatus.APPROVED): frozenset({"person"}),
    (CampaignStatus.APPROVED, CampaignStatus.APPROVED): frozenset({"person"}),  # a re-approval
    (CampaignStatus.PAUSED, CampaignStatus.APPROVED): frozenset({"person"}),  # resume, or approve a new plan
    (CampaignStatus.APPROVED, CampaignStatus.PAUSED): frozenset({"person", "agent"}),
    (CampaignStatus.APPROVED, CampaignStatus.HALTED): frozenset({"agent"}),
    (CampaignStatus.PAUSED, CampaignStatus.HALTED): frozenset({"agent"}),
    (CampaignStatus.APPROVED, CampaignStatus.FINISHED): frozenset({"agent"}),
    (CampaignStatus.DRAFT, CampaignStatus.STOPPED): frozenset({"person"}),
    (CampaignStatus.APPROVED, CampaignStatus.STOPPED): frozenset({"person"}),
    (CampaignStatus.PAUSED, CampaignStatus.STOPPED): frozenset({"person"}),
}


def parse_status(value: str) -> CampaignStatus:
    """Stores written before the Enum said "running" for an approved campaign."""
    return CampaignStatus.APPROVED if value == "running" else CampaignStatus(value)


def move(current: CampaignStatus | str, new: CampaignStatus, by: str) -> CampaignStatus:
    """The new status, or TransitionError naming why the move is refused."""
    current = parse_status(current) if isinstance(current, str) else current
    allowed = _MOVES.get((current, new))
    if allowed is None or by not in allowed:
        who = "" if allowed is None else f" by the {by} (only by: {', '.join(sorted(allowed))})"
        raise TransitionError(f"a campaign that is {current.value} cannot become {new.value}{who}")
    return new
