"""A portfolio: several campaigns (models, data) under one approved team budget.

"Three engineers, eight models": each campaign keeps its own spec, plan, phases and
proposal; the portfolio decides what they share.

- **Budget.** The team budget is split by priority when the portfolio is planned; each
  campaign's share becomes its own approved budget, so every guardrail of a campaign
  (pause, hard cap) holds inside the team's. What a campaign that ended left unspent
  moves to the live ones (`moved_budgets`) when a person approves the portfolio again.
- **Parallel slots.** The team's slots are shared at every wake (`slot_quota`): each
  campaign that still has work gets at least one slot while there are slots for all, the
  rest go by priority, and when there are fewer slots than campaigns the ones that have
  used least compute per unit of priority go first, so that none starves.
- **Waking.** A run that ends wakes the whole portfolio (`rankwright portfolio wake`), the
  least-served campaign first, so that a campaign waiting for a slot is woken when one
  frees up; no agent process is alive while runs train.

The policies here are pure functions; `cli/portfolio.py` applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rankwright.agent.spec import Budget, SpecError


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="the campaign's spec YAML (relative to the portfolio file)")
    priority: float = Field(1.0, gt=0, le=1000, description="its weight in the team's budget and slots")


class PortfolioSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    budget: Budget
    max_parallel: int = Field(2, ge=1, le=4096, description="runs in flight at once, all campaigns together")
    campaigns: tuple[Member, ...] = Field(min_length=1)


@dataclass(frozen=True)
class Standing:
    """What the slot policy needs to know of one campaign now."""

    name: str
    priority: float
    active: int  # runs in flight
    spent: float  # compute used so far (the ledger's unit)
    done: bool  # finished, halted or stopped: it wants no slot


def load_portfolio(path: Path) -> PortfolioSpec:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the portfolio ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a portfolio is a mapping with name, budget, max_parallel and campaigns")
    try:
        spec = PortfolioSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"{path}: {where}: {first['msg']}") from None
    seen: set[str] = set()
    for i, member in enumerate(spec.campaigns):
        file = member_path(path, member)
        if not file.is_file():
            raise SpecError(f"{path}: campaigns.{i}.spec: no campaign spec at {file}")
        if str(file) in seen:
            raise SpecError(f"{path}: campaigns.{i}.spec: {member.spec} is listed twice")
        seen.add(str(file))
    return spec


def member_path(portfolio_path: Path, member: Member) -> Path:
    return (Path(portfolio_path).resolve().parent / member.spec).resolve()


def budget_shares(priorities: Mapping[str, float], total: float) -> dict[str, float]:
    """The team budget split by priority."""
    weight = sum(priorities.values())
    return {name: total * p / weight for name, p in priorities.items()}


def slot_quota(standings: list[Standing], slots: int) -> dict[str, int]:
    """How many runs each campaign may have in flight now.

    Campaigns that are done get none. Among the others, each gets its priority's share
    of the slots rounded down, but never less than the runs it already has in flight (a
    run is never cancelled to make room) and at least one while there are slots for all;
    the slots left go one at a time to the campaign holding the fewest per unit of
    priority, then to the one that used the least compute per unit of priority. With
    fewer slots than campaigns, that gives the slots to the least-served, whose spend then
    grows: none starves.
    """
    live = [s for s in standings if not s.done]
    quota = {s.name: 0 for s in standings}
    if not live:
        return quota
    weight = sum(s.priority for s in live)
    floor_for_all = 1 if slots >= len(live) else 0
    for s in live:
        quota[s.name] = max(s.active, floor_for_all, math.floor(slots * s.priority / weight))
    left = slots - sum(quota.values())
    while left > 0:  # the next slot: fewest slots per unit of priority, then least compute per priority
        s = min(live, key=lambda s: (quota[s.name] / s.priority, s.spent / s.priority, s.name))
        quota[s.name] += 1
        left -= 1
    return quota


def standings_of(summaries: list[dict[str, Any]], portfolio: str) -> list[Standing]:
    """The portfolio's campaigns as the slot policy sees them, from the store's campaign
    summaries: a campaign that is not approved (finished, paused, ...) wants no slot."""
    return [Standing(r["name"], float(r["portfolio"].get("priority", 1.0)), r["in_flight"], r["spent"],
                     r["status"] != "approved")
            for r in summaries if r["portfolio"] and r["portfolio"].get("name") == portfolio]


@dataclass(frozen=True)
class Share:
    """What moving the team's budget needs to know of one campaign."""

    name: str
    priority: float
    budget: float  # its approved budget now
    spent: float  # settled cost so far
    ended: bool  # finished, halted or stopped: it will spend nothing more


def moved_budgets(shares: list[Share], total: float) -> dict[str, float]:
    """The new budgets of the campaigns still going, when some have ended inside their
    share: the team budget no campaign holds any more (an ended one holds what it spent, a
    live one its budget) is split among the live ones by priority. Nothing is taken from
    anyone, and the team's total is never exceeded. Empty when nothing is free to move or
    no campaign is live; applying the result and asking again gives nothing more."""
    live = [s for s in shares if not s.ended]
    free = total - sum(s.spent for s in shares if s.ended) - sum(s.budget for s in live)
    weight = sum(s.priority for s in live)
    # 6 decimals, as the shares are written; rounded down, so that the total still holds
    # (what rounding leaves over is not worth a person's approval)
    new = {s.name: math.floor((s.budget + free * s.priority / weight) * 1e6) / 1e6 for s in live} if live else {}
    return {s.name: new[s.name] for s in live if new[s.name] > s.budget + 1e-6}


def wake_order(standings: list[Standing]) -> list[str]:
    """The order a portfolio wake visits its campaigns: least compute per priority first."""
    return [s.name for s in sorted(standings, key=lambda s: (s.done, s.spent / s.priority, s.name))]


def member_spec(campaign: dict[str, Any], portfolio: PortfolioSpec, portfolio_path: Path, member: Member,
                budget: float) -> dict[str, Any]:
    """The campaign's spec as the portfolio runs it: its share of the team budget in the
    team's unit, the team's slots (its runs' threads are the team's share of the cores),
    and the portfolio it belongs to."""
    out = dict(campaign)
    own = dict(campaign.get("budget") or {})
    out["budget"] = {**own, "amount": round(budget, 6), "unit": portfolio.budget.unit}
    out.pop("max_parallel", None)
    out["max_parallel"] = portfolio.max_parallel
    out["portfolio"] = {"file": str(Path(portfolio_path).resolve()), "name": portfolio.name,
                        "priority": member.priority}
    return out
