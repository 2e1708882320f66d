"""`rankwright demo`: the built-in default job on a fresh machine.

Generates the synthetic click log (true probabilities known), trains a few baselines and
prints them beside the Bayes limit. Later issues turn this into a full campaign.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rich.console import Console

from rankwright.cli.tables import result_table


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
