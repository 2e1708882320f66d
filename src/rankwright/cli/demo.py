"""`rankwright demo`: the built-in default job on a fresh machine, a whole campaign.

It plans a campaign on the synthetic click log (true click probabilities known, so the
Bayes limit is known), approves it as the demo, runs it through validation, combination
and exploitation while printing each decision, writes the report and prints the headline.
`rankwright baselines` keeps the older table of a few baseline models.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rich.console import Console

from rankwright.cli.tables import result_table


DEMO_SPEC = {
    "name": "demo",
    "target": "builtin",
    "model": "dnn",
    "base_config": {"data": {"source": "synthetic", "synthetic": {"rows": 100_000}},
                    "model": {"hidden_units": [256, 128]},
                    "train": {"epochs": 4, "batch_size": 512, "monitor": "ne"}},
    "objective": {"metric": "valid.ne", "direction": "minimize"},
    "budget": {"amount": 0.6, "unit": "cpu_hours", "pause_threshold": 0.9},
    "max_parallel": 2,
    "baseline_seeds": 3,
    "hypotheses": {"top_k": 4, "seeds": 2, "use_llm": False},
    "strategy": {"rounds": 2, "trials": 6, "confirmation_seeds": 5},
}


def run_campaign_demo(workdir: Path, console: Console, name: str = "demo") -> int:
    """Plan, approve (as the demo), run to the end with a progress display, report."""
    import yaml
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rankwright.cli import campaign as commands
    from rankwright.store import open_store

    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump({**DEMO_SPEC, "name": name}, sort_keys=False))
    store = open_store()
    existing = store.campaign(name)
    if existing is None or store.latest_plan(existing.id) is None:
        console.rule("plan")
        commands.plan(spec_path, skip_smoke=False)
        commands.approve(spec_path, by="rankwright demo", yes=True)
    elif existing.status not in ("finished", "approved"):
        console.print(f"campaign {name} is {existing.status}; `rankwright resume {spec_path}` continues it")
        return 1
    console.rule("run: validation -> combination -> exploitation")
    loaded = commands._load(spec_path)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.3g}/{task.total:.3g}"),
                  TimeElapsedColumn(), console=console) as progress:
        runs = progress.add_task("runs ended", total=1)
        budget = progress.add_task("budget (cpu h)", total=loaded[0].budget.amount)
        phase = ""
        while True:
            report = commands._wake_once(spec_path, detach=False, loaded=loaded)
            for line in report.decisions:
                console.print(f"[bold]{line}[/]", highlight=False)
            phase = report.phase or phase or report.state
            campaign = store.campaign(name)
            rows = store.key_states(campaign.id)
            ended = sum(1 for e in rows.values() if e.status.is_terminal)
            progress.update(runs, completed=ended, total=max(len(rows), 1), description=f"runs ended ({phase})")
            progress.update(budget, completed=sum(e.actual_cost or 0.0 for e in rows.values()))
            if report.state != "running":
                break
            time.sleep(1.0)
    if report.state != "finished":
        console.print(f"campaign {report.state}: {'; '.join(report.reasons)}")
        return 1
    for reason in report.reasons:
        console.print(f"[bold]{reason}[/]", highlight=False)
    console.rule("proposal")
    commands.report(spec_path, None)
    return 0


def run_demo(rows: int, models: list[str], epochs: int, workdir: Path, console: Console) -> list[tuple[str, dict]]:
    from rankwright.ranking.config import validate_run_config
    from rankwright.ranking.run import train_from_config

    results = []
    for name in models:
        config = validate_run_config(
            {
                "data": {"source": "synthetic", "synthetic": {"rows": rows}},
                "model": {"name": name},
                "train": {"epochs": epochs},
            },
            source="demo",
        )
        digest = hashlib.sha256(json.dumps(config.to_yaml_dict(), sort_keys=True).encode()).hexdigest()[:10]
        run_dir = workdir / "runs" / f"demo-{name}-{digest}"
        console.print(f"[bold]{name}[/]: training in {run_dir}", highlight=False)
        started = time.perf_counter()
        result = train_from_config(
            config, run_dir, cache_dir=workdir / "cache",
            log=lambda line: console.print(f"  {line}", highlight=False),
        )
        console.print(f"  done in {time.perf_counter() - started:.1f} s", highlight=False)
        results.append((name, result))
    console.print(result_table(results, title=f"synthetic click log, {rows:,} rows: test split"))
    return results
