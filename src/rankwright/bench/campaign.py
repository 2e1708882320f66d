"""Rankwright's side of a contest: a whole campaign, planned, approved and run by the same
commands a user types, in its own folder with its own store (cold: no insights carried
over, no LLM). What it proposes is read back from its store as the report reads it.

Resumable: a campaign folder that finished is reused as it is; one that was stopped
mid-way is continued by `rankwright run` (its runs that had ended are reused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

PAUSED = "waiting for `rankwright resume`"


@contextmanager
def _inside(folder: Path) -> Iterator[None]:
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _rw(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RANKWRIGHT_WAKE_ON_EXIT": "0"}  # the staying-up `run` wakes it
    done = subprocess.run([sys.executable, "-m", "rankwright", *args], cwd=folder, capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"rankwright {' '.join(args)} failed in {folder}:\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-2000:]}")
    return done


def run_campaign(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Plan, approve and run one campaign to its end (or reuse it); returns what it
    proposes, its spend and how many of its runs were reused from an earlier invocation."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "campaign.yaml"
    done_file = folder / "finished.json"
    if done_file.exists():
        ran = json.loads(done_file.read_text())
        reused_all = True
    else:
        reused_all = False
        before = _ended_runs(folder, spec["name"]) if path.exists() else 0
        started = time.time()
        if not path.exists() or not (folder / ".rankwright").exists():
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            _rw(["plan", str(path)], folder)
            _rw(["approve", str(path), "--yes", "--by", "rankwright bench"], folder)
        paused = _run_to_end(path, folder)
        ran = {"wall_seconds": time.time() - started, "paused": paused, "reused_runs": before,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        done_file.write_text(json.dumps(ran))
    out = read_outcome(path, folder)
    out.update(wall_s=ran["wall_seconds"], paused=ran["paused"],
               reused=out["runs"] if reused_all else ran["reused_runs"])
    return out


def _run_to_end(path: Path, folder: Path) -> str | None:
    """`rankwright run` until the campaign ends. A pause (budget spent, or a step that
    would leave the approved strategy) ends the contest: the campaign is stopped there and
    judged on what it had; the reason is kept."""
    env = {**os.environ, "RANKWRIGHT_WAKE_ON_EXIT": "0"}
    process = subprocess.Popen([sys.executable, "-m", "rankwright", "run", str(path), "--interval", "5"], cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    paused = None
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        if PAUSED in line:
            paused = line.split(": waiting for")[0]
            _stop(path, folder)
    process.wait()
    if process.returncode not in (0, None) and paused is None:
        raise RuntimeError(f"rankwright run failed in {folder} (exit {process.returncode})")
    return paused


def _stop(path: Path, folder: Path) -> None:
    """Stop a paused campaign. It may have ended on its own in between (the hard cap halts
    a paused campaign when its runs in flight end over it): that is an end as well."""
    try:
        _rw(["stop", str(path)], folder)
    except RuntimeError:
        if _status(path, folder) not in ("halted", "stopped", "finished"):
            raise


def _status(path: Path, folder: Path) -> str | None:
    with _inside(folder):
        from rankwright.agent.spec import load_campaign
        from rankwright.store import open_store

        campaign = open_store().campaign(load_campaign(path)[0].name)
        return None if campaign is None else campaign.status


def _ended_runs(folder: Path, name: str) -> int:
    with _inside(folder):
        from rankwright.store import open_store

        store = open_store()
        campaign = store.campaign(name)
        if campaign is None:
            return 0
        return sum(1 for e in store.experiments(campaign.id) if e.status.is_terminal)


def read_outcome(path: Path, folder: Path) -> dict[str, Any]:
    """What the campaign would ship (its knob changes from the baseline) and at what cost,
    from its store, as the report reads it. Its own test readings are not read here: the
    benchmark scores what it ships on evaluation runs of its own."""
    with _inside(folder):
        from rankwright.agent.spec import load_campaign
        from rankwright.report.build import build_proposal
        from rankwright.report.proposal import ABSENT
        from rankwright.store import open_store

        spec, target = load_campaign(path)
        store = open_store()
        proposal = build_proposal(store, spec, target, (folder / ".rankwright").resolve())
        experiments = store.experiments(store.campaign(spec.name).id)
    changes = {path: new for path, _, new in proposal.config_diff if new is not ABSENT and path != "train.seed"}
    shipped = proposal.found_better and bool(changes)
    return {
        "method": "rankwright", "shipped_baseline": not shipped, "changes": changes if shipped else {},
        "headline": proposal.headline, "spent_s": proposal.spent * 3600.0, "runs": len(experiments),
        "best_valid": min(((e.metrics or {}).get("objective") for e in experiments
                           if (e.metrics or {}).get("objective") is not None), default=None),
    }
