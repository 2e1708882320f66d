"""Does the hypothesis engine pick hypotheses that work, and does history make it better?

Three synthetic tasks with different generating structure (pairwise, numeric, wide),
each in two related draws: a *source* task (generator seed 101) and a *target* task (seed
202; same structure and size, other tables and rows). On every task the DNN baseline runs
with 6 seeds and every applicable knowledge-base technique runs with 3 seeds (seeds 1-3 of
both arms are shared, as in a campaign), at validation fidelity: 100,000 rows, 4 epochs,
best-NE epoch kept, all with the built-in ranking codebase. From those measured runs:

- precision at 5: the share of a ranking's top 5 whose mean validation NE beats the
  baseline's by more than its noise (two standard errors of the difference of the means,
  unpaired, from the baseline's seed spread), against the expected precision of a random
  ordering of the candidates (the share of all measured candidates that beat the noise);
  and, less coarse, the mean measured effect of the top 5 against that of all candidates;
- cold: the engine ranks the target task's hypotheses from the knowledge base and the
  diagnosis of the target baseline; warm: the same, after the source task's comparisons
  were stored as insights exactly as a campaign's learn step stores them (paired on seeds);
- campaigns: the cold campaign runs its top 8 hypotheses in rank order; the warm campaign
  runs its ranking in order until it reaches the cold campaign's best NE. Compute is the
  measured CPU seconds of the runs each one launched, the baseline's seeds included.
  Both replay the same measured runs, so seed noise is identical for both.

Usage: .venv/bin/python benchmarks/bench_hypotheses.py [--rows 100000] [--epochs 4] [--workers 2]
    [--source-seed 101 --target-seed 202] [--workdir DIR] [--out PREFIX]
Writes benchmarks/results/hypotheses.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STRUCTURES = ("pairwise", "numeric", "wide")
SOURCE_SEED, TARGET_SEED = 101, 202
BASELINE_SEEDS, CANDIDATE_SEEDS = 6, 3
COLD_BUDGET = 8  # hypotheses the cold campaign runs
TOP = 5


def base_config(structure: str, seed: int, rows: int, epochs: int) -> dict:
    # The objective is validation NE, so the baseline keeps its best-NE epoch (monitor: ne).
    return {"data": {"source": "synthetic", "synthetic": {"rows": rows, "structure": structure, "seed": seed}},
            "model": {"name": "dnn", "hidden_units": [256, 128]},
            "train": {"epochs": epochs, "batch_size": 512, "monitor": "ne"}}


def _train(job: tuple[dict, str, str]) -> dict:
    """One run in a worker process (one thread each: runs go side by side). A run already
    measured in this work folder (same config) is read back, so `--workdir` makes a rerun
    of the analysis cheap."""
    config_doc, run_dir, cache = job
    done = Path(run_dir) / "bench.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("config") == config_doc:
            return saved["result"]
    import torch

    torch.set_num_threads(1)
    from rankwright.ranking.config import validate_run_config
    from rankwright.ranking.run import train_from_config

    config = validate_run_config(config_doc, source="bench")
    t0 = time.process_time()
    w0 = time.perf_counter()
    result = train_from_config(config, Path(run_dir), cache_dir=Path(cache))
    out = {"ne": result["valid"]["ne"], "auc": result["valid"]["auc"], "cpu_s": time.process_time() - t0,
           "wall_s": time.perf_counter() - w0, "run_dir": run_dir,
           "embedding_parameters": result.get("embedding_parameters"), "parameters": result.get("parameters")}
    done.write_text(json.dumps({"config": config_doc, "result": out}))
    return out


def candidates(target, kb) -> list[tuple[str, dict]]:
    """Every technique the engine would consider for this baseline, with its changes."""
    from rankwright.hypotheses.engine import applicable_changes
    from rankwright.hypotheses.knowledge import knob_values

    paths = {k.path for k in target.knobs}
    found, _ = applicable_changes(kb, "dnn", paths, knob_values(target.base_config, paths), target.validate_changes)
    return [(t.id, changes) for t, changes in found]


def evaluate_task(name: str, doc: dict, kb, pool, workdir: Path, limit: int = 0) -> dict:
    from rankwright.targets.builtin import builtin_target

    target = builtin_target("dnn", doc)
    cands = candidates(target, kb)[: limit or None]
    jobs, labels = [], []
    for seed in range(1, BASELINE_SEEDS + 1):
        jobs.append((target.config_with({"train.seed": seed}), str(workdir / name / f"baseline-s{seed}"),
                     str(workdir / "cache")))
        labels.append(("baseline", seed))
    for tech, changes in cands:
        for seed in range(1, CANDIDATE_SEEDS + 1):
            jobs.append((target.config_with({**changes, "train.seed": seed}), str(workdir / name / f"{tech}-s{seed}"),
                         str(workdir / "cache")))
            labels.append((tech, seed))
    t0 = time.perf_counter()
    results = list(pool.map(_train, jobs))
    print(f"{name}: {len(jobs)} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    runs: dict[str, list[dict]] = {}
    for (label, seed), r in zip(labels, results):
        runs.setdefault(label, []).append({**r, "seed": seed})
    return {"name": name, "doc": doc, "candidates": dict(cands), "runs": runs}


def context_of(task: dict):
    """The context a campaign on this task would record (the product's own function)."""
    from rankwright.agent.learning import campaign_context
    from rankwright.agent.spec import CampaignSpec
    from rankwright.targets.builtin import builtin_target

    spec = CampaignSpec(name=task["name"], model="dnn", base_config=task["doc"],
                        budget={"amount": 1.0, "unit": "cpu_hours"})
    base = [r["ne"] for r in task["runs"]["baseline"]]
    return campaign_context(spec, builtin_target("dnn", task["doc"]), base,
                            task["runs"]["baseline"][0]["embedding_parameters"])


def insights_from(task: dict, campaign: str):
    """What the learn step of a campaign on this task would store (paired on seeds)."""
    from rankwright.hypotheses.insights import comparison_insight

    by_seed = {label: {r["seed"]: r["ne"] for r in runs} for label, runs in task["runs"].items()}
    base_cpu = statistics.mean(r["cpu_s"] for r in task["runs"]["baseline"])
    ctx = context_of(task)
    return [comparison_insight(tech, changes, ctx, by_seed[tech], by_seed["baseline"],
                               statistics.mean(r["cpu_s"] for r in task["runs"][tech]) / base_cpu, campaign)
            for tech, changes in task["candidates"].items()]


def rank(task: dict, kb, insights) -> list[str]:
    from rankwright.hypotheses.diagnosis import diagnose_run
    from rankwright.hypotheses.engine import rank_hypotheses
    from rankwright.hypotheses.insights import noise_threshold
    from rankwright.hypotheses.knowledge import knob_values
    from rankwright.targets.builtin import builtin_target

    target = builtin_target("dnn", task["doc"])
    paths = {k.path for k in target.knobs}
    base = [r["ne"] for r in task["runs"]["baseline"]]
    findings = diagnose_run(Path(task["runs"]["baseline"][0]["run_dir"]))
    ranking = rank_hypotheses(kb=kb, model_family="dnn", knob_paths=paths,
                              current=knob_values(target.base_config, paths), validate=target.validate_changes,
                              context=context_of(task), insights=insights, findings=findings,
                              noise=noise_threshold(base, CANDIDATE_SEEDS))
    return [h.name for h in ranking.hypotheses], [f.signal for f in findings], ranking


def measured(task: dict) -> dict[str, dict]:
    from rankwright.hypotheses.insights import noise_threshold

    base = [r["ne"] for r in task["runs"]["baseline"]]
    mb = statistics.mean(base)
    noise = noise_threshold(base, CANDIDATE_SEEDS)
    out = {}
    for tech in task["candidates"]:
        ne = statistics.mean(r["ne"] for r in task["runs"][tech])
        out[tech] = {"ne": ne, "effect": (ne - mb) / mb, "helps": (ne - mb) / mb < -noise,
                     "cpu_s": sum(r["cpu_s"] for r in task["runs"][tech])}
    return out


def campaign_replay(order: list[str], facts: dict, baseline_cpu: float, stop_at: float | None, budget: int | None):
    best, cpu, ran = float("inf"), baseline_cpu, 0
    for name in order:
        if budget is not None and ran >= budget:
            break
        if stop_at is not None and best <= stop_at:
            break
        cpu += facts[name]["cpu_s"]
        best = min(best, facts[name]["ne"])
        ran += 1
    return best, cpu, ran


def main() -> None:
    global BASELINE_SEEDS, CANDIDATE_SEEDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--structures", default=",".join(STRUCTURES))
    parser.add_argument("--source-seed", type=int, default=SOURCE_SEED, help="generator seed of the source tasks")
    parser.add_argument("--target-seed", type=int, default=TARGET_SEED, help="generator seed of the target tasks")
    parser.add_argument("--baseline-seeds", type=int, default=BASELINE_SEEDS)
    parser.add_argument("--candidate-seeds", type=int, default=CANDIDATE_SEEDS)
    parser.add_argument("--limit", type=int, default=0, help="only the first N candidates (a smoke test of this script)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hypotheses"))
    parser.add_argument("--workdir", default="", help="keep the runs here (default: a fresh temporary folder); "
                        "runs already measured there are reused")
    args = parser.parse_args()
    BASELINE_SEEDS, CANDIDATE_SEEDS = args.baseline_seeds, args.candidate_seeds
    from rankwright.hypotheses.knowledge import load_knowledge_base

    kb = load_knowledge_base()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rw-hyp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    t_all = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for structure in args.structures.split(","):
            source = evaluate_task(f"{structure}-source", base_config(structure, args.source_seed, args.rows, args.epochs),
                                   kb, pool, workdir, args.limit)
            target = evaluate_task(f"{structure}-target", base_config(structure, args.target_seed, args.rows, args.epochs),
                                   kb, pool, workdir, args.limit)
            facts = measured(target)
            cold, signals, _ = rank(target, kb, [])
            warm, _, warm_ranking = rank(target, kb, insights_from(source, f"{structure}-source"))
            missing = [n for n in cold + warm if n not in facts]
            if missing and not args.limit:
                raise RuntimeError(f"ranked but never measured: {missing}")
            cold, warm = [n for n in cold if n in facts], [n for n in warm if n in facts]
            # A random order draws from every measured candidate (each ranking drops its own
            # conflicts, so the cold and warm lists are not the same subset).
            pool_names = sorted(facts)
            random_p = sum(facts[n]["helps"] for n in pool_names) / len(pool_names)
            p_cold = sum(facts[n]["helps"] for n in cold[:TOP]) / TOP
            p_warm = sum(facts[n]["helps"] for n in warm[:TOP]) / TOP
            top_effect = lambda order: statistics.mean(facts[n]["effect"] for n in order[:TOP])  # noqa: E731
            base_cpu = sum(r["cpu_s"] for r in target["runs"]["baseline"])
            cold_best, cold_cpu, cold_ran = campaign_replay(cold, facts, base_cpu, None, COLD_BUDGET)
            warm_best, warm_cpu, warm_ran = campaign_replay(warm, facts, base_cpu, cold_best, None)
            row = {
                "structure": structure, "candidates": len(pool_names), "ranked_cold": len(cold),
                "ranked_warm": len(warm), "diagnosis": signals,
                "baseline_ne": statistics.mean(r["ne"] for r in target["runs"]["baseline"]),
                "baseline_ne_sd": statistics.stdev(r["ne"] for r in target["runs"]["baseline"]),
                "helping": sorted(n for n in pool_names if facts[n]["helps"]),
                "precision_random": random_p, "precision_cold": p_cold, "precision_warm": p_warm,
                "top5_effect_random": statistics.mean(facts[n]["effect"] for n in pool_names),
                "top5_effect_cold": top_effect(cold), "top5_effect_warm": top_effect(warm),
                "cold_top": cold[:TOP], "warm_top": warm[:TOP],
                "cold_best_ne": cold_best, "cold_cpu_s": cold_cpu, "cold_ran": cold_ran,
                "warm_best_ne": warm_best, "warm_cpu_s": warm_cpu, "warm_ran": warm_ran,
                "warm_reached": warm_best <= cold_best, "compute_ratio": warm_cpu / cold_cpu,
                "warm_dropped": warm_ranking.dropped,
                "effects": {n: facts[n]["effect"] for n in facts},
                "source_effects": {n: f["effect"] for n, f in measured(source).items()},
                "warm_spread": warm_ranking.spread.fraction,
                "runs": {side: {label: [{"seed": r["seed"], "ne": r["ne"], "cpu_s": r["cpu_s"]} for r in rs]
                                for label, rs in task["runs"].items()}
                         for side, task in (("source", source), ("target", target))},
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("effects", "source_effects", "warm_dropped", "runs")}),
                  flush=True)
    total = time.perf_counter() - t_all
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "settings": vars(args), "seconds": total}, indent=2))
    out.with_suffix(".md").write_text(render(rows, args, total))
    print(render(rows, args, total))


def render(rows: list[dict], args, total: float) -> str:
    lines = ["# Hypothesis engine: precision at 5 and warm start", "",
             f"DNN (hidden 256-128, batch 512, best-NE epoch) on the synthetic click log, {args.rows:,} rows, "
             f"{args.epochs} epochs, validation NE; source tasks generator seed {args.source_seed}, target tasks seed "
             f"{args.target_seed}; baseline {BASELINE_SEEDS} seeds, every candidate {CANDIDATE_SEEDS} seeds; "
             f"{sum(len(rs) for r in rows for side in r['runs'].values() for rs in side.values())} runs, "
             f"{sum(x['cpu_s'] for r in rows for side in r['runs'].values() for rs in side.values() for x in rs) / 60:.0f}"
             f" CPU-min measured on {os.cpu_count()} cores.", "",
             "| task | candidates | helping | baseline NE sd | P@5 random | P@5 cold | P@5 warm | "
             "top-5 mean effect: all, cold, warm | cold: best NE, CPU s (runs) | warm: best NE, CPU s (runs) | "
             "warm / cold compute |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['structure']} | {r['candidates']} | {len(r['helping'])} | "
            f"{r['baseline_ne_sd'] / r['baseline_ne'] * 100:.2f}% | "
            f"{r['precision_random']:.2f} | {r['precision_cold']:.2f} | {r['precision_warm']:.2f} | "
            f"{r['top5_effect_random'] * 100:+.2f}%, {r['top5_effect_cold'] * 100:+.2f}%, "
            f"{r['top5_effect_warm'] * 100:+.2f}% | "
            f"{r['cold_best_ne']:.4f}, {r['cold_cpu_s']:.0f} ({r['cold_ran']}) | "
            f"{r['warm_best_ne']:.4f}, {r['warm_cpu_s']:.0f} ({r['warm_ran']}) | {r['compute_ratio']:.2f} |")
    if rows:
        mean = lambda k: statistics.mean(r[k] for r in rows)  # noqa: E731
        lines += ["", f"Mean precision at 5: random {mean('precision_random'):.2f}, cold {mean('precision_cold'):.2f}, "
                      f"warm {mean('precision_warm'):.2f}; mean warm/cold compute {mean('compute_ratio'):.2f}.",
                  f"Diagnosis of the target baselines: {'; '.join(', '.join(r['diagnosis']) or '-' for r in rows)}."]
    lines += ["", "Top 5 per ranking (measured relative NE change on the target task):", ""]
    for r in rows:
        for kind in ("cold", "warm"):
            tops = ", ".join(f"{n} ({r['effects'].get(n, float('nan')) * 100:+.2f}%)" for n in r[f"{kind}_top"])
            lines.append(f"- {r['structure']}, {kind}: {tops}")
    seeds = ("" if (args.source_seed, args.target_seed) == (SOURCE_SEED, TARGET_SEED)
             else f" --source-seed {args.source_seed} --target-seed {args.target_seed}")
    lines += ["", f"Reproduce: `.venv/bin/python benchmarks/bench_hypotheses.py{seeds}`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
