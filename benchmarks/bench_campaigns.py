"""Whole campaigns on the three synthetic structures (pairwise, numeric, wide), each from
the same DNN baseline, through validation, combination and exploitation to a proposal.

Each campaign runs in its own folder with its own store (no insights carried over), with
the demo's strategy and budget. The results file gives, per structure, the test NE of the
baseline and of the proposal over the confirmation seeds (paired 95% interval), the share
of the gap to the Bayes limit closed, the compute spent against the estimate, and the
wall time, with the commit it ran on.

    .venv/bin/python benchmarks/bench_campaigns.py [--structures pairwise,numeric,wide] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_SEED = 2026  # fixed before the first full run


def _spec(structure: str, rows: int) -> dict:
    from rankwright.cli.demo import DEMO_SPEC

    spec = json.loads(json.dumps(DEMO_SPEC))
    spec["name"] = f"bench-{structure}"
    spec["base_config"]["data"]["synthetic"] = {"rows": rows, "structure": structure, "seed": GENERATOR_SEED}
    return spec


def run_one(structure: str, rows: int, work: Path, commit: str) -> dict:
    """Run one campaign, or reuse it when its folder holds a finished one (the runs are the
    expensive part; the analysis below is redone from its store every time)."""
    folder = work / structure
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "campaign.yaml"
    done_file = folder / "finished.json"
    rw = [sys.executable, "-m", "rankwright"]
    if done_file.exists():
        ran = json.loads(done_file.read_text())
        print(f"  reusing the finished campaign in {folder} (ran at {ran['commit']})", flush=True)
    else:
        path.write_text(yaml.safe_dump(_spec(structure, rows), sort_keys=False))
        started = time.time()
        for command in (["plan", str(path)], ["approve", str(path), "--yes"], ["run", str(path), "--interval", "5"]):
            done = subprocess.run(rw + command, cwd=folder, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{structure}: {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        ran = {"commit": commit, "wall_seconds": time.time() - started,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        done_file.write_text(json.dumps(ran))
    done = subprocess.run(rw + ["report", str(path)], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{structure}: report failed:\n{done.stdout}\n{done.stderr}")
    wall = ran["wall_seconds"]
    sys.path.insert(0, str(ROOT / "src"))
    import os

    here = Path.cwd()
    os.chdir(folder)
    try:
        from rankwright.agent.spec import load_campaign
        from rankwright.report.build import build_proposal
        from rankwright.store import open_store

        spec, target = load_campaign(path)
        store = open_store()
        proposal = build_proposal(store, spec, target, (folder / ".rankwright").resolve())
        campaign = store.campaign(spec.name)
        plan = store.latest_plan(campaign.id)[1]
        first = {f"{spec.name}/{p['name']}/seed{p['seed']}" for p in plan["experiments"]}
        measured = [e for e in store.experiments(campaign.id) if e.idempotency_key in first and e.actual_cost]
        ratio = sum(e.actual_cost for e in measured) / sum(e.reserved_cost for e in measured)
    finally:
        os.chdir(here)
    ne = next((m for m in proposal.metrics if m.metric == "ne"), None)
    return {
        "structure": structure, "rows": rows, "found_better": proposal.found_better, "headline": proposal.headline,
        "baseline_ne": ne.baseline if ne else None, "proposal_ne": ne.proposal if ne else None,
        "ne_diff": ne.diff if ne else None, "ci": [ne.ci_low, ne.ci_high] if ne else None,
        "seeds": ne.seeds if ne else 0, "bayes_ne": proposal.bayes_ne, "gap_closed": proposal.gap_closed,
        "changes": [list(map(str, row)) for row in proposal.config_diff],
        "spent": proposal.spent, "estimated": plan.get("estimated_hours"),
        "first_round_ratio": ratio, "reprojected": ratio * plan.get("estimated_hours"), "ran_at_commit": ran["commit"],
        "ran_until": ran["finished"],
        "phases": {p.phase: {"estimated": p.estimated, "actual": p.actual} for p in proposal.phase_costs},
        "rank_agreement": proposal.rank_agreement, "wall_seconds": wall,
        "report": str(folder / ".rankwright" / "reports" / spec.name / "report.md"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", default="pairwise,numeric,wide")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "campaigns")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "campaigns")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results = []
    for structure in args.structures.split(","):
        print(f"campaign on {structure} ...", flush=True)
        results.append(run_one(structure, args.rows, args.work, commit))
        print(f"  {results[-1]['headline']} ({results[-1]['wall_seconds']:.0f} s)", flush=True)
    document = {"commit": commit, "started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "generator_seed": GENERATOR_SEED, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    lines = ["# Whole campaigns on the synthetic structures", "",
             f"Analysis at commit {commit}, {started}; the campaigns ran at commit(s) "
             + ", ".join(sorted({r["ran_at_commit"] for r in results})) + ", finishing "
             + ", ".join(f"{r['structure']} {r['ran_until']}" for r in results) + f"; generator seed {GENERATOR_SEED}; "
             f"{args.rows:,} rows; DNN 256-128, 4 epochs, batch 512 (the demo's baseline and strategy).", "",
             "Test NE over the confirmation seeds (paired); spent / estimated at approval / re-projected after "
             "the first round, in CPU-hours; wall time of plan, approve and run.", "",
             "| structure | NE base | proposal | diff (95% CI) | gap closed | spent / est / re-proj | wall |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["baseline_ne"] is None:
            lines.append(f"| {r['structure']} | - | - | no winner reached confirmation | - | "
                         f"{r['spent']:.3g} / {r['estimated']:.3g} / {r['reprojected']:.3g} | "
                         f"{r['wall_seconds']:.0f} s |")
            continue
        rel = r["ne_diff"] / r["baseline_ne"]
        lines.append(f"| {r['structure']} | {r['baseline_ne']:.4f} | {r['proposal_ne']:.4f} | {rel:+.2%} "
                     f"({r['ci'][0] / r['baseline_ne']:+.2%}, {r['ci'][1] / r['baseline_ne']:+.2%}) | "
                     f"{(r['gap_closed'] or 0):.0%} | {r['spent']:.3g} / {r['estimated']:.3g} / "
                     f"{r['reprojected']:.3g} | {r['wall_seconds']:.0f} s |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
