"""Memory across campaigns, measured fairly: whole campaigns on a task, warm-started from
the insights of one earlier campaign on a related task, against cold ones, at equal budget.

Pairs (source -> target): each synthetic structure on its generator seed -> the same
structure on another seed (other tables and rows), and the wide structure -> Frappe. On
each target four arms run whole campaigns with one validation round of four hypotheses,
then the same combination and exploitation; only the round's four differ:

- cold: the hypothesis engine with an empty insights database;
- warm: the engine after importing the source campaign's insights;
- source-sorted: the techniques the source campaign measured, best effect first;
- random: four applicable techniques in a seeded random order.

Every arm is charged the same way (the runs' measured CPU time, all of them). Measured:
final test NE of what each ships (mean, 95% interval over seeds), and best-so-far
validation NE of its runs at the validation fidelity against compute (every run charged),
from which "compute to reach cold's final NE" is read for every arm, charged up to the run
that reached it.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rankwright.analysis.stats import mean_ci
from rankwright.bench import tasks as T

Say = Callable[[str], None]
OTHER_GENERATOR_SEED = 2027
PAIRS = {"pairwise": "pairwise", "numeric": "numeric", "wide": "wide", "frappe": "wide"}  # target -> source
ARMS = ("cold", "warm", "source-sorted", "random")
SEEDS = {"primary": (1, 2), "held-out": (101, 102)}
UNITS = 32  # baseline-run equivalents per campaign
ROUND = 4  # hypotheses in the one validation round


def target_task(name: str) -> T.Task:
    """The task a pair is measured on: Frappe, or a structure on another generator seed."""
    task = T.TASKS[name]
    if task.kind != "synthetic":
        return task
    data = copy.deepcopy(task.data)
    data["synthetic"]["seed"] = OTHER_GENERATOR_SEED
    return T.Task(f"{name}-other", task.kind, data, task.model, task.batch_size)


def spec(task: T.Task, name: str, budget_cpu_hours: float, changes: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "name": name, "target": "builtin", "model": "dnn", "base_config": task.config("strong"),
        "objective": {"metric": "valid.ne", "direction": "minimize"},
        "budget": {"amount": budget_cpu_hours, "unit": "cpu_hours", "pause_threshold": 1.0},
        "max_parallel": T.MAX_PARALLEL, "baseline_seeds": 3, "changes": changes or [],
        "hypotheses": {"top_k": 0 if changes else ROUND, "seeds": 2, "use_llm": False},
        "strategy": {"trials": 10_000, "rounds": 1, "confirmation_seeds": 5},
    }


def applicable(task: T.Task) -> list[tuple[str, dict[str, Any]]]:
    """(technique id, knob changes on this baseline) for every technique that applies."""
    from rankwright.hypotheses.knowledge import KnowledgeError, knob_values, load_knowledge_base
    from rankwright.targets import TargetError
    from rankwright.targets.builtin import builtin_target

    target = builtin_target("dnn", task.config("strong"))
    knobs = {k.path for k in target.knobs} - target.inert_knobs()  # as the research agent sees them
    out = []
    for t in load_knowledge_base().techniques:
        if not t.names_model("dnn") or not t.applicable(knobs):
            continue
        try:
            changes = target.validate_changes(t.apply(knob_values(target.base_config, t.knob_paths)))
        except (KnowledgeError, TargetError):
            continue
        if changes and target.config_with(changes) != target.base_config:
            out.append((t.id, dict(changes)))
    return out


def ordering(arm: str, seed: int, task: T.Task, source_effects: dict[str, float]) -> list[dict[str, Any]] | None:
    """The first round's spec changes of an ordering baseline (None: the engine chooses)."""
    candidates = applicable(task)
    if arm == "source-sorted":
        ranked = sorted((c for c in candidates if c[0] in source_effects), key=lambda c: source_effects[c[0]])
        ranked += [c for c in candidates if c[0] not in source_effects]
    elif arm == "random":
        ranked = random.Random(seed).sample(candidates, len(candidates))
    else:
        return None
    return [{"name": tid, "set": changes, "reason": f"{arm} order"} for tid, changes in ranked[:ROUND]]


def curve(folder: Path, name: str, unit_s: float) -> dict[str, Any]:
    """Cumulative compute (units, every run charged) and the best-so-far validation NE of
    the runs at the validation fidelity (the same for every arm, so values compare), in
    the order the runs were collected."""
    from rankwright.bench.campaign import _inside

    with _inside(folder):
        from rankwright.store import open_store

        store = open_store()
        campaign = store.campaign(name)
        experiments = {e.idempotency_key: e for e in store.experiments(campaign.id)}
        events = [e for e in store.events(campaign.id) if e.kind == "collect"]
    validation = min((e.fidelity for e in experiments.values()), default=1.0)  # what every arm validates at
    spent, best, points = 0.0, None, []
    for event in events:
        e = experiments.get(event.message.split(": ")[0])
        if e is None:
            continue
        spent += (e.actual_cost or 0.0) * 3600.0 / unit_s
        value = (e.metrics or {}).get("objective")
        if value is not None and abs(e.fidelity - validation) < 1e-9 and (best is None or value < best):
            best = value
        points.append((spent, best))
    return {"points": points, "total": spent, "fidelity": validation}


def reach(points: list[tuple[float, float | None]], level: float) -> float | None:
    """Compute at which the best-so-far first reached `level` (None: never)."""
    return next((c for c, b in points if b is not None and b <= level + 1e-12), None)


def run(seed_set: str, work: Path, out: Path, root: Path, say: Say, pairs: tuple[str, ...] = tuple(PAIRS)) -> dict:
    from rankwright.bench.campaign import run_campaign
    from rankwright.bench.headtohead import _commit, reference

    from rankwright.bench.headtohead import is_busy

    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.time()
    if is_busy(load := os.getloadavg()[0]):
        say(f"warning: the machine is busy (load {load:.1f} on {os.cpu_count()} cores); CPU time "
            "measured now is inflated, so stop other work first")
    results: dict[str, Any] = {}
    for target_name in pairs:
        source_name = PAIRS[target_name]
        why = T.TASKS[target_name].available()
        if why:
            say(f"skipping {target_name}: {why}")
            continue
        source_ref = reference(source_name, "strong", work, say)
        source_folder = work / "memory" / f"source-{source_name}"
        source = run_campaign(T.campaign_spec(T.Cell(source_name, "strong", "small"), 1,
                                              UNITS * source_ref.unit_s / 3600.0) | {"name": f"source-{source_name}"},
                              source_folder)
        exported = source_folder / "insights.jsonl"
        if not exported.exists():
            subprocess.run([sys.executable, "-m", "rankwright", "insights", "--export", str(exported)],
                           cwd=source_folder, check=True, capture_output=True)
        effects = {}
        for line in exported.read_text().splitlines():
            record = json.loads(line)
            effects.setdefault(record["technique"], record["effect"])
        task = target_task(target_name)
        ref = reference(task, "strong", work, say)
        arms: dict[str, Any] = {}
        for seed in SEEDS[seed_set]:
            for arm in ARMS:
                name = f"mem-{target_name}-{arm}-s{seed}"
                folder = work / "memory" / target_name / f"{arm}-s{seed}"
                if arm == "warm" and not (folder / ".rankwright").exists():
                    folder.mkdir(parents=True, exist_ok=True)
                    subprocess.run([sys.executable, "-m", "rankwright", "insights", "--import", str(exported)],
                                   cwd=folder, check=True, capture_output=True)
                o = run_campaign(spec(task, name, UNITS * ref.unit_s / 3600.0, ordering(arm, seed, task, effects)),
                                 folder)
                c = curve(folder, name, ref.unit_s)
                test = ref.test_ne if o["shipped_baseline"] else o["test_ne"]
                load = os.getloadavg()[1] if o["reused"] < o["runs"] else None  # measured now: how busy
                arms.setdefault(arm, []).append({"seed": seed, "test_ne": test, "shipped": o["changes"], **c,
                                                 "reused": o["reused"], "runs": o["runs"], "wall_s": o["wall_s"],
                                                 "load": load})
                if load is not None and is_busy(load):
                    say(f"memory {target_name} {arm} seed {seed}: measured on a busy machine (load {load:.1f})")
                say(f"memory {target_name} {arm} seed {seed}: test NE {test:.4f}, {c['total']:.1f}/{UNITS} units")
        results[target_name] = summarise(arms, ref.test_ne) | {"source": source_name,
                                                               "source_headline": source["headline"],
                                                               "source_effects": effects}
    document = {"commit": _commit(root), "settings_commit": _commit(root, "src/rankwright/bench/memory.py",
                                                                     "src/rankwright/bench/tasks.py"),
                "started": started, "wall_s": time.time() - t0, "seeds": list(SEEDS[seed_set]), "units": UNITS,
                "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_suffix(".json")
    whole = json.loads(json_path.read_text()) if json_path.exists() else {"sets": {}}
    whole["sets"][seed_set] = document
    json_path.write_text(json.dumps(whole, indent=1) + "\n")
    out.with_suffix(".md").write_text(render(whole))
    return document


def summarise(arms: dict[str, list[dict[str, Any]]], baseline_ne: float) -> dict[str, Any]:
    """Per arm: final test NE with its interval; the compute each arm needed to reach the
    cold arm's final best-so-far validation NE, against cold's own compute to reach it."""
    cold_final = [r["points"][-1][1] for r in arms.get("cold", []) if r["points"] and r["points"][-1][1] is not None]
    level = sum(cold_final) / len(cold_final) if cold_final else None
    cold_reach = [x for r in arms.get("cold", []) if (x := reach(r["points"], level)) is not None] if level else []
    out: dict[str, Any] = {"baseline_ne": baseline_ne, "cold_final_valid_ne": level, "arms": {}}
    for arm, runs in arms.items():
        m, low, high = mean_ci([r["test_ne"] for r in runs])
        reached = [reach(r["points"], level) for r in runs] if level is not None else []
        got = [x for x in reached if x is not None]
        out["arms"][arm] = {
            "test_ne": {"mean": m, "low": low, "high": high, "n": len(runs)},
            "reached": f"{len(got)}/{len(runs)}",
            "compute_to_reach": sum(got) / len(got) if got else None,
            "vs_cold": (sum(got) / len(got)) / (sum(cold_reach) / len(cold_reach)) if got and cold_reach else None,
            "runs": runs,
        }
    return out


def render(whole: dict[str, Any]) -> str:
    from rankwright.bench.headtohead import BUSY_LOAD, is_busy

    lines = ["# Memory across campaigns: warm against cold, whole campaigns at equal budget", "",
             "Each target is measured with four arms of whole Rankwright campaigns that differ only in "
             "the four hypotheses of their one validation round (see `src/rankwright/bench/memory.py`). "
             "`test NE`: what the campaign ships (95% interval over seeds). `to reach`: mean compute, in "
             "baseline runs, until the arm's best validation NE (at the validation fidelity) reached the "
             "cold arm's final one (seeds that reached it), and its ratio to cold's own.", ""]
    for set_name, doc in whole["sets"].items():
        lines += [f"## Seeds: {set_name} ({', '.join(map(str, doc['seeds']))})", "",
                  f"Settings fixed at commit {doc['settings_commit']}; ran at commit {doc['commit']}, from "
                  f"{doc['started']}, {doc['wall_s'] / 60:.0f} min; {doc['units']} baseline runs per campaign.", "",
                  "| target (source) / arm | test NE (95% CI) | reached | to reach | vs cold |",
                  "|---|---|---|---|---|"]
        for target, r in doc["results"].items():
            lines.append(f"| **{target}** ({r['source']}) | base {r['baseline_ne']:.4f} | | | |")
            for arm in ARMS:
                a = r["arms"].get(arm)
                if a is None:
                    continue
                t = a["test_ne"]
                ci = f"{t['mean']:.4f} ({t['low']:.4f},{t['high']:.4f})" if t["n"] > 1 else f"{t['mean']:.4f}"
                reach_ = "-" if a["compute_to_reach"] is None else f"{a['compute_to_reach']:.1f}"
                vs = "-" if a["vs_cold"] is None else f"{a['vs_cold']:.2f}"
                lines.append(f"| {arm} | {ci} | {a['reached']} | {reach_} | {vs} |")
        lines += ["", *goal_lines(doc)]
        busy = [f"{target} {arm} seed {r['seed']} (load {r['load']:.1f})"
                for target, res in doc["results"].items() for arm, a in res["arms"].items() for r in a["runs"]
                if r.get("load") is not None and is_busy(r["load"])]
        if busy:
            lines += [f"Measured while the machine was busy (5-minute load above {BUSY_LOAD:g}x the cores, so "
                      "its CPU time reads high): " + "; ".join(busy) + ".", ""]
        lines.append("")
    return "\n".join(lines) + "\n"


def goal_lines(doc: dict[str, Any]) -> list[str]:
    """The issue's goal, read off the table: warm reaches cold's final NE with at most half
    the compute, and ends better at equal compute."""
    ratios, better, n = [], 0, 0
    for res in doc["results"].values():
        warm, cold = res["arms"].get("warm"), res["arms"].get("cold")
        if not warm or not cold:
            continue
        n += 1
        better += warm["test_ne"]["mean"] < cold["test_ne"]["mean"]
        if warm["vs_cold"] is not None:
            ratios.append(warm["vs_cold"])
    reached = sum(int(res["arms"]["warm"]["reached"].split("/")[0]) for res in doc["results"].values()
                  if "warm" in res["arms"])
    seeds = sum(int(res["arms"]["warm"]["reached"].split("/")[1]) for res in doc["results"].values()
                if "warm" in res["arms"])
    mean = f"{sum(ratios) / len(ratios):.2f}" if ratios else "-"
    return [f"Goal (warm reaches cold's final NE with at most 0.5 of cold's compute, and ends better): warm "
            f"reached it on {reached} of {seeds} target-seeds, with {mean} of cold's compute on average over the "
            f"targets where it did; its final test NE was lower than cold's on {better} of {n} targets.", ""]
