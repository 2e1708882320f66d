"""The head-to-head: Rankwright against Optuna TPE (default, few start-up trials) and random
search, at equal measured compute, on every cell of `tasks.cells`.

The benchmark owns the final evaluation. Each method, on each method seed, spends its
charged budget and hands over the one configuration it would ship, chosen from what it
measured on validation. The benchmark then trains every shipped configuration on the same
fresh evaluation seeds (`tasks.EVAL_SEEDS`, which no method trains on), uncharged and the
same way for every method, and reads the test split there. Gains are paired with the
baseline's runs on those seeds (they are also the reference: the budget's unit); gaps are
counted to the Bayes limit (synthetic) or a reference fixed before the runs (real data).
A method seed drives every method's training seeds, so the intervals over method seeds
carry training noise. All of it lands in a work folder; `--resume` reuses every run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rankwright.analysis.stats import mean_ci
from rankwright.bench import tasks as T

Say = Callable[[str], None]


@dataclass(frozen=True)
class Reference:
    unit_s: float
    test_ne: float
    test_auc: float
    bayes_ne: float | None
    runs: int
    reused: int
    by_seed: dict[str, dict[str, float]] = field(default_factory=dict)  # evaluation seed -> test ne, auc


def _commit(root: Path, *paths: str) -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%h", "--", *paths] if paths
                          else ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


BUSY_LOAD = 1.25  # a load average above this many times the cores: CPU time measured then is inflated


def is_busy(load: float) -> bool:
    """Whether a load average says the machine was busy (its CPU time measurements inflated)."""
    return load > BUSY_LOAD * (os.cpu_count() or 1)
OVERSPEND_SHOWN = 0.005  # used beyond the budget by more than this share is marked: nobody may overspend


def _overspent(row: dict[str, Any]) -> bool:
    return row["used_max"] > row.get("units", float("inf")) * (1 + OVERSPEND_SHOWN)


def _provenance(part: dict[str, Any]) -> str:
    """Which commit produced each method's outcomes, when a resumed run reused older ones."""
    by_method: dict[str, set[str]] = {}
    for o in part.get("outcomes", []):
        by_method.setdefault(o["method"], set()).add(o.get("commit", "unknown"))
    if all(c == {part["commit"]} for c in by_method.values()):
        return ""
    return " Outcomes by the commit that produced them: " + "; ".join(
        f"{m} at {', '.join(sorted(c))}" for m, c in by_method.items()) + "."


def _target(task: str | T.Task, baseline: str):
    from rankwright.targets.builtin import builtin_target

    task = T.TASKS[task] if isinstance(task, str) else task
    return builtin_target(task.model_name, task.config(baseline))


def reference(task: str | T.Task, baseline: str, work: Path, say: Say) -> Reference:
    """The baseline trained on the evaluation seeds (not charged to anyone): the budget's
    unit, and the runs every shipped configuration's test readings are paired with."""
    from rankwright.bench.runs import Runner

    task = T.TASKS[task] if isinstance(task, str) else task
    runner = Runner(_target(task, baseline), work / "eval" / f"{task.name}-{baseline}", T.MAX_PARALLEL)
    done = runner.run_all({f"baseline/seed{s}": {"train.seed": s} for s in T.EVAL_SEEDS})
    ok = {key: f for key, f in done.items() if f.status == "succeeded" and "ne" in f.test}
    if len(ok) < len(done):
        raise RuntimeError(f"the {baseline} baseline of {task.name} failed on an evaluation seed: "
                           f"{[f.status for f in done.values()]}; see {runner.folder}")
    runs = list(ok.values())
    ref = Reference(unit_s=sum(f.cpu_seconds for f in runs) / len(runs),
                    test_ne=sum(f.test["ne"] for f in runs) / len(runs),
                    test_auc=sum(f.test.get("auc", float("nan")) for f in runs) / len(runs),
                    bayes_ne=runs[0].bayes_ne if task.reference_ne is None else task.reference_ne,
                    runs=len(done), reused=sum(f.reused for f in done.values()),
                    by_seed={key.split("/seed")[1]: {"ne": f.test["ne"], "auc": f.test.get("auc")}
                             for key, f in ok.items()})
    say(f"reference {task.name} {baseline}: test NE {ref.test_ne:.4f}, AUC {ref.test_auc:.4f} over the "
        f"{len(runs)} evaluation seeds, one run {ref.unit_s:.1f} CPU s ({ref.reused} of {ref.runs} runs reused)")
    return ref


def _changes_key(changes: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()[:12]


def evaluate(cell: T.Cell, changes: dict[str, Any], ref: Reference, work: Path) -> dict[str, Any]:
    """A shipped configuration trained on every evaluation seed, uncharged: its test readings
    by seed. The same configuration shipped twice (by any method) runs once; the baseline's
    are the reference runs themselves."""
    from rankwright.bench.runs import Runner

    changes = {k: v for k, v in changes.items() if k != "train.seed"}
    if not changes:
        return {"config": "baseline", "by_seed": ref.by_seed}
    key = _changes_key(changes)
    runner = Runner(_target(cell.task, cell.baseline), work / "eval" / f"{cell.task}-{cell.baseline}",
                    T.MAX_PARALLEL)
    done = runner.run_all({f"{key}/seed{s}": {**changes, "train.seed": s} for s in T.EVAL_SEEDS})
    bad = [k for k, f in done.items() if f.status != "succeeded" or "ne" not in f.test]
    if bad:
        raise RuntimeError(f"the shipped configuration {changes} failed its evaluation runs {bad}; "
                           f"see {runner.folder}")
    return {"config": key, "by_seed": {k.split("/seed")[1]: {"ne": f.test["ne"], "auc": f.test.get("auc")}
                                       for k, f in done.items()}}


def run_method(cell: T.Cell, method: str, seed: int, ref: Reference, work: Path, say: Say,
               commit: str = "unknown") -> dict[str, Any]:
    """One method on one seed of one cell, then the benchmark's evaluation of what it ships.
    The outcome is cached once it ended, with the commit of the code that produced it (a
    resumed run may mix commits; the results say so)."""
    folder = work / "cells" / cell.name / f"{method}-s{seed}"
    cached = folder / "outcome.json"
    if cached.exists():
        out = json.loads(cached.read_text())
        out["reused"] = out["runs"]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        out = _search(cell, method, seed, ref, folder)
        out.update(cell=cell.name, task=cell.task, baseline=cell.baseline, budget=cell.budget, seed=seed,
                   budget_s=cell.units * ref.unit_s, unit_s=ref.unit_s, commit=commit)
        cached.write_text(json.dumps(out, indent=1) + "\n")
    if "evaluation" not in out:
        out["evaluation"] = evaluate(cell, out["changes"], ref, work)
        cached.write_text(json.dumps(out, indent=1) + "\n")
    return out


def _search(cell: T.Cell, method: str, seed: int, ref: Reference, folder: Path) -> dict[str, Any]:
    """The charged part: the method spends the cell's budget and names what it would ship
    (its knob changes from the baseline; none for the baseline itself)."""
    budget_s = cell.units * ref.unit_s
    if method == "rankwright":
        from rankwright.bench.campaign import run_campaign

        return run_campaign(T.campaign_spec(cell, seed, budget_s / 3600.0), folder)
    from rankwright.bench.peers import changes_of, copy_last, run_study

    if method == "copy":  # the tuner's winner on the same data's other baseline (or small budget), run before
        other = (T.Cell(cell.task, "strong" if cell.baseline == "weak" else "weak", cell.budget)
                 if cell.budget == "small" else T.Cell(cell.task, cell.baseline, "small"))
        source = folder.parent.parent / other.name / f"{T.COPY_SOURCE}-s{seed}"
        return copy_last(source, seed, _target(cell.task, cell.baseline), folder)

    space = T.peer_space(T.TASKS[cell.task], cell.baseline)
    study = run_study(method, seed, _target(cell.task, cell.baseline), space, budget_s, ref.unit_s, folder)
    best = study["best"]
    shipped = best is not None and not study["best_is_baseline"]
    (folder / "trials.json").write_text(json.dumps(study["trials"], indent=1) + "\n")
    return {"method": method, "shipped_baseline": not shipped,
            "changes": changes_of(best["params"], space) if shipped else {},
            "spent_s": study["spent_s"], "runs": study["runs"], "reused": study["reused"],
            "wall_s": study["wall_s"], "best_valid": best["objective"] if best else None,
            "pruned": sum(1 for t in study["trials"] if t["state"] == "pruned")}


def _summary(values: list[float]) -> dict[str, float]:
    m, low, high = mean_ci(values)
    return {"mean": m, "low": low, "high": high, "n": len(values)}


def scores(o: dict[str, Any], ref: Reference, reference_ne: float | None) -> dict[str, float | None]:
    """One method seed's figures from the benchmark's evaluation runs: the test-NE gain
    paired with the baseline on each evaluation seed (relative to the baseline's mean), the
    AUC gain, the mean test NE, and the gap to the reference."""
    by_seed = o["evaluation"]["by_seed"]
    seeds = sorted(set(by_seed) & set(ref.by_seed))
    ne = sum(by_seed[s]["ne"] for s in seeds) / len(seeds)
    gain = sum(ref.by_seed[s]["ne"] - by_seed[s]["ne"] for s in seeds) / len(seeds) / ref.test_ne
    aucs = [(by_seed[s]["auc"], ref.by_seed[s]["auc"]) for s in seeds
            if by_seed[s].get("auc") is not None and ref.by_seed[s].get("auc") is not None]
    return {"test_ne": ne, "gain_ne": gain,
            "gain_auc": sum(a - b for a, b in aucs) / len(aucs) if aucs else float("nan"),
            "gap": None if reference_ne is None else ne - reference_ne, "eval_seeds": len(seeds)}


BOOTSTRAP = 4000  # resamples of method seeds behind a ratio's interval


def ratio_ci(ours: list[float], peer: list[float]) -> dict[str, Any]:
    """Ratio of means over the method seeds (paired: the same seeds on both sides) with a
    95% percentile bootstrap interval; None where the peer's mean is not positive."""
    import numpy as np

    a, b = np.asarray(ours, float), np.asarray(peer, float)
    if len(a) == 0 or b.mean() <= 0 or a.mean() <= 0:
        return {"value": None, "low": None, "high": None}
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(a), size=(BOOTSTRAP, len(a)))
    num, den = a[idx].mean(axis=1), b[idx].mean(axis=1)
    ok = den > 0
    ratios = np.where(ok, num / np.where(ok, den, 1.0), np.inf)
    # no interpolation: a resample whose peer mean is not positive has an infinite ratio
    return {"value": float(a.mean() / b.mean()), "low": float(np.quantile(ratios, 0.025, method="inverted_cdf")),
            "high": float(np.quantile(ratios, 0.975, method="inverted_cdf"))}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses (ties left out)."""
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0


TIE = 1e-9  # test NE differences below this are ties (both shipped the same configuration)


def aggregate(outcomes: list[dict[str, Any]], refs: dict[str, Reference]) -> dict[str, Any]:
    """Per cell and method: gain, gap and compute over the method seeds; per cell and peer:
    Rankwright's win rate at the same method seed (sign test) and its gap and gain ratios
    with intervals; their geometric means, each saying how many cells it covers."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    per_seed: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for o in outcomes:
        ref = refs[f"{o['task']}-{o['baseline']}"]
        x = scores(o, ref, ref.bayes_ne)
        row = rows.setdefault((o["cell"], o["method"]), {
            "cell": o["cell"], "method": o["method"], "task": o["task"], "baseline": o["baseline"],
            "budget": o["budget"], "seeds": [], "reference_ne": ref.bayes_ne, "baseline_ne": ref.test_ne,
            "baseline_auc": ref.test_auc})
        x.update(seed=o["seed"], used=o["spent_s"] / o["unit_s"], units=o["budget_s"] / o["unit_s"],
                 wall_s=o["wall_s"], runs=o["runs"], reused=o["reused"], shipped_baseline=o["shipped_baseline"],
                 changes=o.get("changes", {}))
        row["seeds"].append(x)
        per_seed.setdefault((o["cell"], o["method"]), {})[o["seed"]] = x
    for row in rows.values():
        s = row["seeds"]
        row["gain_ne"] = _summary([x["gain_ne"] for x in s])
        row["gain_auc"] = _summary([x["gain_auc"] for x in s])
        row["gap"] = None if row["reference_ne"] is None else _summary([x["gap"] for x in s])
        row["used_max"] = max(x["used"] for x in s)
        row["units"] = max(x["units"] for x in s)
        row["wall_s"] = sum(x["wall_s"] for x in s) / len(s)
        row["runs"] = sum(x["runs"] for x in s)
        row["reused"] = sum(x["reused"] for x in s)
        row["shipped_baseline"] = sum(1 for x in s if x["shipped_baseline"])
    ratios = []
    for (cell, method), row in rows.items():
        ours = per_seed.get((cell, "rankwright"))
        if method == "rankwright" or ours is None:
            continue
        theirs = per_seed[(cell, method)]
        shared = sorted(set(ours) & set(theirs))
        diffs = [theirs[s]["test_ne"] - ours[s]["test_ne"] for s in shared]
        wins, losses = sum(d > TIE for d in diffs), sum(d < -TIE for d in diffs)
        gap = (ratio_ci([ours[s]["gap"] for s in shared], [theirs[s]["gap"] for s in shared])
               if row["gap"] is not None else {"value": None, "low": None, "high": None})
        gain = ratio_ci([ours[s]["gain_ne"] for s in shared], [theirs[s]["gain_ne"] for s in shared])
        ratios.append({"cell": cell, "peer": method, "budget": row["budget"], "baseline": row["baseline"],
                       "task": row["task"], "seeds": len(shared), "wins": wins, "losses": losses,
                       "ties": len(shared) - wins - losses, "sign_p": sign_test(wins, losses),
                       "gap_ratio": gap, "gain_ratio": gain,
                       "gain_ours": sum(ours[s]["gain_ne"] for s in shared) / len(shared),
                       "gain_peer": sum(theirs[s]["gain_ne"] for s in shared) / len(shared)})
    geo = {}
    for peer in T.PEERS:
        for budget in ("small", "large"):
            mine = [r for r in ratios if r["peer"] == peer and r["budget"] == budget]
            if not mine:
                continue
            geo[f"{peer}/{budget}"] = {key: _geomean([r[key]["value"] for r in mine])
                                       for key in ("gain_ratio", "gap_ratio")}
            geo[f"{peer}/{budget}"].update(cells=len(mine), wins=sum(r["wins"] for r in mine),
                                           losses=sum(r["losses"] for r in mine),
                                           ties=sum(r["ties"] for r in mine))
    order = list(dict.fromkeys(o["cell"] for o in outcomes))  # cells in the order they ran
    return {"rows": sorted(rows.values(), key=lambda r: (order.index(r["cell"]), T.METHODS.index(r["method"]))),
            "ratios": ratios, "geomean": geo}


def _geomean(values: list[float | None]) -> dict[str, Any]:
    usable = [v for v in values if v is not None and v > 0]
    return {"value": math.exp(sum(math.log(v) for v in usable) / len(usable)) if usable else None,
            "of": len(usable), "cells": len(values)}


GOALS = {"small": 0.8, "large": 0.9}  # the geometric mean of Rankwright's gap over TPE's, at most
CELL_GOAL = 1.1  # no small cell's gap ratio above this
WIN_GOAL = 0.6  # Rankwright beats TPE on at least this share of small method seeds
LONG_RUN_GOAL = 0.5


def goals(summary: dict[str, Any]) -> list[str]:
    """The issue's goals, each said as met or missed with its figure."""
    out = []
    for budget in ("small", "large"):
        mine = [r for r in summary["ratios"] if r["peer"] == "tpe" and r["budget"] == budget]
        if not mine:
            continue
        geo = summary["geomean"][f"tpe/{budget}"]["gap_ratio"]
        value = geo["value"]
        per_cell = ", ".join(f"{r['cell']} {'-' if r['gap_ratio']['value'] is None else format(r['gap_ratio']['value'], '.2f')}"
                             for r in mine)
        covered = f"over {geo['of']} of {geo['cells']} cells"
        ok = value is not None and value <= GOALS[budget] and geo["of"] == geo["cells"]
        line = (f"{budget} budget, gap over TPE's geo. mean at most {GOALS[budget]}: {'met' if ok else 'missed'} "
                f"({'-' if value is None else format(value, '.2f')} {covered}; {per_cell})")
        if budget == "large":
            has_frappe = any(r["task"] == "frappe" for r in mine)
            line += "" if has_frappe else "; Frappe not among the cells run"
        out.append(line)
        if budget == "small":
            worst = [r["gap_ratio"]["value"] for r in mine]
            ok = all(v is not None and v <= CELL_GOAL for v in worst)
            out.append(f"small budget, no cell's gap ratio above {CELL_GOAL}: {'met' if ok else 'missed'}")
            wins = sum(r["wins"] for r in mine)
            seeds = sum(r["seeds"] for r in mine)
            out.append(f"small budget, beats TPE on at least {WIN_GOAL:.0%} of method seeds: "
                       f"{'met' if seeds and wins / seeds >= WIN_GOAL else 'missed'} ({wins} of {seeds}; "
                       f"{sum(r['losses'] for r in mine)} lost, {sum(r['ties'] for r in mine)} tied)")
        out.append(f"{budget} budget, long-run goal of {LONG_RUN_GOAL}x TPE's gap: "
                   f"{'met' if value is not None and value <= LONG_RUN_GOAL else 'missed'}")
    return out


def _fmt_ci(s: dict[str, float], scale: float = 100.0, digits: int = 2) -> str:
    if s["n"] < 2:
        return f"{s['mean'] * scale:+.{digits}f}"
    return f"{s['mean'] * scale:+.{digits}f} ({s['low'] * scale:+.{digits}f},{s['high'] * scale:+.{digits}f})"


def _windows(part: dict[str, Any]) -> str:
    """The earlier invocations whose outcomes a resumed run reused."""
    earlier = part.get("windows", [])[:-1]
    if not earlier:
        return ""
    return " Earlier runs on the same work folder: " + "; ".join(
        f"{w['started']} to {w['finished']} at {w['commit']}" for w in earlier) + "."


def _fmt_ratio(r: dict[str, Any]) -> str:
    if r["value"] is None:
        return "-"
    high = "inf" if r["high"] is None or math.isinf(r["high"]) else f"{r['high']:.2f}"
    return f"{r['value']:.2f} ({r['low']:.2f},{high})"


def render(document: dict[str, Any]) -> str:
    """Markdown of every seed set in the document, each table readable at 80 columns."""
    lines = ["# Head-to-head: Rankwright vs Optuna TPE and random search, equal compute", ""]
    lines += [
        "Budget in baseline-run equivalents of measured CPU time; every method runs 2 trials "
        "side by side on the same target, knobs and fidelities, and hands over the one "
        "configuration it would ship, chosen on validation. The benchmark trains each "
        f"shipped configuration on the same {len(T.EVAL_SEEDS)} fresh evaluation seeds "
        f"({', '.join(map(str, T.EVAL_SEEDS))}; no method trains on them), uncharged, and "
        "reads test there. `NE gain` is the relative test-NE improvement over the baseline "
        "on those seeds, in % (mean over method seeds, 95% t interval), `AUC` the AUC gain "
        "x100, `gap` the test NE left above the reference x100 (Bayes limit on synthetic "
        "data; real data: the fixed reference in `bench/tasks.py`), `base` how many method "
        "seeds shipped the baseline, `used` the most compute any seed used, in units. A "
        "method seed drives every method's training seeds.", ""]
    for name, part in document["sets"].items():
        s = part["summary"]
        lines += [f"## Seeds: {name} ({', '.join(map(str, part['seeds']))})", "",
                  f"Settings fixed at commit {part['settings_commit']}; ran at commit {part['commit']}, "
                  f"{part['started']} to {part['finished']}; {part['wall_s'] / 60:.0f} min wall on "
                  f"{part['cpus']} cores. Tasks: {', '.join(part.get('tasks', []))}"
                  + (f" (held out: {', '.join(part['held_out_tasks'])})" if part.get("held_out_tasks") else "")
                  + "." + _windows(part) + _provenance(part)
                  + ("" if part.get("complete", True) else
                     f" **Partial: {part['done']} of {part['of']} method runs so far** (the run goes on with "
                     f"`rankwright bench --resume DIR`)."), ""]
        policy = part.get("policy_commits")
        if policy is not None:
            lines += [f"Agent-policy and knowledge-base commits after this issue's first fair run "
                      f"({part.get('first_fair_run') or 'this run'}): "
                      + ("none." if not policy else ""), ""]
            lines += [f"- {c}" for c in policy] + ([""] if policy else [])
        lines += ["| cell / method | NE gain % (95% CI) | AUC | gap | base | used | wall |",
                  "|---|---|---|---|---|---|---|"]
        last = None
        for r in s["rows"]:
            if r["cell"] != last:
                lines.append(f"| **{r['cell']}** | | | | | | |")
            last = r["cell"]
            over = "!" if _overspent(r) else ""
            gap = "-" if r["gap"] is None else f"{r['gap']['mean'] * 100:.2f}"
            lines.append(f"| {r['method']} | {_fmt_ci(r['gain_ne'])} | {r['gain_auc']['mean'] * 100:+.2f} | "
                         f"{gap} | {r['shipped_baseline']}/{len(r['seeds'])} | {r['used_max']:.1f}{over} | "
                         f"{r['wall_s'] / 60:.1f}m |")
        over = [f"{r['method']} on {r['cell']} ({r['used_max']:.1f} of {r['units']:g})" for r in s["rows"]
                if _overspent(r)]
        if over:
            lines += ["", f"`!` a seed used more than its budget (by over {OVERSPEND_SHOWN:.1%}): "
                      + "; ".join(over) + "."]
        busy = [f"{o['method']} seed {o['seed']} on {o['cell']} (load {o['load']:.1f})"
                for o in part.get("outcomes", ()) if o.get("busy")]
        if busy:
            lines += ["", f"Measured while the machine was busy (5-minute load average above {BUSY_LOAD:g}x the "
                      f"{part['cpus']} cores; their CPU time, hence their budget, is inflated): "
                      + "; ".join(busy) + "."]
        for peer in T.PEERS:
            mine = [r for r in s["ratios"] if r["peer"] == peer]
            if not mine:
                continue
            lines += ["", f"Rankwright against {peer} at the same method seed: gap ratio (lower is better) "
                      "and gain ratio (higher is better), 95% bootstrap intervals over method seeds; "
                      "wins-losses-ties on evaluated test NE, two-sided sign test:", "",
                      "| cell | gap x (95% CI) | gain x (95% CI) | W-L-T | sign p |", "|---|---|---|---|---|"]
            for r in mine:
                lines.append(f"| {r['cell']} | {_fmt_ratio(r['gap_ratio'])} | {_fmt_ratio(r['gain_ratio'])} | "
                             f"{r['wins']}-{r['losses']}-{r['ties']} | {r['sign_p']:.2f} |")
            for budget in ("small", "large"):
                g = s["geomean"].get(f"{peer}/{budget}")
                if not g:
                    continue
                gap, gain = g["gap_ratio"], g["gain_ratio"]
                lines.append(f"| geo. mean, {budget} | "
                             f"{'-' if gap['value'] is None else format(gap['value'], '.2f')} "
                             f"({gap['of']} of {gap['cells']} cells) | "
                             f"{'-' if gain['value'] is None else format(gain['value'], '.2f')} "
                             f"({gain['of']} of {gain['cells']}) | {g['wins']}-{g['losses']}-{g['ties']} | "
                             f"{sign_test(g['wins'], g['losses']):.2f} |")
        lines += ["", "Goals:", ""] + [f"- {line}" for line in part["goals"]] + [""]
        if part.get("failures"):
            lines += ["Method runs that failed (left out of every figure above):", ""]
            lines += [f"- {f['cell']} {f['method']} seed {f['seed']}: {f['error'].splitlines()[0][:150]}"
                      for f in part["failures"]] + [""]
    return "\n".join(lines) + "\n"


def plot(document: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = list(document["sets"].items())
    fig, axes = plt.subplots(len(parts), 1, figsize=(10, 3.6 * len(parts)), squeeze=False)
    colors = {"rankwright": "#1b7837", "tpe": "#2166ac", "tpe-few": "#67a9cf", "random": "#999999",
              "copy": "#d6604d"}
    for ax, (name, part) in zip(axes[:, 0], parts):
        rows = part["summary"]["rows"]
        cells = list(dict.fromkeys(r["cell"] for r in rows))
        width = 0.8 / len(T.METHODS)
        for i, method in enumerate(T.METHODS):
            xs, ys, errs = [], [], []
            for j, cell in enumerate(cells):
                r = next((r for r in rows if r["cell"] == cell and r["method"] == method), None)
                if r is None or r["gap"] is None:
                    continue
                xs.append(j + (i - (len(T.METHODS) - 1) / 2) * width)
                ys.append(r["gap"]["mean"] * 100)
                errs.append((r["gap"]["high"] - r["gap"]["mean"]) * 100)
            ax.bar(xs, ys, width, yerr=errs, label=method, color=colors[method], capsize=2)
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels(cells, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("test NE gap x100 (lower is better)")
        ax.set_title(f"remaining gap to the reference, seeds: {name}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FORMAT = 2  # the fair judge of issue 23: the benchmark evaluates what each method ships


def _earlier_windows(out: Path, seed_set: str, work: Path) -> list[dict[str, str]]:
    """When and at which commit earlier invocations on the same work folder ran: a resumed
    run reuses their outcomes, so the results name their times too."""
    path = out.with_suffix(".json")
    if not path.exists():
        return []
    document = json.loads(path.read_text())
    part = document.get("sets", {}).get(seed_set) if document.get("format") == FORMAT else None
    if not part or part.get("work") != str(work):
        return []
    return part.get("windows") or [{"commit": part["commit"], "started": part["started"],
                                    "finished": part["finished"]}]


def policy_commits(root: Path, since: str | None) -> list[str]:
    """Commits after `since` that changed an agent policy or the knowledge base."""
    if not since:
        return []
    done = subprocess.run(["git", "log", "--format=%h %ad %s", "--date=short", f"{since}..HEAD", "--",
                           *T.POLICY_PATHS], cwd=root, capture_output=True, text=True)
    return [line[:160] for line in done.stdout.splitlines()]


def write(part: dict[str, Any], seed_set: str, refs: dict[str, Reference], out: Path) -> None:
    """Summarise `part` and write it into the results files beside the other seed set."""
    part["summary"] = aggregate(part["outcomes"], refs)
    part["goals"] = goals(part["summary"])
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_suffix(".json")
    document = json.loads(json_path.read_text()) if json_path.exists() else {}
    if document.get("format") != FORMAT:  # an earlier judge's results: kept in git history, not mixed in
        document = {"format": FORMAT, "sets": {}}
    document["sets"][seed_set] = part
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    out.with_suffix(".md").write_text(render(document))
    plot(document, out.with_suffix(".png"))


def run(tasks: tuple[str, ...], budgets: tuple[str, ...], seed_set: str, work: Path, out: Path, root: Path,
        say: Say, methods: tuple[str, ...] = T.METHODS) -> dict[str, Any]:
    """Run (or resume) every cell on one seed set, then write the results files."""
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.time()
    work.mkdir(parents=True, exist_ok=True)
    if is_busy(load := os.getloadavg()[0]):
        say(f"warning: the machine is busy (load {load:.1f} on {os.cpu_count()} cores); CPU time measured now is "
            "inflated (15% seen here), so stop other work first")
    held_out = [t for t in tasks if T.TASKS[t].held_out]
    if held_out and seed_set != "held-out":
        raise ValueError(f"held-out tasks ({', '.join(held_out)}) run once, with --seeds held-out, after every "
                         "development run; no development run may touch them")
    todo = [c for c in T.cells(tasks, budgets)]
    skipped = {}
    for cell in todo:
        why = T.TASKS[cell.task].available()
        if why:
            skipped[cell.name] = why
    todo = [c for c in todo if c.name not in skipped]
    for name, why in skipped.items():
        say(f"skipping {name}: {why}")
    refs = {}
    for key in dict.fromkeys(f"{c.task}-{c.baseline}" for c in todo):
        task, baseline = key.split("-")
        refs[key] = reference(task, baseline, work, say)
    outcomes: list[dict[str, Any]] = []
    earlier = _earlier_windows(out, seed_set, work)
    settings_commit, policy = _commit(root, "src/rankwright/bench/tasks.py"), policy_commits(root, T.FIRST_FAIR_RUN)
    commit = _commit(root)
    total = sum(len(T.SEED_SETS[seed_set][c.budget]) * len(methods) for c in todo)
    part: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    # "copy" reads what the tuner shipped on the other baseline: it runs after every other method
    jobs = [(cell, seed, method) for late in (False, True) for cell in todo
            for seed in T.SEED_SETS[seed_set][cell.budget] for method in methods if (method == "copy") == late]
    for cell, seed, method in jobs:
        begun = time.time()
        where = f"[{len(outcomes) + len(failures) + 1}/{total}] {cell.name} {method} seed {seed}"
        try:
            o = run_method(cell, method, seed, refs[f"{cell.task}-{cell.baseline}"], work, say, commit)
        except Exception as exc:  # one broken method must not cost the whole night's runs
            failures.append({"cell": cell.name, "method": method, "seed": seed,
                             "error": (str(exc) or repr(exc))[-2000:]})
            say(f"{where}: FAILED, left out of the figures and listed in the results: "
                f"{(str(exc).splitlines() or [repr(exc)])[0][:200]}")
        else:
            if o["reused"] < o["runs"]:  # measured now: how busy the machine was while it ran
                o["load"] = os.getloadavg()[1]
                o["busy"] = is_busy(o["load"])
                if o["busy"]:
                    say(f"{where}: the machine was busy (load {o['load']:.1f} on {os.cpu_count()} cores): "
                        "this method-seed's CPU time is inflated; the results will say so")
            outcomes.append(o)
            ref = refs[f"{cell.task}-{cell.baseline}"]
            x = scores(o, ref, ref.bayes_ne)
            say(f"{where}: evaluated test NE {x['test_ne']:.4f} ({x['gain_ne']:+.2%})"
                f"{' (ships the baseline)' if o['shipped_baseline'] else ''}"
                f", used {o['spent_s'] / o['unit_s']:.1f}/{cell.units} units, {o['runs']} runs "
                f"({o['reused']} reused), {time.time() - begun:.0f} s")
        # written after every method, so a run stopped mid-way still leaves its figures
        window = {"commit": commit, "started": started,
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        part = {"seeds": sorted({o["seed"] for o in outcomes}), "commit": commit,
                "windows": [*earlier, window],
                "settings_commit": settings_commit, "started": started,
                "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "wall_s": time.time() - t0, "cpus": os.cpu_count(), "work": str(work),
                "complete": len(outcomes) + len(failures) == total, "done": len(outcomes), "of": total,
                "failures": failures,
                "skipped": skipped, "references": {k: r.__dict__ for k, r in refs.items()},
                "tasks": list(dict.fromkeys(c.task for c in todo)), "held_out_tasks": held_out,
                "eval_seeds": list(T.EVAL_SEEDS), "first_fair_run": T.FIRST_FAIR_RUN,
                "policy_commits": policy,
                "outcomes": outcomes}
        write(part, seed_set, refs, out)
    return part
