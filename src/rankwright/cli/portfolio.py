"""`rankwright portfolio`: several campaigns under one team budget (see `agent/portfolio.py`).

Each member campaign runs from a spec the portfolio writes (`.rankwright/portfolios/<name>/`):
the engineer's own spec with its share of the team budget, the team's slots and a link to
the portfolio; the campaign commands (`status`, `report`, `pause`, ...) work on it as on any
other. Paths in it are made absolute from the engineer's spec folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

console = Console()
FOLDER = Path(".rankwright") / "portfolios"


def _members(path: Path) -> tuple[Any, list[tuple[Any, Path, Path]]]:
    """The portfolio and, per member, (member, engineer's spec, the spec the portfolio runs)."""
    from rankwright.agent.portfolio import load_portfolio, member_path

    portfolio = load_portfolio(path)
    folder = (FOLDER / portfolio.name).resolve()
    out = []
    for member in portfolio.campaigns:
        source = member_path(path, member)
        out.append((member, source, folder / f"{source.stem}.yaml"))
    return portfolio, out


def _absolute(document: dict, folder: Path) -> dict:
    """The spec's relative paths made absolute from its own folder (it is written elsewhere)."""
    out = dict(document)
    for key in ("target", "runbook"):
        value = out.get(key)
        if isinstance(value, str) and value != "builtin" and not Path(value).is_absolute():
            out[key] = str((folder / value).resolve())
    base = out.get("base_config")
    if isinstance(base, dict) and isinstance(base.get("data"), dict):
        data = dict(base["data"])
        for role in ("train", "valid", "test"):
            if isinstance(data.get(role), str) and data[role] and not Path(data[role]).is_absolute():
                data[role] = str((folder / data[role]).resolve())
        out["base_config"] = {**base, "data": data}
    return out


def plan(path: Path, skip_smoke: bool) -> None:
    import yaml

    from rankwright.agent.portfolio import budget_shares, member_spec
    from rankwright.agent.spec import SpecError, load_campaign
    from rankwright.cli import campaign as commands
    from rankwright.store import open_store

    portfolio, members = _members(path)
    documents = {}
    for member, source, _ in members:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "name" not in document:
            raise SpecError(f"{source}: not a campaign spec (a mapping with a name)")
        documents[source] = document
    names = [d["name"] for d in documents.values()]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: two member campaigns share a name; campaign names must differ")
    shares = budget_shares({str(s): m.priority for m, s, _ in members}, portfolio.budget.amount)
    written = []
    for member, source, effective in members:
        document = member_spec(_absolute(documents[source], source.parent), portfolio, path, member, shares[str(source)])
        effective.parent.mkdir(parents=True, exist_ok=True)
        effective.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        load_campaign(effective)  # every member valid before any is planned
        written.append(effective)
    blocked = 0
    for effective in written:
        console.rule(f"{effective.stem}", style="dim")
        try:
            commands.plan(effective, skip_smoke)
        except typer.Exit as exc:  # a blocked preflight exits 1 after saying why; the others still plan
            blocked += 1 if exc.exit_code else 0
    store = open_store()
    table = Table(title=f"portfolio {portfolio.name}: {len(members)} campaigns, {portfolio.budget.amount:g} "
                  f"{portfolio.budget.unit}, {portfolio.max_parallel} slots", box=box.SIMPLE_HEAD)
    for column in ("campaign", "priority", "budget", "estimate"):
        table.add_column(column, justify="left" if column == "campaign" else "right")
    total = 0.0
    for (member, source, effective), name in zip(members, names):
        campaign = store.campaign(name)
        latest = store.latest_plan(campaign.id) if campaign else None
        estimate = latest[2] if latest else 0.0
        total += estimate
        table.add_row(name, f"{member.priority:g}", f"{shares[str(source)]:.3g}", f"{estimate:.3g}")
    console.print(table)
    console.print(f"estimated {total:.3g} of {portfolio.budget.amount:g} {portfolio.budget.unit} in all"
                  + (f"; {blocked} campaign(s) blocked at preflight" if blocked else ""), highlight=False)
    console.print(f"next: rankwright portfolio approve {path}", highlight=False)


def approve(path: Path, by: str | None, yes: bool) -> None:
    """Approve every member's plan; once some have ended inside their share, approving again
    moves what they left unspent to the campaigns still going (`moved_budgets`)."""
    from rankwright.cli import campaign as commands

    portfolio, members = _members(path)
    for _, _, effective in members:
        _require_planned(path, effective)
    moved = _move_unspent(path, portfolio, members, by, yes)
    for _, _, effective in members:
        name = _name_of(effective)
        if name in moved:
            continue
        if name in _ended(portfolio.name):
            console.print(f"{name}: ended; nothing to approve", highlight=False)
            continue
        commands.approve(effective, by, yes)
    console.print(f"portfolio {portfolio.name}: {len(members)} campaigns approved under "
                  f"{portfolio.budget.amount:g} {portfolio.budget.unit}")
    console.print(f"next: rankwright portfolio run {path} --detach (or without --detach to watch it)")


ENDED = ("finished", "halted", "stopped")


def _ended(portfolio_name: str) -> set[str]:
    from rankwright.store import open_store

    return {r["name"] for r in open_store().campaign_summaries() if r["status"] in ENDED
            and r["portfolio"] and r["portfolio"].get("name") == portfolio_name}


def _move_unspent(path: Path, portfolio: Any, members: list, by: str | None, yes: bool) -> set[str]:
    """Offer the budget ended campaigns left unspent to the live ones, by priority; on a
    person's yes, write each new budget into its member's spec and approve it, holding the
    portfolio's lease so that no wake reads a spec written but not yet approved. Returns the
    campaigns whose budget moved."""
    import yaml

    from rankwright.agent.budget import LedgerEntry, ledger
    from rankwright.agent.lease import Lease, portfolio_lease_name
    from rankwright.agent.portfolio import Share, moved_budgets
    from rankwright.cli import campaign as commands
    from rankwright.store import open_store

    store = open_store()
    shares, files = [], {}
    for member, _, effective in members:
        campaign = store.campaign(_name_of(effective))
        if campaign is None or store.approval_of(store.latest_plan_id(campaign.id) or -1) is None:
            return set()  # a member never approved: this is the first approval, nothing has ended
        spent = ledger(LedgerEntry(e.reserved_cost, e.actual_cost, e.prior_cost)
                       for e in store.experiments(campaign.id)).spent
        shares.append(Share(campaign.name, member.priority, float(campaign.spec["budget"]["amount"]), spent,
                            campaign.status in ENDED))
        files[campaign.name] = effective
    moved = moved_budgets(shares, portfolio.budget.amount)
    if not moved:
        return set()
    table = Table(title=f"portfolio {portfolio.name}: unspent budget of ended campaigns, moved by priority",
                  box=box.SIMPLE_HEAD)
    for column in ("campaign", "state", "spent", "budget", "new budget"):
        table.add_column(column, justify="left" if column in ("campaign", "state") else "right")
    for share in shares:
        table.add_row(share.name, "ended" if share.ended else "live", f"{share.spent:.3g}", f"{share.budget:.3g}",
                      f"{moved[share.name]:.3g}" if share.name in moved else "-")
    console.print(table)
    extra = sum(moved[s.name] - s.budget for s in shares if s.name in moved)
    if not yes and not typer.confirm(f"Move {extra:.3g} {portfolio.budget.unit} to the {len(moved)} live "
                                     f"campaign(s), as {by or 'you'}?"):
        raise typer.Exit(code=1)
    with Lease(store, portfolio_lease_name(portfolio.name)):
        for name, amount in moved.items():
            document = yaml.safe_load(files[name].read_text(encoding="utf-8"))
            document["budget"] = {**document["budget"], "amount": amount}
            files[name].write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
            commands.approve(files[name], by, True)  # the person said yes to the move above
    console.print(f"moved {extra:.3g} {portfolio.budget.unit} left unspent by ended campaigns to "
                  f"{', '.join(moved)}", highlight=False)
    return set(moved)


def _require_planned(path: Path, effective: Path) -> None:
    from rankwright.agent.spec import SpecError

    if not effective.is_file():
        raise SpecError(f"portfolio {path} is not planned yet: `rankwright portfolio plan {path}` first")


def standings(store: Any, portfolio_name: str) -> list[Any]:
    from rankwright.agent.portfolio import standings_of

    return standings_of(store.campaign_summaries(), portfolio_name)


def wake(path: Path, detach: bool = True) -> list[tuple[str, Any]]:
    """One step of every member, the least-served first: each collects its ended runs and
    submits within its quota of the team's slots."""
    from rankwright.agent.portfolio import wake_order
    from rankwright.cli import campaign as commands
    from rankwright.store import open_store

    portfolio, members = _members(path)
    by_name = {}
    for _, _, effective in members:
        _require_planned(path, effective)
        by_name[_name_of(effective)] = effective
    from rankwright.agent.lease import Lease, portfolio_lease_name

    store = open_store()
    reports = []
    # one portfolio step at a time (runs ending together each start one): every quota is
    # then computed from what the step before it submitted, and the team's slots hold
    with Lease(store, portfolio_lease_name(portfolio.name)):
        order = wake_order(standings(store, portfolio.name))
        order += [n for n in by_name if n not in order]
        for name in order:
            effective = by_name.get(name)
            if effective is None:
                continue
            reports.append((name, commands._wake_retrying(effective, None, detach=detach and _on_exit_wanted(),
                                                                 portfolio_held=True)))
    return reports


def _on_exit_wanted() -> bool:
    """Runs wake the portfolio when they end unless RANKWRIGHT_WAKE_ON_EXIT=0 (cron, tests)."""
    import os

    return os.environ.get("RANKWRIGHT_WAKE_ON_EXIT", "1") != "0"


def _name_of(effective: Path) -> str:
    import yaml

    return str(yaml.safe_load(effective.read_text(encoding="utf-8"))["name"])


def wake_step(path: Path) -> None:
    reports = wake(path, detach=True)
    for name, report in reports:
        console.print(f"{name}: {report.state}; collected {len(report.collected)}, submitted "
                      f"{len(report.submitted)}", highlight=False)
    live = [n for n, r in reports if r.state not in ("finished", "halted", "stopped")]
    console.print(f"next: rankwright portfolio status {path}" if live else
                  f"all campaigns ended; rankwright portfolio status {path}, then a report per campaign")


def run(path: Path, detach: bool, interval_s: float) -> None:
    """Stay up until every member has ended (or, detached, start them and leave: each run
    wakes the portfolio when it ends)."""
    from rankwright.agent.doorbell import Alarm, doorbell_path
    from rankwright.agent.spec import load_campaign
    from rankwright.cli import campaign as commands

    if detach:
        wake_step(path)
        console.print("detached: each run wakes the portfolio when it ends; no agent process stays up")
        return
    _, members = _members(path)
    watched = []
    for _, _, effective in members:
        _require_planned(path, effective)
        spec, _ = load_campaign(effective)
        watched += [doorbell_path(commands._root(spec), spec.name).parent, *commands._executor(spec).change_paths()]
    with Alarm(sorted(set(watched)), tick_s=min(1.0, interval_s)) as alarm:
        while True:
            reports = wake(path, detach=False)
            for name, report in reports:
                for line in report.collected:
                    console.print(f"{name}: collected {line}", highlight=False)
                for key in report.submitted:
                    console.print(f"{name}: submitted {key}", highlight=False)
            live = [n for n, r in reports if r.state not in ("finished", "halted", "stopped")]
            if not live or all(r.state == "paused" for n, r in reports if n in live):
                status(path)
                return
            alarm.wait(interval_s)


def status(path: Path) -> None:
    """One line per campaign: state, phase, spend against its share, runs in flight, and the
    best arm measured at full fidelity against the baseline."""
    from rankwright.agent.budget import LedgerEntry, ledger
    from rankwright.agent.portfolio import slot_quota
    from rankwright.store import open_store

    portfolio, members = _members(path)
    store = open_store()
    now = standings(store, portfolio.name)
    quota = slot_quota(now, portfolio.max_parallel)
    table = Table(title=f"portfolio {portfolio.name}", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("campaign", "state", "phase", "spent/budget", "runs", "best vs baseline"):
        table.add_column(column, justify="right" if column in ("spent/budget", "runs") else "left",
                         no_wrap=column not in ("campaign", "best vs baseline"))
    spent_all = 0.0
    for _, _, effective in members:
        if not effective.is_file():
            continue
        name = _name_of(effective)
        campaign = store.campaign(name)
        if campaign is None:
            table.add_row(name, "not planned", "-", "-", "-", "-")
            continue
        experiments = store.experiments(campaign.id)
        current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost, e.prior_cost) for e in experiments)
        spent_all += current.spent
        revisions = store.revisions(campaign.id)
        flying = sum(1 for e in experiments if e.status.value in ("submitted", "running"))  # not queued intents
        table.add_row(name, campaign.status, revisions[-1].phase if revisions else "validation",
                      f"{current.spent:.3g}/{campaign.spec['budget']['amount']:.3g}",
                      f"{flying}/{quota.get(name, 0)}", _best(name, experiments, campaign.spec))
    console.print(table)
    console.print(f"team: spent {spent_all:.3g} of {portfolio.budget.amount:g} {portfolio.budget.unit}; "
                  f"runs: in flight/quota of {portfolio.max_parallel} slots", highlight=False)


def _best(name: str, experiments: list[Any], spec: dict) -> str:
    """The best arm's mean objective at full fidelity against the baseline's, in percent; a
    glance, not a decision (the campaign's own analysis decides). When every arm is worse,
    it says so rather than name the least bad one as "best"."""
    from collections import defaultdict

    arms: dict[str, list[float]] = defaultdict(list)
    for e in experiments:
        if e.status.value == "succeeded" and abs(e.fidelity - 1.0) < 1e-9 and e.metrics:
            value = e.metrics.get("objective")
            if isinstance(value, (int, float)):
                arms[e.idempotency_key.split("/")[1]].append(float(value))
    base = arms.pop("baseline", [])
    if not base:
        return "-"
    sign = 1.0 if spec.get("objective", {}).get("direction", "minimize") == "minimize" else -1.0
    mean = {arm: sum(v) / len(v) for arm, v in arms.items() if v}
    if not mean:
        return "baseline only"
    base_mean = sum(base) / len(base)
    arm = min(mean, key=lambda a: sign * mean[a])
    change = (mean[arm] - base_mean) / abs(base_mean) * 100 if base_mean else 0.0
    if sign * (mean[arm] - base_mean) >= 0:  # not one arm beat the baseline's mean
        return f"none better (closest {change:+.2f}%)"
    return f"{change:+.2f}% {arm}"
