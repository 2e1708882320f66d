"""A fault-injecting wrapper for a target's command, to measure the runbook.

`python -m rankwright.bench.faults --rate R --seed S --log FILE -- COMMAND...` runs
COMMAND (in the run's folder, as the executor started it) and, for a share R of the runs,
makes it fail in one of these ways, for real where a process can be made to fail for real:

- `alloc`: the run is replaced by a real allocation larger than the machine (torch's own
  out-of-memory error);
- `nan`: the run finishes, then its objective is overwritten with NaN;
- `sigkill`: the run is killed with SIGKILL in the middle of its training;
- `freeze`: the run is stopped (SIGSTOP) after its second epoch and never continues;
- `corrupt`: the run finishes, then its metrics and result files are overwritten with garbage;
- `disk`: the run gets a tiny file-size quota (RLIMIT_FSIZE), so its first large write fails;
- `column`: the run's data loses a column (built-in target: its config is pointed at a
  CSV file without one of the declared columns); this one persists on every attempt.

Which run gets which fault is drawn from the seed and the run's folder name, so a rerun
of the benchmark injects the same faults. Every injection is appended to the log (the
ground truth the benchmark scores the triage against). Transient faults hit only a run's
first attempt (a retry from scratch starts in a fresh folder, so attempts are counted
by folder name in the log's folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("alloc", "nan", "sigkill", "freeze", "corrupt", "disk", "column")
PERSISTENT = {"column"}
EXPECTED = {"alloc": "oom", "nan": "nan_loss", "sigkill": "preempted", "freeze": "hang", "corrupt": "bad_result",
            "disk": "disk_full", "column": "data_error"}  # the runbook kind each fault should be triaged as


def draw(run_name: str, seed: int, rate: float, kinds: tuple[str, ...]) -> str | None:
    """The fault for this run (None: none), deterministic in (seed, run name)."""
    digest = hashlib.sha256(f"{seed}/{run_name}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u >= rate:
        return None
    return kinds[int.from_bytes(digest[8:12], "big") % len(kinds)]


def _tries(state: Path, run_name: str) -> int:
    """How many times this run's folder name was started before (from the log's folder)."""
    marks = state / "starts"
    marks.mkdir(parents=True, exist_ok=True)
    mark = marks / hashlib.sha256(run_name.encode()).hexdigest()[:16]
    before = int(mark.read_text()) if mark.exists() else 0
    mark.write_text(str(before + 1))
    return before


def _epochs(metrics: Path) -> int:
    try:
        return sum(1 for line in metrics.read_text(errors="replace").splitlines() if '"event": "epoch"' in line)
    except OSError:
        return 0


def _break_data(config_path: Path, folder: Path) -> None:
    """Point a built-in run config at a CSV file that lacks one of the declared columns."""
    import yaml

    broken = folder / "broken.csv"
    broken.write_text("label,c0\n" + "".join(f"{i % 2},{i % 7}\n" for i in range(200)))
    config = yaml.safe_load(config_path.read_text())
    config["data"] = {"source": "csv", "train": str(broken), "schema": {"label": "label",
                                                                       "categorical": ["c0", "c1_gone"]}}
    config_path.write_text(yaml.safe_dump(config))


def _overwrite_objective(run_dir: Path, objective: str, value: float) -> None:
    for name in ("result.json",):
        path = run_dir / name
        if path.exists():
            record = json.loads(path.read_text())
            node = record
            *parents, leaf = objective.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
            path.write_text(json.dumps(record))
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        lines = []
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if record.get("event") == "result":
                node = record
                *parents, leaf = objective.split(".")
                for part in parents:
                    node = node[part]
                node[leaf] = value
            lines.append(json.dumps(record))
        metrics.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        print("usage: python -m rankwright.bench.faults [options] -- COMMAND...", file=sys.stderr)
        return 2
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="rankwright.bench.faults")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--config", default="experiment.yaml", help="the run config's name in the run folder")
    parser.add_argument("--objective", default="valid.ne")
    opts = parser.parse_args(args[:split])
    command = args[split + 1:]
    run_dir = Path.cwd()
    name = run_dir.name.split(".attempt")[0]
    kinds = tuple(k for k in opts.kinds.split(",") if k)
    fault = None if name.startswith("smoke-") else draw(name, opts.seed, opts.rate, kinds)  # preflight: not drawn
    tries = _tries(opts.log.parent, name)
    if fault is not None and tries > 0 and fault not in PERSISTENT:
        fault = None  # a transient fault hits the first attempt only
    if fault is not None:
        with open(opts.log, "a") as log:
            log.write(json.dumps({"run": name, "fault": fault, "attempt": tries + 1, "time": time.time()}) + "\n")

    if fault == "alloc":
        code = [sys.executable, "-c", "import torch; torch.empty(2**44, dtype=torch.uint8).fill_(1)"]
        return subprocess.run(code).returncode
    if fault == "column":
        _break_data(run_dir / opts.config, opts.log.parent)

    def limits() -> None:
        if fault == "disk":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a signal death
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    child = subprocess.Popen(command, preexec_fn=limits)
    signal.signal(signal.SIGTERM, lambda *_: (child.send_signal(signal.SIGCONT), child.terminate()))
    metrics = run_dir / "metrics.jsonl"
    if fault in ("sigkill", "freeze"):
        while child.poll() is None and _epochs(metrics) < (1 if fault == "sigkill" else 2):
            time.sleep(0.05)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL if fault == "sigkill" else signal.SIGSTOP)
            if fault == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)  # the whole run dies, as on a lost node
    code = child.wait()
    if code == 0 and fault == "nan":
        _overwrite_objective(run_dir, opts.objective, float("nan"))
    if code == 0 and fault == "corrupt":
        for path in (run_dir / "result.json", metrics):
            path.write_bytes(os.urandom(512))
    return code


if __name__ == "__main__":
    sys.exit(main())
