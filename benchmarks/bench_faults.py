"""Fault injection: a whole campaign on the built-in target with a share of its runs made
to fail for real (allocation failure, NaN objective, SIGKILL mid-run, a frozen process, a
corrupt result, a tiny file-size quota, a lost data column), through the fault wrapper
`rankwright.bench.faults`. The campaign must finish; measured:

- the share of injected faults the runbook classified as the kind that was injected;
- the share resolved without a person (a transient fault remedied, so the experiment
  succeeded; a lost column ended `invalid` without a retry), and what was left for one;
- budget overrun (spend above the approved budget; must be 0) and results lost (runs that
  ended with nothing explaining them, or still in flight at the end; must be 0);
- the compute the failures cost, and the wall time.

Tasks, rate and seeds are fixed here before the first run. Usage:
  .venv/bin/python benchmarks/bench_faults.py [--rate 0.3] [--seeds 1,2,3]
Writes benchmarks/results/faults.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RATE = 0.3
BUDGET = 0.1  # CPU-hours: about twice what the campaign spends on this machine, so retries fit in it
SEEDS = (1, 2, 3, 4, 5)
BASE = {"data": {"source": "synthetic", "synthetic": {"rows": 10_000, "structure": "pairwise", "seed": 2026}},
        "model": {"hidden_units": [64, 32]}, "train": {"epochs": 3, "batch_size": 512, "monitor": "ne"}}
CHANGES = [{"name": "wider-embeddings", "set": {"model.embedding_dim": 16}},
           {"name": "more-dropout", "set": {"model.dropout": 0.3}},
           {"name": "faster-lr", "set": {"train.learning_rate": 0.003}},
           {"name": "emb-l2", "set": {"model.embedding_l2": 1e-5}}]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _target(folder: Path, seed: int, rate: float) -> Path:
    """The built-in DNN target as a target YAML whose command runs under the fault wrapper."""
    from rankwright.targets import builtin_target

    target = builtin_target("dnn", BASE).model_dump(mode="json")
    target["name"] = "dnn-with-faults"
    target["command"] = ["{python}", "-m", "rankwright.bench.faults", "--rate", str(rate), "--seed", str(seed),
                         "--log", str(folder / "faults" / "injected.jsonl"), "--", *target["command"]]
    (folder / "faults").mkdir(parents=True, exist_ok=True)
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump(target, sort_keys=False))
    return path


def _spec(folder: Path, name: str) -> Path:
    spec = {"name": name, "target": "target.yaml", "budget": {"amount": BUDGET}, "max_parallel": 2,
            "baseline_seeds": 3, "changes": CHANGES,
            "hypotheses": {"top_k": 0, "seeds": 2},
            "strategy": {"low_fidelity": {}, "trials": 8, "confirmation_seeds": 5, "prune": False}}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _rw(folder: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "RANKWRIGHT_DB": f"sqlite:///{folder / '.rankwright' / 'rankwright.db'}"}
    return subprocess.run([sys.executable, "-m", "rankwright", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_one(work: Path, seed: int, rate: float) -> dict:
    from rankwright.agent.naming import work_dir
    from rankwright.bench.faults import EXPECTED
    from rankwright.store import open_store

    folder = work / f"seed{seed}"
    folder.mkdir(parents=True)
    _target(folder, seed, rate)
    spec = _spec(folder, f"faults-{seed}")
    for command in (["plan", str(spec)], ["approve", str(spec), "--yes"]):
        done = _rw(folder, *command)
        if done.returncode != 0:
            raise SystemExit(f"{command[0]} failed:\n{done.stdout}\n{done.stderr}")
    (folder / "faults" / "injected.jsonl").write_text("")  # the smoke run's draw is not part of the campaign
    for f in (folder / "faults" / "starts").glob("*"):
        f.unlink()
    started = time.time()
    env = {**os.environ, "RANKWRIGHT_DB": f"sqlite:///{folder / '.rankwright' / 'rankwright.db'}"}
    agent = subprocess.Popen([sys.executable, "-m", "rankwright", "run", str(spec), "--interval", "2"], cwd=folder,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = open_store(env["RANKWRIGHT_DB"])
    while agent.poll() is None:  # a paused campaign keeps `run` waiting for a person: that ends the measurement
        time.sleep(2)
        if store.campaign(f"faults-{seed}").status in ("paused", "halted"):
            agent.send_signal(signal.SIGINT)
    out, err = agent.communicate(timeout=120)
    done = subprocess.CompletedProcess(agent.args, agent.returncode, out, err)
    wall = time.time() - started
    campaign = store.campaign(f"faults-{seed}")
    rows = store.experiments(campaign.id)
    root = (folder / ".rankwright").resolve()
    by_dir = {work_dir(root, e.idempotency_key).name: e for e in rows}
    injected = [json.loads(line) for line in (folder / "faults" / "injected.jsonl").read_text().splitlines()]
    scored = []
    for inj in injected:
        e = by_dir.get(inj["run"])
        history = (e.failure or {}).get("history", []) if e else []
        seen = next((h for h in history if h["attempt"] == inj["attempt"]), None)
        found = seen["kind"] if seen else ((e.failure or {}).get("kind") if e and e.failure else None)
        resolved = e is not None and (e.status.value == "succeeded"
                                      or (inj["fault"] == "column" and (e.failure or {}).get("ended_as") == "invalid"))
        scored.append({"run": inj["run"], "key": e.idempotency_key if e else None, "fault": inj["fault"],
                       "expected": EXPECTED[inj["fault"]], "classified": found,
                       "correct": found == EXPECTED[inj["fault"]], "resolved": resolved,
                       "ended": e.status.value if e else None,
                       "ended_as": (e.failure or {}).get("ended_as") if e else None})
    unexplained = [e.idempotency_key for e in rows
                   if (e.status.value in ("failed", "cancelled") and not e.failure and e.status.value != "cancelled")
                   or not e.status.is_terminal]
    spent = sum(e.actual_cost or 0.0 for e in rows)
    failed_cost = sum(h.get("cost", 0.0) for e in rows for h in (e.failure or {}).get("history", []))
    return {"seed": seed, "status": campaign.status, "run_exit": done.returncode, "wall_s": round(wall, 1),
            "experiments": len(rows), "attempts": sum(e.attempt for e in rows), "injected": scored,
            "budget": BUDGET, "spent": spent, "overrun": max(0.0, spent - BUDGET), "failed_cost": failed_cost,
            "lost": unexplained, "stderr_tail": done.stderr[-2000:]}


def render(results: dict) -> str:
    runs = results["runs"]
    faults = [f for r in runs for f in r["injected"]]
    n = len(faults)
    correct = sum(f["correct"] for f in faults)
    resolved = sum(f["resolved"] for f in faults)
    lines = [
        "# Fault injection: the runbook on a campaign with faulted runs",
        "",
        f"Commit {results['commit']}, {results['when']}, {results['machine']}. "
        f"Command: `{results['command']}`. Built-in DNN on synthetic pairwise data (10,000 rows, 3 epochs), "
        f"{len(CHANGES)} spec changes, 8 trials, confirmation on 5 seeds, budget {BUDGET} CPU-hours; "
        f"{RATE:.0%} of runs drawn for a fault "
        "(seeds fixed in `benchmarks/bench_faults.py`).",
        "",
        "| seed | campaign | runs (attempts) | faults | classified right | resolved alone | overrun | "
        "results lost | failures' cost | wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        k = len(r["injected"])
        lines.append(f"| {r['seed']} | {r['status']} | {r['experiments']} ({r['attempts']}) | {k} | "
                     f"{sum(f['correct'] for f in r['injected'])}/{k} | {sum(f['resolved'] for f in r['injected'])}/{k}"
                     f" | {r['overrun']:.4g} | {len(r['lost'])} | {r['failed_cost'] * 3600:.0f} CPU s of "
                     f"{r['spent'] * 3600:.0f} | {r['wall_s']:.0f} s |")
    lines += ["", f"All seeds: {correct}/{n} faults classified as the kind injected "
              f"({correct / n:.0%}; goal 95%), {resolved}/{n} resolved without a person ({resolved / n:.0%}), "
              f"budget overrun {max(r['overrun'] for r in runs):.4g}, results lost "
              f"{sum(len(r['lost']) for r in runs)}." if n else "No fault was drawn.", "",
              "| fault | injected | classified right | resolved alone | classified as (when wrong) |",
              "|---|---|---|---|---|"]
    for kind in sorted({f["fault"] for f in faults}):
        rows = [f for f in faults if f["fault"] == kind]
        wrong = sorted({str(f["classified"]) for f in rows if not f["correct"]})
        lines.append(f"| {kind} | {len(rows)} | {sum(f['correct'] for f in rows)} | {sum(f['resolved'] for f in rows)} "
                     f"| {', '.join(wrong) or '-'} |")
    lines += ["", "A fault is *resolved alone* when its experiment still succeeded (the runbook's remedy worked) or, "
              "for a lost data column, ended `invalid` without a retry. Transient faults hit a run's first attempt "
              "only; the lost column persists.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faults")
    args = parser.parse_args()
    work = ROOT / "benchmarks" / "work" / "faults" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        print(f"seed {seed}: campaign with {args.rate:.0%} of runs faulted ...", flush=True)
        result = run_one(work, seed, args.rate)
        k = len(result["injected"])
        print(f"seed {seed}: {result['status']}, {k} faults, {sum(f['correct'] for f in result['injected'])} "
              f"classified right, {sum(f['resolved'] for f in result['injected'])} resolved alone, "
              f"{result['wall_s']:.0f} s", flush=True)
        runs.append(result)
    results = {"commit": _git("rev-parse", "--short", "HEAD") + ("+dirty" if _git("status", "--porcelain") else ""),
               "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
               "command": "python benchmarks/bench_faults.py " + " ".join(sys.argv[1:]), "rate": args.rate, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    args.out.with_suffix(".md").write_text(render(results))
    print(render(results))
    print(f"wrote {args.out.with_suffix('.md')} and .json; work folder {work}")


if __name__ == "__main__":
    main()
