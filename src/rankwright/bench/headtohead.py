"""The head-to-head: Rankwright against Optuna TPE (default, few start-up trials) and random
search, at equal measured compute, on every cell of `tasks.cells`.

For each task and baseline the benchmark first measures the baseline itself over five
training seeds (not charged to anyone): its CPU seconds are the budget's unit and its test
metrics are what every method's improvement is measured from. Then every method runs on
every seed of the cell, interleaved so that machine noise hits all of them alike.

A method's result is the configuration it would ship: a peer's best trial by validation
objective (its run's test metrics), Rankwright's proposal (the mean over its confirmation
seeds). Shipping the baseline scores exactly the baseline. All of it lands in a work
folder; a second invocation with `--resume` reuses every run and every finished method.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
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

    return builtin_target("dnn", (T.TASKS[task] if isinstance(task, str) else task).config(baseline))


def reference(task: str | T.Task, baseline: str, work: Path, say: Say) -> Reference:
    """The baseline measured over the reference seeds: the budget's unit and the scores
    every method's improvement is counted from."""
    from rankwright.bench.runs import Runner

    task = T.TASKS[task] if isinstance(task, str) else task
    runner = Runner(_target(task, baseline), work / "reference" / f"{task.name}-{baseline}", T.MAX_PARALLEL)
    done = runner.run_all({f"reference-{task.name}-{baseline}/seed{s}": {"train.seed": s}
                           for s in T.REFERENCE_SEEDS})
    ok = [f for f in done.values() if f.status == "succeeded" and "ne" in f.test]
    if len(ok) < 2:
        raise RuntimeError(f"the {baseline} baseline of {task} failed: {[f.status for f in done.values()]}; "
                           f"see {runner.folder}")
    ref = Reference(unit_s=sum(f.cpu_seconds for f in ok) / len(ok), test_ne=sum(f.test["ne"] for f in ok) / len(ok),
                    test_auc=sum(f.test["auc"] for f in ok) / len(ok), bayes_ne=ok[0].bayes_ne, runs=len(done),
                    reused=sum(f.reused for f in done.values()))
    say(f"reference {task.name} {baseline}: test NE {ref.test_ne:.4f}, AUC {ref.test_auc:.4f}, "
        f"one run {ref.unit_s:.1f} CPU s ({ref.reused} of {ref.runs} runs reused)")
    return ref


def run_method(cell: T.Cell, method: str, seed: int, ref: Reference, work: Path, say: Say,
               commit: str = "unknown") -> dict[str, Any]:
    """One method on one seed of one cell; its outcome is cached once it ended, with the
    commit of the code that produced it (a resumed run may mix commits; the results say so)."""
    folder = work / "cells" / cell.name / f"{method}-s{seed}"
    cached = folder / "outcome.json"
    if cached.exists():
        out = json.loads(cached.read_text())
        out["reused"] = out["runs"]
        return out
    budget_s = cell.units * ref.unit_s
    if method == "rankwright":
        from rankwright.bench.campaign import run_campaign

        out = run_campaign(T.campaign_spec(cell, seed, budget_s / 3600.0), folder)
    else:
        from rankwright.bench.peers import run_study

        study = run_study(method, seed, _target(cell.task, cell.baseline),
                          T.peer_space(T.TASKS[cell.task], cell.baseline), budget_s, ref.unit_s, folder)
        best = study["best"]
        shipped = best is not None and not study["best_is_baseline"]
        out = {"method": method, "shipped_baseline": not shipped,
               "test_ne": best["test"].get("ne") if shipped else None,
               "test_auc": best["test"].get("auc") if shipped else None,
               "changes": best["params"] if shipped else {}, "spent_s": study["spent_s"], "runs": study["runs"],
               "reused": study["reused"], "wall_s": study["wall_s"],
               "best_valid": best["objective"] if best else None,
               "pruned": sum(1 for t in study["trials"] if t["state"] == "pruned"),
               "all_test_ne": [t["test"]["ne"] for t in study["trials"] if "ne" in t["test"]]}
        (folder / "trials.json").write_text(json.dumps(study["trials"], indent=1) + "\n")
    out.update(cell=cell.name, task=cell.task, baseline=cell.baseline, budget=cell.budget, seed=seed,
               budget_s=budget_s, unit_s=ref.unit_s, commit=commit)
    if out["shipped_baseline"]:
        out["test_ne"], out["test_auc"] = ref.test_ne, ref.test_auc
    cached.write_text(json.dumps(out, indent=1) + "\n")
    return out


def _summary(values: list[float]) -> dict[str, float]:
    m, low, high = mean_ci(values)
    return {"mean": m, "low": low, "high": high, "n": len(values)}


def aggregate(outcomes: list[dict[str, Any]], refs: dict[str, Reference]) -> dict[str, Any]:
    """Per cell and method: improvement, remaining gap, compute, wall; Rankwright's ratios
    to each peer per cell and their geometric means."""
    frappe_best = min((t for o in outcomes if o["task"] == "frappe" for t in o.get("all_test_ne", [])), default=None)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for o in outcomes:
        ref = refs[f"{o['task']}-{o['baseline']}"]
        reference_ne = ref.bayes_ne if ref.bayes_ne is not None else frappe_best
        if reference_ne is None:
            reference_ne = min(ref.test_ne, o["test_ne"])
        row = rows.setdefault((o["cell"], o["method"]), {"cell": o["cell"], "method": o["method"], "task": o["task"],
                                                         "baseline": o["baseline"], "budget": o["budget"],
                                                         "seeds": [], "reference_ne": reference_ne,
                                                         "baseline_ne": ref.test_ne, "baseline_auc": ref.test_auc})
        row["seeds"].append({"seed": o["seed"], "gain_ne": (ref.test_ne - o["test_ne"]) / ref.test_ne,
                             "gain_auc": o["test_auc"] - ref.test_auc, "gap": o["test_ne"] - reference_ne,
                             "used": o["spent_s"] / o["unit_s"], "units": o["budget_s"] / o["unit_s"],
                             "wall_s": o["wall_s"], "runs": o["runs"], "reused": o["reused"],
                             "shipped_baseline": o["shipped_baseline"]})
    for row in rows.values():
        s = row["seeds"]
        row["gain_ne"] = _summary([x["gain_ne"] for x in s])
        row["gain_auc"] = _summary([x["gain_auc"] for x in s])
        row["gap"] = _summary([x["gap"] for x in s])
        row["used_max"] = max(x["used"] for x in s)
        row["units"] = max(x["units"] for x in s)
        row["wall_s"] = sum(x["wall_s"] for x in s) / len(s)
        row["runs"] = sum(x["runs"] for x in s)
        row["reused"] = sum(x["reused"] for x in s)
    ratios = []
    for (cell, method), row in rows.items():
        if method == "rankwright":
            continue
        ours = rows.get((cell, "rankwright"))
        if ours is None:
            continue
        g_ours, g_peer = ours["gain_ne"]["mean"], row["gain_ne"]["mean"]
        ratios.append({"cell": cell, "peer": method, "budget": row["budget"], "baseline": row["baseline"],
                       "gain_ratio": g_ours / g_peer if g_peer > 0 and g_ours > 0 else None,
                       "gain_ours": g_ours, "gain_peer": g_peer,
                       "gap_ratio": ours["gap"]["mean"] / row["gap"]["mean"] if row["gap"]["mean"] > 0 else None})
    geo = {}
    for peer in ("tpe", "tpe-few", "random"):
        for budget in ("small", "large"):
            mine = [r for r in ratios if r["peer"] == peer and r["budget"] == budget]
            geo[f"{peer}/{budget}"] = {key: _geomean([r[key] for r in mine]) for key in ("gain_ratio", "gap_ratio")}
            geo[f"{peer}/{budget}"]["cells"] = len(mine)
    order = list(dict.fromkeys(o["cell"] for o in outcomes))  # cells in the order they ran
    return {"rows": sorted(rows.values(), key=lambda r: (order.index(r["cell"]), T.METHODS.index(r["method"]))),
            "ratios": ratios,
            "geomean": geo, "frappe_reference_ne": frappe_best}


def _geomean(values: list[float | None]) -> dict[str, Any]:
    usable = [v for v in values if v is not None and v > 0]
    return {"value": math.exp(sum(math.log(v) for v in usable) / len(usable)) if usable else None,
            "of": len(usable), "left_out": len(values) - len(usable)}


def goals(summary: dict[str, Any]) -> list[str]:
    """The issue's goals, each said as met or missed with its figure."""
    out = []
    small = [r for r in summary["ratios"] if r["peer"] == "tpe" and r["budget"] == "small"]
    if small:
        gaps = [r["gap_ratio"] for r in small if r["gap_ratio"] is not None]
        worst = max(gaps) if gaps else None
        out.append(f"small budget, remaining gap at most half of TPE's: "
                   f"{'met' if worst is not None and worst <= 0.5 else 'missed'} "
                   f"(gap ratio per cell {', '.join(f'{g:.2f}' for g in gaps) or '-'})")
        strong = [r for r in small if r["baseline"] == "strong"]
        if strong:
            bits = [f"{r['gain_ours']:+.2%} vs {r['gain_peer']:+.2%}" for r in strong]
            ok = all(r["gain_ours"] > 0 and (r["gain_peer"] <= 0 or r["gain_ours"] >= 2 * r["gain_peer"] - 1e-12)
                     for r in strong)
            out.append(f"strong baselines, improvement at least 2x TPE's: {'met' if ok else 'missed'} "
                       f"({'; '.join(bits)})")
    large = [r for r in summary["ratios"] if r["peer"] == "tpe" and r["budget"] == "large"]
    if large:
        gaps = [r["gap_ratio"] for r in large]
        ok = all(g is not None and g <= 1.0 for g in gaps)
        out.append(f"large budget, no worse than TPE on any task: {'met' if ok else 'missed'} "
                   f"(gap ratio {', '.join('-' if g is None else f'{g:.2f}' for g in gaps)})")
    return out


def _fmt_ci(s: dict[str, float], scale: float = 100.0, digits: int = 2) -> str:
    if s["n"] < 2:
        return f"{s['mean'] * scale:+.{digits}f}"
    return f"{s['mean'] * scale:+.{digits}f} ({s['low'] * scale:+.{digits}f},{s['high'] * scale:+.{digits}f})"


def render(document: dict[str, Any]) -> str:
    """Markdown of every seed set in the document, each table readable at 80 columns."""
    lines = ["# Head-to-head: Rankwright vs Optuna TPE and random search, equal compute", ""]
    lines += [
        "Budget in baseline-run equivalents of measured CPU time (the cell's baseline, 5 "
        "seeds); every method runs 2 trials side by side on the same target, knobs and "
        "fidelities; test split. `NE gain` is the relative test-NE improvement over the "
        "baseline in % (95% t interval over method seeds), `AUC` the AUC gain in points "
        "x100, `gap` the test NE left above the reference x100 (Bayes limit; Frappe: best "
        "test NE any run reached), `used` the most compute any seed used, in units.", ""]
    for name, part in document["sets"].items():
        s = part["summary"]
        lines += [f"## Seeds: {name} ({', '.join(map(str, part['seeds']))})", "",
                  f"Settings fixed at commit {part['settings_commit']}; ran at commit {part['commit']}, "
                  f"{part['started']} to {part['finished']}; {part['wall_s'] / 60:.0f} min wall on "
                  f"{part['cpus']} cores."
                  + _provenance(part)
                  + ("" if part.get("complete", True) else
                     f" **Partial: {part['done']} of {part['of']} method runs so far** (the run goes on with "
                     f"`rankwright bench --resume DIR`)."), ""]
        lines += ["| cell / method | NE gain % (95% CI) | AUC | gap | used | wall | reused |",
                  "|---|---|---|---|---|---|---|"]
        last = None
        for r in s["rows"]:
            cell = r["cell"] if r["cell"] != last else ""
            last = r["cell"]
            if cell:
                lines.append(f"| **{cell}** | | | | | | |")
            over = "!" if _overspent(r) else ""
            lines.append(f"| {r['method']} | {_fmt_ci(r['gain_ne'])} | {r['gain_auc']['mean'] * 100:+.2f} | "
                         f"{r['gap']['mean'] * 100:.2f} | {r['used_max']:.1f}{over} | {r['wall_s'] / 60:.1f}m | "
                         f"{r['reused']}/{r['runs']} |")
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
        lines += ["", "Rankwright's ratios per cell, `gain x / gap x` against each peer (gain: higher is "
                  "better for Rankwright, - where a side's gain is not positive; gap: lower is better):", "",
                  "| cell | vs TPE | vs TPE-few | vs random |", "|---|---|---|---|"]
        by_cell: dict[str, dict[str, Any]] = {}
        for r in s["ratios"]:
            by_cell.setdefault(r["cell"], {})[r["peer"]] = r

        def pair(r: dict[str, Any] | None) -> str:
            if r is None:
                return "-"
            gain = "-" if r["gain_ratio"] is None else f"{r['gain_ratio']:.2f}"
            gap = "-" if r["gap_ratio"] is None else f"{r['gap_ratio']:.2f}"
            return f"{gain} / {gap}"

        for cell, peers in by_cell.items():
            lines.append(f"| {cell} | {pair(peers.get('tpe'))} | {pair(peers.get('tpe-few'))} | "
                         f"{pair(peers.get('random'))} |")
        for budget in ("small", "large"):
            geo = [s["geomean"].get(f"{p}/{budget}") for p in ("tpe", "tpe-few", "random")]
            if not any(g and g["cells"] for g in geo):
                continue

            def g(x: dict[str, Any]) -> str:
                gain, gap = x["gain_ratio"], x["gap_ratio"]
                return (("-" if gain["value"] is None else f"{gain['value']:.2f}") + " / "
                        + ("-" if gap["value"] is None else f"{gap['value']:.2f}"))

            lines.append(f"| geo. mean, {budget} | " + " | ".join(g(x) for x in geo) + " |")
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
    colors = {"rankwright": "#1b7837", "tpe": "#2166ac", "tpe-few": "#67a9cf", "random": "#999999"}
    for ax, (name, part) in zip(axes[:, 0], parts):
        rows = part["summary"]["rows"]
        cells = list(dict.fromkeys(r["cell"] for r in rows))
        width = 0.2
        for i, method in enumerate(T.METHODS):
            xs, ys, errs = [], [], []
            for j, cell in enumerate(cells):
                r = next((r for r in rows if r["cell"] == cell and r["method"] == method), None)
                if r is None:
                    continue
                xs.append(j + (i - 1.5) * width)
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


def write(part: dict[str, Any], seed_set: str, refs: dict[str, Reference], out: Path) -> None:
    """Summarise `part` and write it into the results files beside the other seed set."""
    part["summary"] = aggregate(part["outcomes"], refs)
    part["goals"] = goals(part["summary"])
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_suffix(".json")
    document = json.loads(json_path.read_text()) if json_path.exists() else {"sets": {}}
    document.setdefault("sets", {})[seed_set] = part
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
    commit = _commit(root)
    total = sum(len(T.SEED_SETS[seed_set][c.budget]) * len(methods) for c in todo)
    part: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    for cell in todo:
        for seed in T.SEED_SETS[seed_set][cell.budget]:
            for method in methods:
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
                    say(f"{where}: test NE {o['test_ne']:.4f}{' (ships the baseline)' if o['shipped_baseline'] else ''}"
                        f", used {o['spent_s'] / o['unit_s']:.1f}/{cell.units} units, {o['runs']} runs "
                        f"({o['reused']} reused), {time.time() - begun:.0f} s")
                # written after every method, so a run stopped mid-way still leaves its figures
                part = {"seeds": sorted({o["seed"] for o in outcomes}), "commit": commit,
                        "settings_commit": _commit(root, "src/rankwright/bench/tasks.py"), "started": started,
                        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                        "wall_s": time.time() - t0, "cpus": os.cpu_count(), "work": str(work),
                        "complete": len(outcomes) + len(failures) == total, "done": len(outcomes), "of": total,
                        "failures": failures,
                        "skipped": skipped, "references": {k: r.__dict__ for k, r in refs.items()},
                        "outcomes": outcomes}
                write(part, seed_set, refs, out)
    return part
