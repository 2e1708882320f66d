"""The campaign commands: `plan`, `approve`, `status`, `wake`, `run`, `pause`, `resume`,
`stop`. Nothing is launched before approval; every person's act is recorded as an event and
rings the campaign's doorbell, so a staying-up `run` reacts at once."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _load(spec_path: Path):
    from rankwright.agent.spec import load_campaign

    return load_campaign(spec_path)


def _root(spec) -> Path:
    """The campaign's working folder: the first allowed path (runs, locks, doorbell)."""
    return Path(spec.allowed_paths[0]).resolve()


def _executor(spec, store=None):
    """The campaign's executor: local processes under its runs folder, or a cluster's jobs
    reporting to the store (`executor:` in the spec)."""
    from rankwright.executors import LocalExecutor

    options = spec.executor
    slots = spec.max_parallel
    if spec.portfolio is not None:  # the team's slots, shared now: this campaign's quota of them
        from rankwright.store import open_store

        store = store or open_store()
        return _Quota(_executor(spec.model_copy(update={"portfolio": None}), store), store, spec.name,
                      portfolio_quota(store, spec))
    if options is None or options.kind == "local":
        return LocalExecutor(_root(spec) / "runs", max_parallel=slots)
    import sys

    from rankwright.store import open_store

    common = {"scope": f"{spec.name}/", "python": options.python or sys.executable,
              "cpus_per_run": options.cpus_per_run, "memory_mb": options.memory_mb,
              "time_limit_s": spec.run_timeout_s, "heartbeat_s": options.heartbeat_s}
    store = store or open_store()
    if options.kind == "slurm":
        from rankwright.executors.slurm import SlurmExecutor

        return SlurmExecutor(store, slots, partition=options.partition, account=options.account,
                             extra_args=list(options.extra_args), log_dir=options.log_dir, **common)
    from rankwright.executors.ray import RayExecutor

    return RayExecutor(store, slots, address=options.address, **common)


def portfolio_wake_command(portfolio_path: Path) -> tuple[str, ...]:
    import sys

    return (sys.executable, "-m", "rankwright", "portfolio", "wake", str(Path(portfolio_path).resolve()),
            "--workdir", str(Path.cwd().resolve()))


def portfolio_quota(store, spec) -> int:
    """How many runs this portfolio campaign may have in flight now (`slot_quota`)."""
    from rankwright.agent.portfolio import slot_quota, standings_of

    standings = standings_of(store.campaign_summaries(), spec.portfolio.name)
    if not any(s.name == spec.name for s in standings):
        return spec.max_parallel
    return slot_quota(standings, spec.max_parallel).get(spec.name, 0)


class _Quota:
    """A portfolio member's executor: the team's executor, which starts a run only while the
    campaign has fewer runs in flight than its quota of the team's slots."""

    def __init__(self, inner, store, campaign: str, quota: int) -> None:
        self._inner, self._store, self._campaign, self.quota = inner, store, campaign, quota

    def submit(self, key, spec):
        from rankwright.executors import ExecutorFull

        if self._inner.find(key) is None:  # a key already submitted is answered as before
            flying = next((r["in_flight"] for r in self._store.campaign_summaries() if r["name"] == self._campaign), 0)
            if flying >= self.quota:
                raise ExecutorFull(f"{flying} runs in flight, this campaign's share of the portfolio's slots "
                                   f"is {self.quota} now")
        return self._inner.submit(key, spec)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _ring(spec, why: str) -> None:
    from rankwright.agent.doorbell import ring

    root = _root(spec)
    root.mkdir(parents=True, exist_ok=True)
    ring(root, spec.name, why)


def _campaign(store, spec):
    existing = store.campaign(spec.name)
    if existing is None:
        return store.create_campaign(spec.name, spec.model_dump(mode="json"))
    if _stored(existing) != spec.model_dump(mode="json"):
        from rankwright.agent.spec import SpecError

        raise SpecError(f"campaign {spec.name!r} already exists in the store with a different spec; "
                        "give the new spec another name")
    return existing


def plan(spec_path: Path, skip_smoke: bool) -> None:
    from rankwright.agent.planning import first_round_check, make_plan, plan_document, preflight
    from rankwright.store import open_store

    spec, target = _load(spec_path)  # every user error is raised before the store is opened
    items = preflight(spec, target, smoke=not skip_smoke)
    store = open_store()
    ranking = None
    if spec.hypotheses.top_k:
        from rankwright.agent.learning import ResearchAgent

        ranking, notes = ResearchAgent(use_llm=spec.hypotheses.use_llm).rank(spec, target, store, _root(spec))
        for note in notes:
            console.print(f"[dim]{note}[/]", highlight=False)
    planned_notes: list[str] = []
    experiments = make_plan(spec, target, ranking, planned_notes)
    for note in planned_notes:
        console.print(note, highlight=False)
    items.append(first_round_check(spec, experiments))
    document = plan_document(spec, items, experiments, target)
    campaign = _campaign(store, spec)
    if ranking is not None:
        from rankwright.agent.learning import record_ranking

        record_ranking(store, campaign.id, ranking)
    plan_id = store.record_plan(campaign.id, document, document["estimated_hours"])
    store.append_event(campaign.id, "plan", f"plan {plan_id}: {len(experiments)} experiments, "
                       f"{document['estimated_hours']:.3g} {spec.budget.unit} estimated, preflight "
                       f"{'passed' if document['preflight_ok'] else 'failed'}", plan_id=plan_id)

    checks = Table(title=f"preflight: {spec.name}")
    for column in ("check", "", "detail", "how to fix"):
        checks.add_column(column, overflow="fold")
    for item in items:
        state = "[yellow]warning[/]" if item.ok and item.warning else ("[green]ok[/]" if item.ok else "[red]FAILED[/]")
        checks.add_row(item.name, state, item.detail, item.fix)
    console.print(checks)
    table = Table(title=f"plan {plan_id}: the first validation round")
    for column in ("experiment", "source", "seed", "changes", "predicted " + spec.budget.unit):
        table.add_column(column, overflow="fold")
    for e in experiments:
        table.add_row(e.name, e.source, str(e.seed), ", ".join(f"{k}={v}" for k, v in e.changes.items()) or "-",
                      f"{e.predicted_hours:.3g}")
    console.print(table)
    _print_strategy(spec, document)
    console.print(f"estimated {document['estimated_hours']:.3g} of {spec.budget.amount:g} {spec.budget.unit} "
                  f"approved-to-be (the agent commits at most {document['plannable']:.3g} alone: the pause threshold)")
    if not document["preflight_ok"]:
        console.print("[red]preflight failed: approval is blocked until `rankwright plan` passes[/]")
        raise typer.Exit(code=1)
    console.print(f"next: rankwright approve {spec_path}")


def _print_strategy(spec, document) -> None:
    """What the engineer approves besides the first round: the phases' shares and
    estimates, fidelities, seeds, the search space and the statistics."""
    from rankwright.agent.spec import SearchRange

    st = document["strategy"]
    table = Table(title="strategy: the agent re-plans alone inside it, and pauses to ask before leaving it")
    for column in ("phase", "share", "estimate " + spec.budget.unit, "what it does"):
        table.add_column(column, overflow="fold")
    fidelity = "low" if st["low_fidelity"] else "full"
    what = {"validation": ("the baseline's seeds only (tuner first: the hypotheses are the tuner's first "
                           "trials)") if st.get("tuner_first") else
                          (f"rounds of {st['round_size']} hypotheses at {fidelity} fidelity, "
                           f"{st['rounds']} rounds at most"),
            "combination": ("fidelity check, then " if st["low_fidelity"] else "")
                           + "greedy merge of the promoted changes",
            "exploitation": f"expert-seeded Optuna {st['sampler'].upper()} while the budget lasts (at most "
                            f"{st['trials']} trials; stops after {st.get('patience', st['trials'])} in a row "
                            f"without a gain over {st['margin']:.2%}); confirmation over "
                            f"{st['confirmation_seeds']} seeds"}
    for phase, hours in document["phases"].items():
        table.add_row(phase, f"{st['phases'][phase]:.0%}", f"{hours:.3g}", what[phase])
    console.print(table)
    saving = st.get("low_fidelity_saving")
    low = ", ".join(f"{k}={v}" for k, v in st["low_fidelity"].items()) or (
        "none (tuner first: the baseline's seeds run at full fidelity)" if st.get("tuner_first") else
        "none (validation at full fidelity" + (f": a low-fidelity run would save only {saving:.0%} of a full one)"
                                               if saving is not None else ")"))
    seeds = st["seeds"]
    console.print(f"low fidelity: {low}; seeds: baseline {seeds['baseline']}, hypothesis {seeds['validation']}, "
                  f"full fidelity {seeds['full']}, confirmation {seeds['confirmation']}", highlight=False)
    console.print(f"verdicts: paired t-tests, {st['correction'].upper()} correction, alpha {st['alpha']:g}; "
                  f"a technique is retired only below a gain of {st['margin']:.2%}", highlight=False)
    ship = st.get("ship", "expected")
    console.print("ships (decided on validation, never on test): " + (
        "the arm with the best expected gain over the baseline, with the probability that it beats it"
        if ship == "expected" else "only an arm whose paired 95% validation interval is wholly a gain"),
        highlight=False)
    space = "; ".join(f"{k} {SearchRange.model_validate(r).shown()}" for k, r in st["search_space"].items()) or "none"
    console.print(f"exploitation search space: {space}", highlight=False)


# What an engineer may change in an approved campaign's spec by approving it again; anything
# else changes what the campaign measures, and is a new campaign.
RE_APPROVABLE = ("budget",)


def _stored(campaign) -> dict:
    """The campaign's approved spec as this version reads it (`stored_as_now`)."""
    from rankwright.agent.spec import stored_as_now

    return stored_as_now(campaign.spec)


def spec_changes(stored: dict, current: dict) -> list[str]:
    """Top-level spec keys whose values differ, in words."""
    return [f"{key}: {stored.get(key)!r} -> {current.get(key)!r}" for key in sorted(set(stored) | set(current))
            if stored.get(key) != current.get(key)]


def check_spec_unchanged(spec, campaign, spec_path: Path) -> None:
    """A wake acts only on the spec that was approved: a spec file edited since then is
    refused, with the way to get the change approved."""
    from rankwright.agent.spec import SpecError

    changed = spec_changes(_stored(campaign), spec.model_dump(mode="json"))
    if changed:
        raise SpecError(f"{spec_path}: the spec changed since campaign {spec.name!r} was approved ("
                        + "; ".join(changed) + f"). A budget change takes `rankwright approve {spec_path}`; "
                        "any other change is a new campaign (give it another name)")


def approve(spec_path: Path, by: str | None, yes: bool) -> None:
    from rankwright.agent.spec import SpecError
    from rankwright.store import open_store

    spec, _ = _load(spec_path)
    store = open_store()
    campaign = store.campaign(spec.name)
    latest = None if campaign is None else store.latest_plan(campaign.id)
    if latest is None:
        raise SpecError(f"campaign {spec.name!r} has no plan yet: run `rankwright plan {spec_path}` first")
    plan_id, document, estimate = latest
    current, stored = spec.model_dump(mode="json"), _stored(campaign)
    changed = [k for k in set(stored) | set(current) if stored.get(k) != current.get(k)]
    if [k for k in changed if k not in RE_APPROVABLE]:
        raise SpecError(f"{spec_path}: only {', '.join(RE_APPROVABLE)} may change in an approved campaign; "
                        "changed: " + "; ".join(spec_changes({k: stored.get(k) for k in changed},
                                                              {k: current.get(k) for k in changed})))
    if not document["preflight_ok"]:
        raise SpecError(f"plan {plan_id} failed its preflight; fix it and run `rankwright plan {spec_path}` again")
    who = by or getpass.getuser()
    earlier = store.approval_of(plan_id)
    if earlier is not None and not changed and campaign.status in ("approved", "finished"):
        console.print(f"plan {plan_id} of {spec.name!r} is already approved (by {earlier.get('approved_by', '?')}, "
                      f"{earlier.get('budget', spec.budget.amount):g} {spec.budget.unit}); nothing changed. "
                      f"next: rankwright run {spec_path}", highlight=False)
        return
    if estimate > spec.budget.amount:
        console.print(f"[yellow]warning:[/] the plan's estimate ({estimate:.3g} {spec.budget.unit}) is above the "
                      f"budget ({spec.budget.amount:g}): the campaign will pause when the budget runs short. Raise "
                      "budget.amount in the spec, or approve knowing that", highlight=False)
    if not yes and not typer.confirm(
        f"Approve plan {plan_id} of {spec.name!r}: budget {spec.budget.amount:g} {spec.budget.unit} "
        f"(estimate {estimate:.3g}), as {who}?"
    ):
        raise typer.Exit(code=1)
    from rankwright.agent.states import CampaignStatus, TransitionError, move

    try:
        new = move(campaign.status, CampaignStatus.APPROVED, by="person")
    except TransitionError as exc:
        raise SpecError(f"campaign {spec.name!r}: {exc}") from None
    if changed:  # a budget raised (or lowered) by the engineer, e.g. after a guardrail pause
        store.set_campaign_spec(campaign.id, current)
        store.append_event(campaign.id, "approve", f"{who} approved a spec change: "
                           + "; ".join(spec_changes(stored, current)), plan_id=plan_id)
    store.record_approval(plan_id, who, spec.budget.amount, spec.budget.unit, via_yes_flag=yes)
    store.set_campaign_status(campaign.id, new.value)
    store.append_event(campaign.id, "approve", f"{who} approved plan {plan_id} with {spec.budget.amount:g} "
                       f"{spec.budget.unit}" + (" (--yes, no prompt)" if yes else ""), plan_id=plan_id)
    _ring(spec, f"approved by {who}")
    console.print(f"plan {plan_id} approved by {who}: {spec.budget.amount:g} {spec.budget.unit}")


def status(spec_path: Path) -> None:
    from rankwright.agent.budget import BudgetPolicy, LedgerEntry, ledger
    from rankwright.agent.spec import SpecError
    from rankwright.store import open_store

    spec, _ = _load(spec_path)
    store = open_store()
    campaign = store.campaign(spec.name)
    if campaign is None:
        raise SpecError(f"campaign {spec.name!r} is not in the store: run `rankwright plan {spec_path}` first")
    experiments = store.experiments(campaign.id)
    current = ledger(LedgerEntry(e.reserved_cost, e.actual_cost, e.prior_cost) for e in experiments)
    policy = BudgetPolicy(spec.budget.amount, spec.budget.pause_threshold, spec.budget.hard_cap)
    revisions = store.revisions(campaign.id)
    phase = revisions[-1].phase if revisions else "validation"
    flying = sum(1 for e in experiments if not e.status.is_terminal)
    state = "running" if campaign.status == "approved" and flying else campaign.status
    console.print(f"campaign {spec.name}: {state}, phase {phase}, {len(experiments)} experiments "
                  f"({flying} in flight), {len(revisions)} re-plans", highlight=False)
    console.print(f"budget ({spec.budget.unit}): spent {current.spent:.4g}, reserved {current.reserved:.4g}, "
                  f"left {current.left(policy):.4g} of {policy.approved:g}", highlight=False)
    latest = store.latest_plan(campaign.id)
    if latest is not None:
        estimates = latest[1].get("phases", {})
        table = Table(title="estimate at approval against actual")
        for column in ("phase", "estimate", "spent", "in flight", "error"):
            table.add_column(column, overflow="fold")
        for name, estimate in estimates.items():
            rows = [e for e in experiments if e.phase == name]
            spent = sum(e.actual_cost or 0.0 for e in rows)
            flying = sum(e.reserved_cost for e in rows if e.actual_cost is None)
            error = f"{(spent - estimate) / estimate:+.0%}" if estimate and not flying and spent else "-"
            table.add_row(name, f"{estimate:.3g}", f"{spent:.3g}", f"{flying:.3g}", error)
        console.print(table)
        first = {f"{spec.name}/{p['name']}/seed{p['seed']}" for p in latest[1].get("experiments", ())}
        measured = [e for e in experiments if e.idempotency_key in first and e.actual_cost and e.status.value
                    == "succeeded"]
        if measured and estimates:
            ratio = sum(e.actual_cost for e in measured) / sum(e.reserved_cost for e in measured)
            console.print(f"the first round's {len(measured)} measured runs cost x{ratio:.2f} their estimate: "
                          f"the whole campaign is now projected at {ratio * sum(estimates.values()):.3g} "
                          f"{spec.budget.unit}", highlight=False)
    _show_failures(experiments, spec.budget.unit)
    _show_lease(store, spec.name)

    executor = _executor(spec, store)
    ends = getattr(executor, "unhanded_ends", None)  # a local executor's record of ends that reached no agent
    unhanded = [k for k in (ends(f"{spec.name}/") if ends else [])
                if any(e.idempotency_key == k.split("#")[0] and not e.status.is_terminal for e in experiments)]
    if unhanded:
        console.print(f"[yellow]{len(unhanded)} run end(s) did not reach the agent[/] (their wake kept failing: "
                      f"{', '.join(unhanded[:3])}): run `rankwright wake {spec_path}` (or a cron wake) to go on",
                      highlight=False)
    for r in revisions[-3:]:
        console.print(f"  revision {r.number} ({r.phase}, {r.body.get('step', '')}): {r.reason}", highlight=False)
    for event in store.events(campaign.id)[-5:]:
        console.print(f"  {event.time:%Y-%m-%d %H:%M:%S} {event.kind}: {event.message}", highlight=False)
    if campaign.status == "finished":
        console.print(f"next: rankwright report {spec_path}")
    elif campaign.status == "paused":
        console.print(f"next: read the last event, then rankwright resume {spec_path} (or stop)")


def list_campaigns() -> None:
    from rankwright.store import database_url, open_store

    url = database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        console.print(f"no store here ({url.removeprefix('sqlite:///')} does not exist): run `rankwright` where "
                      "the campaigns were planned, or set RANKWRIGHT_DB", highlight=False)
        return
    rows = open_store().campaign_summaries()
    if not rows:
        console.print(f"no campaigns in the store at {database_url()}; next: rankwright plan <spec.yaml>",
                      highlight=False)
        return
    table = Table(title=f"campaigns ({len(rows)})")
    for column, justify in (("name", "left"), ("status", "left"), ("runs", "right"), ("spent", "right"),
                            ("began", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["status"], str(r["experiments"]), f"{r['spent']:.3g}", f"{r['created_at']:%Y-%m-%d}")
    console.print(table)
    console.print("next: rankwright status <spec.yaml> for one of them", highlight=False)


def _show_failures(experiments: list, unit: str) -> None:
    """What the runbook found and did: one row per experiment that failed at least once,
    the compute the failures cost, and what waits for a person (with its log excerpt)."""
    failed = [e for e in experiments if e.failure]
    if not failed:
        return
    table = Table(title="failures and flags (the runbook's triage)")
    for column in ("experiment", "kind", "tries", "outcome"):
        table.add_column(column, overflow="fold")
    for e in failed:
        outcome = (f"ended {e.failure.get('ended_as', 'failed')}" if e.status.value == "failed"
                   else "flagged, result kept" if e.failure.get("kept")
                   else "remedied" if e.status.value == "succeeded"
                   else f"{e.failure.get('action', 'retry')} queued" if e.failure.get("history") else "cancelling")
        table.add_row(e.idempotency_key, e.failure.get("kind", "?"), str(e.attempt), outcome)
    console.print(table)
    lost = sum(h.get("cost", 0.0) for e in failed for h in e.failure.get("history", ()))
    console.print(f"compute used by failed attempts: {lost:.4g} {unit} (charged to the budget)", highlight=False)
    for e in failed:
        if e.failure.get("ended_as") == "quarantined":
            excerpt = (e.failure.get("excerpt") or "").strip().splitlines()[-3:]
            console.print(f"[yellow]needs a person:[/] {e.idempotency_key}: {e.failure.get('evidence', '')}",
                          highlight=False)
            for line in excerpt:
                console.print(f"    {line}", highlight=False)


def report(spec_path: Path, out: Path | None) -> Path:
    from rankwright.agent.spec import SpecError
    from rankwright.report import write_report
    from rankwright.report.build import build_proposal
    from rankwright.store import open_store

    spec, target = _load(spec_path)
    store = open_store()
    campaign = store.campaign(spec.name)
    if campaign is None or store.latest_plan(campaign.id) is None:
        raise SpecError(f"campaign {spec.name!r} has no plan: run `rankwright plan {spec_path}` first")
    proposal = build_proposal(store, spec, target, _root(spec))
    folder = out or _root(spec) / "reports" / spec.name
    paths = write_report(proposal, folder)
    if campaign.status != "finished":
        console.print(f"[yellow]campaign {spec.name} is {campaign.status}, not finished: this report shows "
                      "where it stands now, and proposes the best arm it has measured on validation[/]")
    console.print(proposal.headline, highlight=False)
    for kind in ("md", "html", "yaml"):
        console.print(f"wrote {paths[kind]}", highlight=False)
    how = (f"`rankwright train {paths['yaml']}`" if spec.target == "builtin"
           else f"`{proposal.reproduce}`, run in {folder}")
    console.print(f"next: open {paths['html']}; reproduce the proposal with {how}", highlight=False)
    return paths["md"]


def _wake_once(spec_path: Path, detach: bool, loaded=None, portfolio_held: bool = False):
    """One wake under the campaign's lock; `loaded` is the (spec, target) pair when the
    caller already read them (a staying-up `run` reads the spec once, not on every wake).
    A portfolio member's wake also holds its portfolio's lease (`portfolio_held` when the
    portfolio's own step holds it already), so that its quota of the team's slots is not
    computed beside another member's submissions."""
    from rankwright.agent.lease import Lease, portfolio_lease_name

    spec, target = loaded or _load(spec_path)
    if spec.portfolio is None or portfolio_held:
        return _wake_campaign(spec_path, detach, loaded, (spec, target))
    from rankwright.store import open_store

    with Lease(open_store(), portfolio_lease_name(spec.portfolio.name),
               on_wait=lambda holder: _say_waiting(holder, f"portfolio {spec.portfolio.name}")):
        return _wake_campaign(spec_path, detach, loaded, (spec, target))


def _wake_campaign(spec_path: Path, detach: bool, loaded, read):
    import fcntl

    from rankwright.agent.lease import Lease, campaign_lease_name
    from rankwright.agent.wake import wake, wake_command
    from rankwright.store import open_store

    spec, target = read
    root = _root(spec)
    root.mkdir(parents=True, exist_ok=True)
    campaign = open_store().campaign(spec.name)
    if campaign is not None and loaded is not None and _stored(campaign) != spec.model_dump(mode="json"):
        spec, target = _load(spec_path)  # a change approved while this `run` stayed up
    if campaign is not None:
        check_spec_unchanged(spec, campaign, spec_path)
    # One agent acts on a campaign at a time; a second waits for the first to finish its step:
    # on this machine at the file lock, across machines sharing the store at its lease.
    with open(root / f".wake-{spec.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = open_store()
        executor = _executor(spec, store)
        try:
            on_exit = None
            if detach:  # a portfolio's run wakes the whole portfolio, so that a campaign waiting for a slot goes on
                on_exit = (portfolio_wake_command(Path(spec.portfolio.file)) if spec.portfolio is not None
                           else wake_command(spec_path))
            with Lease(store, campaign_lease_name(spec.name), on_wait=_say_waiting):
                return wake(store, executor, spec, target, root, on_exit=on_exit)
        except transient_errors():
            raise
        except Exception as exc:  # a bug of ours: kept as an event, so `status` shows it, then raised
            from rankwright.agent.spec import SpecError
            from rankwright.targets import TargetError

            if not isinstance(exc, (SpecError, TargetError)):
                _record_crash(store, spec.name, exc)
            raise


def _show_lease(store, name: str) -> None:
    """Which agent acts on the campaign now, if one does (team mode: it may be on another machine)."""
    import time

    from rankwright.agent.lease import campaign_lease_name

    holder = store.lease(campaign_lease_name(name))
    if holder is not None and holder.expires_at > time.time():
        console.print(f"agent acting now: {holder.owner} (for {time.time() - holder.acquired_at:.0f} s)",
                      highlight=False)


def _say_waiting(holder, what: str = "this campaign") -> None:
    import time

    console.print(f"another agent ({holder.owner}) is acting on {what}; waiting for its step to end "
                  f"(its lease runs {max(0.0, holder.expires_at - time.time()):.0f} s more unless renewed)",
                  highlight=False)


def _record_crash(store, name: str, exc: BaseException) -> None:
    import traceback

    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    try:
        campaign = store.campaign(name)
        if campaign is not None:
            store.append_event(campaign.id, "agent-error", f"the wake failed{at}: {type(exc).__name__}: {exc}"[:2000])
    except Exception:  # noqa: BLE001 - the store may be what failed; the traceback still reaches the user
        pass


def wake_step(spec_path: Path, detach: bool = True) -> None:
    """One wake; the runs it submits wake the campaign when they end unless
    RANKWRIGHT_WAKE_ON_EXIT=0 (a cron-driven set-up, or a test that owns every wake)."""
    import os

    report = _wake_once(spec_path, detach and os.environ.get("RANKWRIGHT_WAKE_ON_EXIT", "1") != "0")
    _refuse_unapproved(report, spec_path)
    console.print(f"{report.state}: collected {len(report.collected)}, submitted {len(report.submitted)}"
                  + ("; " + "; ".join(report.reasons) if report.reasons else ""), highlight=False)


def _refuse_unapproved(report, spec_path: Path) -> None:
    """Nothing runs without an approved plan, and saying so is an error, not a success."""
    from rankwright.agent.spec import SpecError

    if report.state == "waiting for approval":
        raise SpecError(f"{spec_path}: the campaign has no approved plan, so nothing ran: "
                        f"`rankwright plan {spec_path}`, then `rankwright approve {spec_path}`")


def run(spec_path: Path, detach: bool, interval_s: float, watch: bool = True) -> None:
    """Stay up until the campaign is finished, halted or stopped; between wakes, sleep on
    the doorbell and the executor's run-end folder, with `interval_s` as the fallback timer.
    A paused campaign keeps the agent waiting (runs in flight are still collected) until a
    person resumes or stops it."""
    from rankwright.agent.doorbell import Alarm, doorbell_path

    if detach:
        wake_step(spec_path, detach=True)
        console.print("detached: each run wakes the campaign when it ends; `rankwright status` shows progress")
        return
    loaded = _load(spec_path)
    spec = loaded[0]
    root = _root(spec)
    watched = [doorbell_path(root, spec.name).parent, *_executor(spec).change_paths()] if watch else []
    said = ""
    with Alarm(watched, tick_s=min(1.0, interval_s)) as alarm:
        while True:
            report = _wake_retrying(spec_path, loaded)
            _refuse_unapproved(report, spec_path)
            for line in report.collected:
                console.print(f"collected {line}", highlight=False)
            for line in report.decisions:
                console.print(f"[bold]{line}[/]", highlight=False)
            for key in report.submitted:
                console.print(f"submitted {key}", highlight=False)
            line = f"campaign {report.state}" + ("; " + "; ".join(report.reasons) if report.reasons else "")
            if report.state in ("finished", "halted", "stopped", "waiting for approval", "draft"):
                console.print(line)
                return
            if report.state != "running" and line != said:  # paused: say it once, then wait
                console.print(f"{line}: waiting for `rankwright resume` or `stop` (Ctrl-C leaves; "
                              "runs go on and `rankwright wake` collects them)")
            said = line
            try:
                alarm.wait(interval_s)
            except KeyboardInterrupt:
                console.print("left the campaign hibernating; `rankwright run` or `wake` picks it up again")
                raise typer.Exit(code=130) from None


TRANSIENT_PATIENCE_S = 600.0  # a staying-up `run` waits this long for the store or the disk to come back


def transient_patience_s() -> float:
    """`RANKWRIGHT_TRANSIENT_PATIENCE_S` when set (a number of seconds), else the default."""
    import os

    try:
        return max(0.0, float(os.environ.get("RANKWRIGHT_TRANSIENT_PATIENCE_S", TRANSIENT_PATIENCE_S)))
    except ValueError:
        return TRANSIENT_PATIENCE_S


class CampaignIOError(RuntimeError):
    """The store or the disk kept failing for longer than a staying-up `run` waits."""


def transient_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import InterfaceError, OperationalError

    from rankwright.store import StoreUnavailable

    return (StoreUnavailable, OperationalError, InterfaceError, OSError, CampaignIOError)


def describe_fault(exc: BaseException) -> str:
    """An environment failure in words: what failed, and where when a path is known."""
    if isinstance(exc, CampaignIOError):
        return str(exc)
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return (f"{exc.filename}: {exc.strerror or exc} (check that the folder exists and is writable); "
                "nothing stored was lost, run the command again once it is fixed")
    return f"{_short(exc)}; nothing stored was lost, run the command again once the store is reachable"


def _wake_retrying(spec_path: Path, loaded, detach: bool = False, portfolio_held: bool = False):
    """One wake of a staying-up `run`; a transient fault (the store unreachable or locked,
    a file system error) is retried with back-off for up to `transient_patience_s()`, then
    reported in words. A wake is idempotent, so trying again is always safe."""
    import time

    patience = transient_patience_s()
    delay, deadline = 1.0, time.monotonic() + patience
    while True:
        try:
            return _wake_once(spec_path, detach=detach, loaded=loaded, portfolio_held=portfolio_held)
        except transient_errors()[:4] as exc:
            why = _short(exc)
            if time.monotonic() + delay > deadline:
                raise CampaignIOError(f"the wake kept failing for {patience:.0f} s: {why}. Nothing "
                                      f"was lost: fix it, then `rankwright run {spec_path}` goes on") from None
            console.print(f"[yellow]wake failed ({why}); trying again in {delay:.0f} s[/]", highlight=False)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)


def _short(exc: BaseException, limit: int = 200) -> str:
    """The error's first line in at most `limit` characters, its end kept (the cause, such
    as "database is locked", comes after the store's path, whose length varies)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}"
    return line if len(line) <= limit else line[: limit // 2 - 2] + " .. " + line[-(limit // 2 - 2):]


_MOVES = {"pause": "paused", "resume": "approved", "stop": "stopped"}  # command -> new status


def set_state(spec_path: Path, command: str) -> None:
    """pause / resume / stop: a person's act, recorded; works while the campaign hibernates.
    `stop` also cancels every run still in flight."""
    from rankwright.agent.spec import SpecError
    from rankwright.store import open_store

    spec, _ = _load(spec_path)
    store = open_store()
    campaign = store.campaign(spec.name)
    if campaign is None:
        raise SpecError(f"campaign {spec.name!r} is not in the store: run `rankwright plan {spec_path}` first")
    from rankwright.agent.states import CampaignStatus, TransitionError, move

    try:
        new = move(campaign.status, CampaignStatus(_MOVES[command]), by="person").value
    except TransitionError as exc:
        raise SpecError(f"cannot {command} campaign {spec.name!r}: {exc}") from None
    store.set_campaign_status(campaign.id, new)
    cancelled = 0
    if command == "stop":
        executor = _executor(spec, store)
        from rankwright.agent.wake import cancel_in_flight

        cancelled = cancel_in_flight(store, executor, campaign.id)
    store.append_event(campaign.id, command, f"{command} by a person ({campaign.status} -> {new})"
                       + (f"; cancelled {cancelled} runs" if cancelled else ""))
    _ring(spec, command)
    console.print(f"campaign {spec.name}: {campaign.status} -> {new}" + (f", cancelled {cancelled} runs" if cancelled else ""))
    if command == "resume":
        console.print(f"next: rankwright run {spec_path} (or --detach)")
