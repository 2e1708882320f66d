"""A team's portfolio, scaled down: eight campaigns on different models and data under one
budget and two parallel slots, run to their proposals with no agent process alive while
runs train (`rankwright portfolio run --detach`: each run's end wakes the portfolio).

The campaigns: the three synthetic structures (DNN, DCNv2, DeepFM), Frappe (DNN, DCNv2)
and the Criteo sample (DLRM, DNN, DeepFM), each with its own small budget share and a
short strategy, all fixed here before the first run. While it runs, the script samples
the process table every 0.5 s: how often an agent process (a wake) is alive at all, and
how many runs are in flight (never more than the slots). At the end it writes every
campaign's report and the figures to benchmarks/results/portfolio.{md,json}, with the
commit and the run times.

    .venv/bin/python benchmarks/bench_portfolio.py [--work DIR]

Needs ../shared/data (Frappe, the Criteo sample). About half an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TEAM_BUDGET = 0.5  # cpu_hours, all eight together
SLOTS = 2
GENERATOR_SEED = 2026
STRATEGY = {"rounds": 1, "extra_seeds": 0, "full_seeds": 2, "trials": 2, "fidelity_check_rejected": 0,
            "confirmation_seeds": 3, "prune": False}


def _synthetic(structure: str, model: str) -> dict:
    return {"model": model, "base_config": {
        "data": {"source": "synthetic", "synthetic": {"rows": 20_000, "structure": structure, "seed": GENERATOR_SEED}},
        "train": {"epochs": 3, "monitor": "ne"}}}


def _frappe(model: str) -> dict:
    return {"model": model, "base_config": {
        "data": {"source": "csv", "train": str(DATA / "frappe" / "frappe_x1_valid.csv"),
                 "test": str(DATA / "frappe" / "frappe_x1_test.csv"),
                 "schema": {"label": "label", "categorical": ["user", "item", "daytime", "weekday", "isweekend",
                                                              "homework", "cost", "weather", "country", "city"]},
                 "split": {"valid_fraction": 0.1, "seed": 2024}},
        "model": {"embedding_dim": 10}, "train": {"batch_size": 4096, "epochs": 4, "monitor": "ne"}}}


def _criteo(model: str) -> dict:
    return {"model": model, "base_config": {
        "data": {"source": "criteo", "train": str(DATA / "criteo_sample" / "train.tsv"),
                 "valid": str(DATA / "criteo_sample" / "dev.tsv"), "test": str(DATA / "criteo_sample" / "test.tsv"),
                 "processing": {"min_count": 2, "numeric_transform": "log_standardize"}},
        "train": {"batch_size": 512, "epochs": 3, "monitor": "ne"}}}


CAMPAIGNS = {  # name: (how, priority)
    "pairwise-dnn": (_synthetic("pairwise", "dnn"), 1.0),
    "numeric-dcnv2": (_synthetic("numeric", "dcnv2"), 1.0),
    "wide-deepfm": (_synthetic("wide", "deepfm"), 1.0),
    "frappe-dnn": (_frappe("dnn"), 2.0),
    "frappe-dcnv2": (_frappe("dcnv2"), 2.0),
    "criteo-dlrm": (_criteo("dlrm"), 1.0),
    "criteo-dnn": (_criteo("dnn"), 0.5),
    "criteo-deepfm": (_criteo("deepfm"), 0.5),
}


def write_specs(work: Path) -> Path:
    specs = work / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    members = []
    for name, (how, priority) in CAMPAIGNS.items():
        spec = {"name": name, "target": "builtin", **how, "objective": {"metric": "valid.ne"},
                "budget": {"amount": 1.0, "unit": "cpu_hours"}, "baseline_seeds": 2,
                "hypotheses": {"top_k": 2, "seeds": 2, "use_llm": False}, "strategy": STRATEGY}
        (specs / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        members.append({"spec": f"specs/{name}.yaml", "priority": priority})
    path = work / "team.yaml"
    path.write_text(yaml.safe_dump({"name": "team-bench", "budget": {"amount": TEAM_BUDGET, "unit": "cpu_hours"},
                                    "max_parallel": SLOTS, "campaigns": members}, sort_keys=False))
    return path


def rankwright(work: Path, *args: str, timeout: float = 3600) -> str:
    env = {**os.environ, "RANKWRIGHT_DB": f"sqlite:///{work / '.rankwright' / 'team.db'}", "RANKWRIGHT_LLM_PROVIDER": ""}
    done = subprocess.run([sys.executable, "-m", "rankwright", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"rankwright {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def sample(work: Path) -> tuple[int, int]:
    """(agent processes alive, runs in flight) now, from the process table."""
    agents = runs = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if "rankwright.executors.wrapper" in text and str(work) in text:
            runs += 1
        elif "-m rankwright" in text and ("portfolio wake" in text or "portfolio run" in text) \
                and str(work) in text:
            agents += 1
    return agents, runs


def headline_of(report_output: str) -> str:
    """The proposal's headline from `rankwright report`'s output: its first paragraph, up to
    the files it wrote, with the console's line wrapping undone."""
    first = report_output.strip().split("\n\n")[0].split("\nwrote ")[0]
    return " ".join(first.split())


def agent_stretches(samples: list[tuple[float, int, int]]) -> list[float]:
    """How long each stretch of samples with an agent process alive lasted, in seconds: a
    woken portfolio comes up, steps, and exits; one that stayed up would show as one long
    stretch."""
    out, since, last = [], None, 0.0
    for t, agents, _ in samples:
        if agents and since is None:
            since = t
        elif not agents and since is not None:
            out.append(last - since + 0.5)
            since = None
        last = t
    if since is not None:
        out.append(last - since + 0.5)
    return out


def most_runs_at_once(work: Path) -> tuple[int, int]:
    """(most runs training at one moment, runs counted), from each run's own start and end
    (its `exit.json`): the process-table samples also count a wrapper that still runs its
    run's end wake after the run itself has ended."""
    edges = []
    for exit_file in work.glob(".rankwright/runs/*/exit.json"):
        record = json.loads(exit_file.read_text())
        if record.get("started_at") and record.get("ended_at"):
            edges += [(float(record["started_at"]), 1), (float(record["ended_at"]), -1)]
    peak = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        current += step
        peak = max(peak, current)
    return peak, len(edges) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "portfolio")
    parser.add_argument("--render", type=Path, help="write the results page again from this results JSON")
    args = parser.parse_args()
    if args.render:
        result = json.loads(args.render.read_text())
        for row in result["campaigns"]:  # a headline taken before headline_of cut the report's file list
            row["proposal"] = headline_of(row["proposal"].replace(" wrote /", "\nwrote /"))
        write_results(result)
        return
    if not (DATA / "frappe").is_dir() or not (DATA / "criteo_sample").is_dir():
        raise SystemExit(f"needs the shared data in {DATA} (Frappe and the Criteo sample)")
    work = args.work.resolve()
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty: give another --work, or remove it to measure again")
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    began = datetime.now(timezone.utc)
    team = write_specs(work)
    print("planning 8 campaigns (each with its smoke run)...", flush=True)
    plan_started = time.monotonic()
    rankwright(work, "portfolio", "plan", str(team))
    rankwright(work, "portfolio", "approve", str(team), "--yes", "--by", "bench")
    plan_s = time.monotonic() - plan_started
    print(f"planned and approved in {plan_s:.0f} s; running detached", flush=True)
    started = time.monotonic()
    rankwright(work, "portfolio", "run", str(team), "--detach")
    samples = []
    sys.path.insert(0, str(ROOT / "src"))
    os.environ["RANKWRIGHT_DB"] = f"sqlite:///{work / '.rankwright' / 'team.db'}"
    from rankwright.store import open_store

    store = open_store()
    last = 0.0
    while True:
        agents, runs = sample(work)
        samples.append((time.monotonic() - started, agents, runs))
        states = {n: (store.campaign(n).status if store.campaign(n) else "?") for n in CAMPAIGNS}
        if all(s in ("finished", "halted", "stopped", "paused") for s in states.values()) and runs == 0:
            break
        if time.monotonic() - last > 30:
            last = time.monotonic()
            done = sum(s == "finished" for s in states.values())
            print(f"  {time.monotonic() - started:5.0f} s: {done}/8 finished, {runs} runs in flight", flush=True)
        if time.monotonic() - started > 4 * 3600:
            raise SystemExit("the portfolio did not end within 4 hours")
        time.sleep(0.5)
    wall_s = time.monotonic() - started
    status = rankwright(work, "portfolio", "status", str(team))
    rows = []
    for name in CAMPAIGNS:
        campaign = store.campaign(name)
        experiments = store.experiments(campaign.id)
        spent = store.ledger_sums(campaign.id)[0]  # the ledger's spend (a settled cost includes its retries')
        effective = work / ".rankwright" / "portfolios" / "team-bench" / f"{name}.yaml"
        headline = ""
        if campaign.status == "finished":
            out = rankwright(work, "report", str(effective))
            headline = headline_of(out)
        rows.append({"campaign": name, "status": campaign.status, "priority": CAMPAIGNS[name][1],
                     "budget": campaign.spec["budget"]["amount"], "spent": spent, "runs": len(experiments),
                     "proposal": headline})
    agent_share = sum(1 for _, a, _ in samples if a) / len(samples)
    stretches = agent_stretches(samples)
    peak = max(r for _, _, r in samples)
    training_peak, counted = most_runs_at_once(work)
    result = {"commit": commit, "began": began.isoformat(timespec="seconds"),
              "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"), "plan_s": plan_s, "wall_s": wall_s,
              "team_budget": TEAM_BUDGET, "slots": SLOTS, "spent": sum(r["spent"] for r in rows),
              "agent_alive_share": agent_share, "peak_runs_in_flight": peak, "samples": len(samples),
              "agent_stretches": len(stretches),
              "agent_stretch_median_s": statistics.median(stretches) if stretches else 0.0,
              "agent_stretch_longest_s": max(stretches, default=0.0),
              "most_runs_training_at_once": training_peak, "runs_timed": counted,
              "campaigns": rows, "status": status}
    write_results(result)


def write_results(result: dict) -> None:
    """benchmarks/results/portfolio.{json,md} from one run's figures (`--render` writes the
    page again from the JSON, when only its presentation changed)."""
    out = ROOT / "benchmarks" / "results" / "portfolio"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    budget, slots = result["team_budget"], result["slots"]
    lines = [f"# Portfolio: eight campaigns, one budget ({result['commit']})", "",
             f"Run {result['began']} to {result['ended']} (UTC), 2 cores. Team budget {budget:g} CPU-hours, "
             f"{slots} slots; `rankwright portfolio run --detach`.", "",
             f"- spent {result['spent']:.3f} of {budget:g} CPU-hours; {result['wall_s'] / 60:.1f} min from the first "
             f"submission to the last collection (planning with smoke runs: {result['plan_s'] / 60:.1f} min)",
             f"- an agent process was alive in {result['agent_alive_share']:.0%} of {result['samples']} samples "
             "(0.5 s apart); the rest of the time only runs existed. The agent came up "
             f"{result['agent_stretches']} times (a run's end waking the portfolio), for "
             f"{result['agent_stretch_median_s']:.1f} s at the median and {result['agent_stretch_longest_s']:.1f} s "
             "at the longest (sampled: +-0.5 s)",
             f"- at most {result['most_runs_training_at_once']} runs training at once, from the {result['runs_timed']} "
             f"runs' own start and end times ({slots} slots); the process table showed at most "
             f"{result['peak_runs_in_flight']} run wrappers alive, counting a wrapper that is still running its "
             "run's end wake", "",
             "| campaign | priority | status | spent / budget | runs | proposal |", "|---|---|---|---|---|---|"]
    for r in result["campaigns"]:
        lines.append(f"| {r['campaign']} | {r['priority']:g} | {r['status']} | {r['spent']:.3f} / {r['budget']:.3f} "
                     f"| {r['runs']} | {r['proposal']} |")
    lines += ["", "```", result["status"].rstrip(), "```", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out.with_suffix('.md')} and .json")

if __name__ == "__main__":
    main()
