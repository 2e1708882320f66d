"""The reference study of a real-data head-to-head task, run once before the benchmark's
runs: each recipe of `tasks.REFERENCE_RECIPES` trained on the study's seeds, the recipe
best on validation named, and its mean test NE printed to be fixed in `bench/tasks.py`
(`reference_ne`, with this script's commit as its source). Never the minimum of the
benchmark's own readings: those would move with the methods being judged.

    .venv/bin/python benchmarks/h2h_reference.py frappe [--work DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from rankwright.bench import tasks as T
from rankwright.bench.runs import Runner
from rankwright.targets.builtin import builtin_target


def flat(recipe: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in recipe.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(T.REFERENCE_RECIPES))
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/h2h-reference"))
    args = parser.parse_args()
    task = T.TASKS[args.task]
    target = builtin_target(task.model_name, task.config("strong"))
    runner = Runner(target, args.work.resolve() / task.name, T.MAX_PARALLEL)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    started = time.time()
    results = []
    for i, recipe in enumerate(T.REFERENCE_RECIPES[args.task]):
        done = runner.run_all({f"recipe{i}/seed{s}": {**flat(recipe), "train.seed": s}
                               for s in T.REFERENCE_STUDY_SEEDS})
        ok = [f for f in done.values() if f.status == "succeeded" and "ne" in f.test]
        if len(ok) != len(done):
            raise SystemExit(f"recipe {i} failed: {[f.status for f in done.values()]}; see {runner.folder}")
        valid = sum(f.objective for f in ok) / len(ok)
        test = sum(f.test["ne"] for f in ok) / len(ok)
        print(f"recipe {i}: validation NE {valid:.5f}, test NE {test:.5f} "
              f"({', '.join(format(f.test['ne'], '.4f') for f in ok)})")
        results.append((valid, test, i))
    valid, test, best = min(results)
    print(f"{args.task}: reference_ne={test:.5f} (recipe {best}, best on validation {valid:.5f}; "
          f"commit {commit}, {time.strftime('%Y-%m-%d', time.gmtime())}, {(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
