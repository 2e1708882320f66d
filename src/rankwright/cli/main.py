"""The `rankwright` command. Heavy imports (torch, pandas) happen inside commands so that
`rankwright --help` stays fast."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(
    help="Rankwright: an autonomous ranking engineer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"rankwright {version('rankwright')}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Rankwright: an autonomous ranking engineer."""


def fail(message: str) -> None:
    """A user's mistake: say what and where, exit 2, no traceback."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def fail_environment(exc: BaseException) -> None:
    """The machine, not the user: the store unreachable, a folder not writable. Say which,
    exit 1, no traceback; nothing stored was changed by the failed step."""
    from rankwright.cli.campaign import describe_fault

    errors.print(f"[bold red]error:[/] {describe_fault(exc)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=1)


def _environment_errors():
    from rankwright.cli.campaign import transient_errors

    return transient_errors()


def _user_errors():
    from rankwright.agent.spec import SpecError
    from rankwright.ranking.errors import ConfigError, DataError  # light: no PyTorch
    from rankwright.hypotheses.insights import InsightFileError
    from rankwright.hypotheses.knowledge import KnowledgeError
    from rankwright.store import StoreError
    from rankwright.targets import TargetError

    return (ConfigError, DataError, SpecError, StoreError, InsightFileError, KnowledgeError, TargetError)


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, help="run config YAML (default: the built-in synthetic DNN run)"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override a key, e.g. --set model.embedding_dim=16"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="run folder (default .rankwright/runs/<time>-<model>)"),
    cache_dir: Path = typer.Option(Path(".rankwright/cache"), "--cache-dir", envvar="RANKWRIGHT_CACHE_DIR",
                                   help="processed-data cache (a campaign's runs share the campaign's)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the result JSON"),
) -> None:
    """Train and evaluate one model; resumes when RUN_DIR holds a checkpoint of the same config."""
    user_errors = _user_errors()
    from rankwright.ranking.config import load_run_config
    from rankwright.ranking.run import default_run_dir, train_from_config

    try:
        run_config = load_run_config(config, set_)
        folder = run_dir or default_run_dir(run_config)
        base_dir = config.parent if config is not None else Path(".")
        log = None if quiet else (lambda line: console.print(line, highlight=False))
        if not quiet:
            console.print(f"run folder: {folder}")
        result = train_from_config(run_config, folder, base_dir=base_dir, cache_dir=cache_dir, log=log)
    except user_errors as exc:
        fail(str(exc))
    if quiet:
        from rankwright.finite_json import finite

        typer.echo(json.dumps(finite(result), allow_nan=False))  # valid JSON: an undefined metric is null
    else:
        from rankwright.cli.tables import result_table

        console.print(result_table([(run_config.model.name, result)]))


@app.command()
def knobs(
    model: str = typer.Option("dnn", "--model", "-m", help="model whose knobs to list"),
    target: Optional[Path] = typer.Option(None, "--target", "-t", help="a target YAML: list its knobs instead"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List every knob a run exposes, with its type, range and default."""
    from rankwright.ranking.knobs import knob_schema

    title = f"knobs of a {model} run"
    if target is not None:
        from rankwright.targets import TargetError, load_target

        try:
            loaded = load_target(target)
        except TargetError as exc:
            fail(str(exc))
        schema = list(loaded.knobs)
        roles = {path: role for role, path in loaded.role_paths().items()}
        title = f"knobs of target {loaded.name} ({target})"
    else:
        try:
            schema = knob_schema(model)
        except ValueError as exc:
            fail(f"--model: {exc}")
        roles = {}
    if as_json:
        typer.echo(json.dumps([k.to_dict() if hasattr(k, "to_dict") else k.model_dump(mode="json") for k in schema],
                              default=str, indent=2))
        return
    from rich.table import Table

    table = Table(title=title)
    table.add_column("knob", no_wrap=True)  # a knob name is what a user types: never cut
    for column in ("type", "allowed", "default", "why it matters"):
        table.add_column(column, overflow="fold")
    for k in schema:
        role = f" (role: {roles[k.path]})" if k.path in roles else ""
        table.add_row(k.path, k.kind, k.describe_range(), str(k.default), k.description + role)
    console.print(table)


@app.command()
def demo(
    workdir: Path = typer.Option(Path(".rankwright"), help="where the demo campaign's spec goes"),
) -> None:
    """Run a whole campaign on the built-in synthetic click log, from the plan to the report."""
    user_errors = _user_errors()
    from rankwright.cli.demo import run_campaign_demo

    try:
        code = run_campaign_demo(workdir, console)
    except user_errors as exc:
        fail(str(exc))
    raise typer.Exit(code=code)


@app.command()
def bench(
    tasks: str = typer.Option("pairwise,numeric,wide,frappe", help="comma-separated tasks; the held-out tasks "
                              "(higher_order7919, criteo) run once, with --seeds held-out, at the end"),
    budgets: str = typer.Option("small,large", help="comma-separated budgets: small (16 runs), large (64)"),
    seeds: str = typer.Option("primary", help="seed set: primary, or held-out (run once, at the end)"),
    methods: str = typer.Option("rankwright,tpe,tpe-few,random,copy", help="comma-separated methods (copy: the tuner's winner on the same data's other baseline, checked once)"),
    memory: bool = typer.Option(False, "--memory", help="instead: warm-started against cold campaigns "
                                "(memory across campaigns); writes memory.{md,json}"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="work folder of an earlier run to continue "
                                          "(its measured runs are reused)"),
    out: Optional[Path] = typer.Option(None, help="results path without suffix "
                                       "(default benchmarks/results/headtohead in a checkout)"),
) -> None:
    """Rankwright against Optuna TPE, random search and "copy what worked last time" at equal compute;
    writes headtohead.md."""
    from rankwright.bench import headtohead
    from rankwright.bench import tasks as T

    chosen = {"tasks": tuple(t.strip() for t in tasks.split(",") if t.strip()),
              "budgets": tuple(b.strip() for b in budgets.split(",") if b.strip()),
              "methods": tuple(m.strip() for m in methods.split(",") if m.strip())}
    for what, known in (("tasks", tuple(T.TASKS)), ("budgets", tuple(T.UNITS)), ("methods", T.METHODS)):
        unknown = [x for x in chosen[what] if x not in known]
        if unknown or not chosen[what]:
            fail(f"--{what}: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    if seeds not in T.SEED_SETS:
        fail(f"--seeds: unknown seed set {seeds!r}; known: {', '.join(T.SEED_SETS)}")
    if resume is not None and not resume.is_dir():
        fail(f"--resume {resume}: no such folder (give the work folder an earlier `rankwright bench` printed)")
    held_out = [t for t in chosen["tasks"] if T.TASKS[t].held_out]
    if held_out and seeds != "held-out" and not memory:
        fail(f"--tasks: {', '.join(held_out)} held out: run once with --seeds held-out, after every development run")
    root = Path(__file__).resolve().parents[3]
    results = root / "benchmarks" / "results"
    out = out or ((results if results.is_dir() else Path("rankwright-bench")) / "headtohead")
    work = resume or ((root / "benchmarks" / "work" if results.is_dir() else Path("rankwright-bench"))
                      / "headtohead" / time.strftime("%Y%m%d-%H%M%S"))
    console.print(f"work folder: {work} (continue a stopped run with --resume {work})")
    if memory:
        from rankwright.bench import memory as M

        out = out.with_name("memory") if out.name == "headtohead" else out
        pairs = tuple(t for t in chosen["tasks"] if t in M.PAIRS)
        doc = M.run(seeds, work.resolve(), out, root, say=lambda line: console.print(line, highlight=False),
                    pairs=pairs)
        console.print(f"wrote {out.with_suffix('.md')} and .json ({doc['wall_s'] / 60:.0f} min)")
        return
    part = headtohead.run(chosen["tasks"], chosen["budgets"], seeds, work.resolve(), out, root,
                          say=lambda line: console.print(line, highlight=False), methods=chosen["methods"])
    for line in part["goals"]:
        console.print(f"goal: {line}", highlight=False)
    console.print(f"wrote {out.with_suffix('.md')}, .json and .png ({part['wall_s'] / 60:.0f} min); "
                  f"run --seeds held-out once, at the end, for the held-out figures")


@app.command()
def baselines(
    rows: int = typer.Option(200_000, help="synthetic rows to generate"),
    models: str = typer.Option("lr,fm,dnn,dcnv2", help="comma-separated models to train"),
    epochs: int = typer.Option(8, help="maximum epochs per model"),
    workdir: Path = typer.Option(Path(".rankwright"), help="where data cache and runs go"),
) -> None:
    """Train a few baseline models on the synthetic click log and print them beside the Bayes limit."""
    user_errors = _user_errors()
    from rankwright.cli.demo import run_demo

    try:
        run_demo(rows=rows, models=[m.strip() for m in models.split(",") if m.strip()], epochs=epochs,
                 workdir=workdir, console=console)
    except user_errors as exc:
        fail(str(exc))


@app.command()
def plan(
    campaign: Path = typer.Argument(..., help="campaign spec YAML"),
    skip_smoke: bool = typer.Option(False, "--skip-smoke", help="skip the target smoke run (blocks approval)"),
) -> None:
    """Run the preflight checklist and print the exploration plan with its cost estimate."""
    user_errors = _user_errors()
    from rankwright.cli import campaign as commands

    try:
        commands.plan(campaign, skip_smoke)
    except user_errors as exc:
        fail(str(exc))


@app.command()
def approve(
    campaign: Path = typer.Argument(..., help="campaign spec YAML"),
    by: Optional[str] = typer.Option(None, "--by", help="who approves (default: the login name)"),
    yes: bool = typer.Option(False, "--yes", help="approve without a prompt (recorded as such; for demos)"),
) -> None:
    """Record who approved the latest plan and which budget."""
    user_errors = _user_errors()
    from rankwright.cli import campaign as commands

    try:
        commands.approve(campaign, by, yes)
    except user_errors as exc:
        fail(str(exc))


@app.command()
def campaigns() -> None:
    """List the campaigns in the store: status, experiments, spend and when each began."""
    user_errors = _user_errors()
    from rankwright.cli import campaign as commands

    try:
        commands.list_campaigns()
    except user_errors as exc:
        fail(str(exc))
    except _environment_errors() as exc:
        fail_environment(exc)


@app.command()
def status(campaign: Path = typer.Argument(..., help="campaign spec YAML")) -> None:
    """Show the campaign's state and budget: spent, reserved and left."""
    user_errors = _user_errors()
    from rankwright.cli import campaign as commands

    try:
        commands.status(campaign)
    except user_errors as exc:
        fail(str(exc))


@app.command()
def wake(
    campaign: Path = typer.Argument(..., help="campaign spec YAML"),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="the campaign's working folder (default: here)"),
) -> None:
    """One idempotent step: reconcile, collect, check the budget, submit. Safe from cron."""
    user_errors = _user_errors()
    if workdir is not None:
        import os

        os.chdir(workdir)
    from rankwright.cli import campaign as commands

    try:
        commands.wake_step(campaign)
    except user_errors as exc:
        fail(str(exc))
    except _environment_errors() as exc:
        fail_environment(exc)


@app.command()
def run(
    campaign: Path = typer.Argument(..., help="campaign spec YAML"),
    detach: bool = typer.Option(False, "--detach", help="submit and exit; runs wake the campaign when they end"),
    interval: float = typer.Option(60.0, "--interval", min=0.05,
                                   help="fallback timer: most seconds between wakes while staying up"),
    watch: bool = typer.Option(True, "--watch/--no-watch",
                               help="wake as soon as a run ends or a person acts (file notifications); "
                                    "--no-watch wakes on the timer only, e.g. on NFS"),
) -> None:
    """Run an approved campaign: stay up asleep between events, or --detach (runs wake it)."""
    user_errors = _user_errors()
    from rankwright.cli import campaign as commands

    try:
        commands.run(campaign, detach, interval, watch)
    except user_errors as exc:
        fail(str(exc))
    except _environment_errors() as exc:
        fail_environment(exc)


@app.command()
def report(
    campaign: Path = typer.Argument(..., help="campaign spec YAML"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for report.md, report.html, proposal.yaml "
                                                           "(default: <allowed path>/reports/<campaign>)"),
) -> None:
    """Write the campaign's launch-ready proposal: report.md, report.html, proposal.yaml."""
    user_errors = _user_errors()
    from rankwright.cli import campaign as commands

    try:
        commands.report(campaign, out)
    except user_errors as exc:
        fail(str(exc))


@app.command()
def hypotheses(
    campaign: Path = typer.Argument(..., help="campaign spec YAML"),
    top: int = typer.Option(15, "--top", min=1, help="how many to show"),
    dropped: bool = typer.Option(False, "--dropped", help="also list what was dropped and why"),
) -> None:
    """Rank the research agent's hypotheses for a campaign, with their sources and reasons."""
    user_errors = _user_errors()
    from rankwright.cli import research

    try:
        research.hypotheses(campaign, top, dropped)
    except user_errors as exc:
        fail(str(exc))


@app.command()
def insights(
    technique: Optional[str] = typer.Option(None, "--technique", help="only this technique"),
    model: Optional[str] = typer.Option(None, "--model", help="only insights from this model family"),
    export: Optional[Path] = typer.Option(None, "--export", help="write the selected insights to a JSONL file"),
    import_: Optional[Path] = typer.Option(None, "--import", help="add the insights of a JSONL file (idempotent)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line instead of a table"),
) -> None:
    """List, filter, export or import the historical insights database."""
    user_errors = _user_errors()
    from rankwright.cli import research

    try:
        research.insights(technique, model, export, import_, as_json)
    except user_errors as exc:
        fail(str(exc))


def _state_command(command: str, help_text: str) -> None:
    def act(campaign: Path = typer.Argument(..., help="campaign spec YAML")) -> None:
        user_errors = _user_errors()
        from rankwright.cli import campaign as commands

        try:
            commands.set_state(campaign, command)
        except user_errors as exc:
            fail(str(exc))

    act.__doc__ = help_text
    app.command(name=command)(act)


_state_command("pause", "Pause a campaign: runs in flight finish, nothing new is submitted.")
_state_command("resume", "Resume a paused campaign (then `run` or `wake` it).")
_state_command("stop", "Stop a campaign for good and cancel the runs still in flight.")


def main() -> None:
    """The `rankwright` command: the app, with any environment failure that a command did
    not handle itself (a folder not writable, the store unreachable) said in words, exit 1."""
    try:
        app(prog_name="rankwright")
    except _environment_errors() as exc:
        try:
            fail_environment(exc)
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None


portfolio_app = typer.Typer(help="Several campaigns under one team budget and one set of parallel slots.",
                            no_args_is_help=True)
app.add_typer(portfolio_app, name="portfolio")


def _portfolio(action, *args) -> None:
    user_errors = _user_errors()
    try:
        action(*args)
    except user_errors as exc:
        fail(str(exc))
    except _environment_errors() as exc:
        fail_environment(exc)


@portfolio_app.command("plan")
def portfolio_plan(
    portfolio: Path = typer.Argument(..., help="portfolio YAML: name, budget, max_parallel, campaigns"),
    skip_smoke: bool = typer.Option(False, "--skip-smoke", help="skip each target's smoke run (blocks approval)"),
) -> None:
    """Split the team budget by priority and plan every campaign with its share."""
    from rankwright.cli import portfolio as commands

    _portfolio(commands.plan, portfolio, skip_smoke)


@portfolio_app.command("approve")
def portfolio_approve(
    portfolio: Path = typer.Argument(..., help="portfolio YAML"),
    by: Optional[str] = typer.Option(None, "--by", help="who approves (default: the login name)"),
    yes: bool = typer.Option(False, "--yes", help="approve without a prompt (recorded as such)"),
) -> None:
    """Approve every campaign's plan under the team budget."""
    from rankwright.cli import portfolio as commands

    _portfolio(commands.approve, portfolio, by, yes)


@portfolio_app.command("run")
def portfolio_run(
    portfolio: Path = typer.Argument(..., help="portfolio YAML"),
    detach: bool = typer.Option(False, "--detach", help="start and exit; each run wakes the portfolio as it ends"),
    interval: float = typer.Option(60.0, "--interval", min=0.05, help="fallback timer while staying up"),
) -> None:
    """Run every campaign, sharing the team's slots fairly, until all have ended."""
    from rankwright.cli import portfolio as commands

    _portfolio(commands.run, portfolio, detach, interval)


@portfolio_app.command("wake")
def portfolio_wake(
    portfolio: Path = typer.Argument(..., help="portfolio YAML"),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="the portfolio's working folder (default: here)"),
) -> None:
    """One step of every campaign, the least-served first. Safe from cron."""
    if workdir is not None:
        import os

        os.chdir(workdir)
    from rankwright.cli import portfolio as commands

    _portfolio(commands.wake_step, portfolio)


@portfolio_app.command("status")
def portfolio_status(portfolio: Path = typer.Argument(..., help="portfolio YAML")) -> None:
    """Each campaign's state, phase, spend, runs and best result at a glance."""
    from rankwright.cli import portfolio as commands

    _portfolio(commands.status, portfolio)
