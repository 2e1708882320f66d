"""Wake latency and agent memory with thousands of experiments in the store.

For each store (SQLite; PostgreSQL when a URL is given or `.ci/postgres.sh` can start one)
and each store size N, a campaign is built whose plan has N experiments, N - P of them
already finished (rows, events and run folders as a real campaign leaves them) and P in
flight on the local executor (jobs held open by a file). Then:

- `wake` as cron or a run's wrapper calls it (`python -m rankwright wake`, a fresh process):
  wall seconds and peak RSS, when there is nothing to do (P in flight, executor full) and
  when one run has just ended (collect it, submit the next);
- the step itself inside one process (imports excluded);
- `rankwright run` staying up: from a run's end (its `exit.json`) to its collection, woken
  by file notifications against the timer alone (`--no-watch`, same `--interval`), and the
  hibernating agent's RSS and CPU seconds over a quiet stretch.

Usage: .venv/bin/python benchmarks/bench_wake.py [--sizes 1000,10000,100000] [--postgres auto|URL|none]
Writes benchmarks/results/wake.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dataclasses import replace

import yaml
from sqlalchemy import insert, update

ROOT = Path(__file__).resolve().parents[1]
IN_FLIGHT = 10  # 3 are released for collect steps, 4 for the event-woken agent, 3 for the timer
JOB = """
import json, os, sys, time, pathlib, yaml
config = yaml.safe_load(open(sys.argv[1]))
hold = pathlib.Path(sys.argv[3]) / str(config["x"])
while hold.exists():
    time.sleep(0.05)
(pathlib.Path(sys.argv[2]) / "metrics.jsonl").write_text(json.dumps({"event": "result", "loss": 1.0 / (1 + config["x"])}) + "\\n")
"""


def _env(url: str) -> dict[str, str]:
    env = {**os.environ, "RANKWRIGHT_DB": url, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def build(workdir: Path, url: str, n: int) -> dict:
    """A campaign of n planned experiments: n - IN_FLIGHT finished, the rest not yet submitted."""
    from rankwright.agent.planning import make_plan, plan_document
    from rankwright.agent.spec import load_campaign
    from rankwright.agent.naming import experiment_key
    from rankwright.executors import LocalExecutor
    from rankwright.executors import _files as F
    from rankwright.store import models as m
    from rankwright.store import open_store

    holds = workdir / "holds"
    holds.mkdir()
    (workdir / "job.py").write_text(JOB)
    target = {
        "name": "held-job", "command": ["{python}", "{root}/job.py", "{config}", "{run_dir}", str(holds)],
        "base_config": {"x": 0, "seed": 0},
        "knobs": [{"path": "x", "kind": "int", "low": 0, "high": 10**7, "default": 0},
                  {"path": "train.seed", "kind": "int", "low": 0, "high": 1000, "default": 0}],
        "metrics": {"file": "metrics.jsonl", "format": "jsonl", "event_key": "event", "result_event": "result",
                    "objective": "loss", "direction": "minimize"},
        "cost": {"unit": "cpu_hours", "overhead_seconds": 0.5, "per_row_seconds": 0.001, "rows": 1, "epochs": 1,
                 "size_exponent": 0.0},
    }
    (workdir / "target.yaml").write_text(yaml.safe_dump(target))
    name = f"bench{n}"
    # the spec names one change; the plan in the store has n runs (as a long campaign's plan and
    # revisions would), so that reading the spec stays what it is for a real campaign
    spec_doc = {"name": name, "target": "target.yaml", "budget": {"amount": float(n)}, "max_parallel": IN_FLIGHT,
                "baseline_seeds": 1, "hypotheses": {"seeds": 1},
                "changes": [{"name": "c0", "set": {"x": 1}}]}
    spec_path = workdir / "campaign.yaml"
    spec_path.write_text(yaml.safe_dump(spec_doc))
    (workdir / ".rankwright").mkdir()
    old = Path.cwd()
    os.chdir(workdir)
    try:
        spec, target_obj = load_campaign(spec_path)
        planned = make_plan(spec, target_obj)
        template = planned[-1]
        planned += [replace(template, name=f"c{i}", hypothesis=f"c{i}", changes={"x": i + 1}, delta={"x": i + 1})
                    for i in range(1, n - 1)]
        document = plan_document(spec, [], planned)
        store = open_store(url)
        campaign = store.create_campaign(name, spec.model_dump(mode="json"))
        plan_id = store.record_plan(campaign.id, document, document["estimated_hours"])
        store.record_approval(plan_id, "bench", float(n), "cpu_hours", via_yes_flag=True)
        store.set_campaign_status(campaign.id, "approved")
        runs = LocalExecutor(workdir / ".rankwright" / "runs", max_parallel=IN_FLIGHT)
        now = datetime.now(timezone.utc)
        rows, events = [], []
        for i, p in enumerate(planned[: n - IN_FLIGHT]):
            key = experiment_key(name, p.name, p.seed)
            handle = runs.handle_for(key)
            folder = runs.root / handle
            folder.mkdir()
            (folder / F.CLAIM).write_text(key)
            (folder / F.EXIT).write_text(json.dumps({"exit_code": 0, "started_at": 0.0, "ended_at": 1.0,
                                                     "cpu_seconds": 1.0, "max_rss_mb": 50.0, "cancelled": False}))
            t = now - timedelta(seconds=n - i)
            rows.append({"campaign_id": campaign.id, "idempotency_key": key,
                         "config": target_obj.config_with(p.changes), "phase": p.phase, "seed": p.seed,
                         "status": "succeeded", "executor_handle": handle, "reserved_cost": p.predicted_hours,
                         "actual_cost": 1.0 / 3600, "created_at": t, "updated_at": t,
                         "metrics": {"objective": 0.5, "metrics": {"loss": 0.5, "valid": {"ne": 0.9, "auc": 0.7}},
                                     "direction": "minimize"}})
            events += [{"campaign_id": campaign.id, "time": t, "kind": "submit", "message": f"{key}: submitted as {handle}",
                        "data": {"plan_id": plan_id}},
                       {"campaign_id": campaign.id, "time": t, "kind": "collect",
                        "message": f"{key}: succeeded, objective 0.5", "data": {"cost": 1.0 / 3600}}]
        (runs.root / F.ACTIVE_INDEX).mkdir(exist_ok=True)
        with store.session() as s:
            for start in range(0, len(rows), 2000):
                s.execute(insert(m.Experiment), rows[start:start + 2000])
            for start in range(0, len(events), 4000):
                s.execute(insert(m.Event), events[start:start + 4000])
            # the rows above bypass the store's API: mark their planned runs ended, as mark_finished would
            s.execute(update(m.PlannedExperiment).where(m.PlannedExperiment.campaign_id == campaign.id,
                                                        m.PlannedExperiment.position < n - IN_FLIGHT).values(state=2))
        store.engine.dispose()
        for p in planned[n - IN_FLIGHT:]:
            (holds / str(p.changes.get("x", 0))).touch()  # the last runs stay in flight until released
    finally:
        os.chdir(old)
    return {"spec": spec_path, "name": name, "holds": holds, "in_flight_x": [p.changes.get("x", 0) for p in planned[n - IN_FLIGHT:]]}


MEASURE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
wall = time.perf_counter() - t0
sys.stdout.buffer.write(done.stdout)
print(f"@@ {done.returncode} {wall} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}")
"""


def timed_process(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of one child process.

    A small launcher process starts it: Linux counts a forked child's peak RSS from its
    parent's size at the fork, and this benchmark's own process is large.
    """
    out = subprocess.run([sys.executable, "-c", MEASURE, *argv], env=env, cwd=cwd, capture_output=True,
                         text=True).stdout
    *body, last = out.rstrip("\n").splitlines()
    _, code, wall, rss = last.split()
    if int(code) != 0:
        raise RuntimeError(f"{argv} failed ({code}):\n" + "\n".join(body))
    return float(wall), float(rss), "\n".join(body)


STEP = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from rankwright.agent.spec import load_campaign
from rankwright.agent.wake import wake
from rankwright.executors import LocalExecutor
from rankwright.store import open_store
t1 = time.perf_counter()
spec, target = load_campaign(Path(sys.argv[1]))
t2 = time.perf_counter()
root = Path(spec.allowed_paths[0]).resolve()
from sqlalchemy.engine import make_url
from rankwright.store.engine import database_url
make_url(database_url()).get_dialect().import_dbapi()  # the store's driver (psycopg, sqlite3) and its dialect
t2b = time.perf_counter()
store = open_store()  # its first connection, the schema's version read
t3 = time.perf_counter()
report = wake(store, LocalExecutor(root / "runs", max_parallel=spec.max_parallel), spec, target, root)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_spec_s": t2 - t1, "driver_import_s": t2b - t2, "connect_s": t3 - t2b,
                  "open_s": t3 - t2, "step_s": t4 - t3,
                  "state": report.state,
                  "collected": len(report.collected), "submitted": len(report.submitted)}))
"""


def wake_step(built: dict, env: dict, cwd: Path) -> dict:
    wall, rss, out = timed_process([sys.executable, "-c", STEP, str(built["spec"])], env, cwd)
    inner = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall, "rss_mb": rss, **inner}


def _collected_at(store, name: str, key: str) -> float | None:
    """When the agent settled the run (its row's last update), or None while it has not:
    one indexed read, so that polling it does not load the machine being measured."""
    from sqlalchemy import select

    from rankwright.store import models as m

    with store.session() as s:
        row = s.execute(select(m.Experiment.status, m.Experiment.updated_at)
                        .where(m.Experiment.idempotency_key == key)).one_or_none()
    if row is None or row[0] not in ("succeeded", "failed", "cancelled"):
        return None
    at = row[1]
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def _proc_cpu_rss(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def run_latency(built: dict, env: dict, cwd: Path, url: str, watch: bool, interval: float, release: list[int]) -> dict:
    """Release in-flight runs one at a time under a staying-up `run`; time each collection."""
    from rankwright.agent.naming import experiment_key
    from rankwright.store import open_store
    from rankwright.executors import LocalExecutor
    from rankwright.executors import _files as F

    argv = [sys.executable, "-m", "rankwright", "run", str(built["spec"]), "--interval", str(interval)]
    if not watch:
        argv.append("--no-watch")
    log = open(cwd / f"run-{'watch' if watch else 'timer'}.log", "w")
    agent = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    latencies, quiet = [], {}
    store = open_store(url)
    try:
        time.sleep(5.0)  # first wake done, agent asleep
        cpu0, _ = _proc_cpu_rss(agent.pid)
        time.sleep(10.0)
        cpu1, rss = _proc_cpu_rss(agent.pid)
        quiet = {"hibernating_rss_mb": rss, "hibernating_cpu_s_per_10s": cpu1 - cpu0}
        runs = LocalExecutor(cwd / ".rankwright" / "runs", max_parallel=IN_FLIGHT)
        for x in release:
            name = "baseline" if x == 0 else f"c{x - 1}"
            key = experiment_key(built["name"], name, 1)
            (built["holds"] / str(x)).unlink()
            folder = runs.root / runs.handle_for(key)
            deadline = time.time() + interval * 3 + 30
            collected = None
            while time.time() < deadline and collected is None:
                time.sleep(0.05)
                collected = _collected_at(store, built["name"], key)
            ended = (F.read_json(folder / F.EXIT) or {}).get("ended_at")
            if collected is None or ended is None:
                raise RuntimeError(f"{key} was not collected within {interval * 3 + 30:.0f} s")
            latencies.append(collected - ended)
            time.sleep(0.5)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        log.close()
        store.engine.dispose()
    return {"watch": watch, "interval_s": interval, "latencies_s": latencies,
            "median_latency_s": statistics.median(latencies), **quiet}


def release_all(built: dict) -> None:
    for hold in built["holds"].iterdir():
        hold.unlink()


def bench_one(store_name: str, url_for, n: int, keep: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"rw-wake-{store_name}-{n}-"))
    url = url_for(workdir)
    env = _env(url)
    t0 = time.perf_counter()
    built = build(workdir, url, n)
    build_s = time.perf_counter() - t0
    settled = settle(url)
    result: dict = {"store": store_name, "experiments": n, "build_s": build_s, "settle_s": settled}
    try:
        first = wake_step(built, env, workdir)  # submits the in-flight runs
        assert first["submitted"] == IN_FLIGHT, first
        idle = [wake_step(built, env, workdir) for _ in range(5)]
        cli = [timed_process([sys.executable, "-m", "rankwright", "wake", str(built["spec"])], env, workdir)[:2]
               for _ in range(3)]
        result["idle_steps_s"] = [r["step_s"] for r in idle]
        result["idle_step_s"] = statistics.median(r["step_s"] for r in idle)
        result["idle_opens_s"] = [r["open_s"] for r in idle]
        result["idle_connects_s"] = [r["connect_s"] for r in idle]
        result["open_s"] = statistics.median(r["open_s"] for r in idle)
        result["driver_import_s"] = statistics.median(r["driver_import_s"] for r in idle)
        result["connect_s"] = statistics.median(r["connect_s"] for r in idle)
        result["import_s"] = statistics.median(r["import_s"] for r in idle)
        result["load_spec_s"] = statistics.median(r["load_spec_s"] for r in idle)
        result["cli_wake_wall_s"] = statistics.median(w for w, _ in cli)
        result["cli_wake_rss_mb"] = max(r for _, r in cli)
        result["step_rss_mb"] = max(r["rss_mb"] for r in idle)
        collect = []
        for x in built["in_flight_x"][:3]:  # one run ends: a step that collects it
            (built["holds"] / str(x)).unlink()
            time.sleep(2.0)
            busy = wake_step(built, env, workdir)
            assert busy["collected"] == 1, busy
            collect.append(busy["step_s"])
            result.setdefault("collect_opens_s", []).append(busy["open_s"])
            result.setdefault("collect_connects_s", []).append(busy["connect_s"])
        result["collect_steps_s"] = collect
        result["collect_step_s"] = statistics.median(collect)
        if n == max(ARGS.sizes):
            result["run_watch"] = run_latency(built, env, workdir, url, watch=True, interval=30.0,
                                              release=built["in_flight_x"][3:7])
            result["run_timer"] = run_latency(built, env, workdir, url, watch=False, interval=5.0,
                                              release=built["in_flight_x"][7:10])
    finally:
        release_all(built)
        time.sleep(1.0)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def _cpu_idle_fraction(over_s: float = 1.0) -> float:
    """The machine's idle share of CPU time over the next `over_s` seconds (/proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    idle0, all0 = sample()
    time.sleep(over_s)
    idle1, all1 = sample()
    return (idle1 - idle0) / max(all1 - all0, 1)


def settle(url: str, quiet: float = 0.9, longest_s: float = 180.0) -> float:
    """Wait until building the store stops loading the machine (PostgreSQL analyses and
    vacuums a freshly filled table in the background): what is measured after is the wake,
    not the server's housekeeping on the same cores. Returns the seconds waited."""
    t0 = time.perf_counter()
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text("VACUUM ANALYZE"))  # done now, rather than by autovacuum mid-measurement
        engine.dispose()
    calm = 0
    while calm < 3 and time.perf_counter() - t0 < longest_s:
        calm = calm + 1 if _cpu_idle_fraction() >= quiet else 0
    return time.perf_counter() - t0


def _postgres(arg: str) -> str | None:
    if arg == "none":
        return None
    if arg != "auto":
        return arg
    if os.environ.get("RANKWRIGHT_TEST_POSTGRES"):
        return os.environ["RANKWRIGHT_TEST_POSTGRES"]
    try:
        out = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1] if out.returncode == 0 and lines and lines[-1].startswith("postgresql") else None


def _pg_database(base: str, name: str) -> str:
    """A fresh database per measurement on the given server."""
    from sqlalchemy import create_engine, text

    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


REFERENCE = """
import sys, time
t0 = time.perf_counter()
import sqlalchemy
t1 = time.perf_counter()
sum(range(10 ** 7))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def machine_reference(times: int = 5) -> dict:
    """How fast this machine is today, in two figures any reader can re-measure: importing
    SQLAlchemy alone in a fresh process (the floor under any wake that uses it) and a fixed
    pure-Python loop. The same code measured 2x apart on two days of one 2-core sandbox, so
    absolute times are only comparable with these beside them."""
    rows = [subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(times)]
    return {"sqlalchemy_import_s": statistics.median(float(a) for a, _ in rows),
            "python_loop_s": statistics.median(float(b) for _, b in rows)}


def render(results: list[dict], reference: dict | None = None) -> str:
    lines = ["# Wake latency and agent memory with many experiments in the store", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; {datetime.now(timezone.utc):%Y-%m-%d}. "
             f"{IN_FLIGHT} runs in flight in every case."
             + (f" This machine today: `import sqlalchemy` alone {reference['sqlalchemy_import_s']:.3f} s, "
                f"`sum(range(10**7))` {reference['python_loop_s']:.3f} s (the medians of 5 runs before the measurements and 5 after, averaged)."
                if reference else ""), "",
             "| store | experiments | wake step, idle (s) | wake step, collect 1 (s) | imports (s) | the store's driver imported (s) | its first connection (s) | reading the spec (s) | `rankwright wake` process (s) | its peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        collect = f"{r['collect_step_s']:.3f}" if "collect_step_s" in r else "-"
        lines.append(f"| {r['store']} | {r['experiments']:,} | {r['idle_step_s']:.3f} | {collect} | {r['import_s']:.3f} | "
                     f"{r.get('driver_import_s', float('nan')):.3f} | {r.get('connect_s', float('nan')):.3f} | "
                     f"{r['load_spec_s']:.3f} | {r['cli_wake_wall_s']:.2f} | {r['cli_wake_rss_mb']:.0f} |")
    lines += ["", "Goals (issue 13): wake step p50 under 0.1 s at 10,000 experiments and under 0.3 s at 100,000; "
              "process start under 0.5 s (lazy imports). The p50 is the median of every measured step (5 idle, 3 "
              "collecting). Each is counted here with the store's first connection and the read of its schema "
              "version; importing the store's driver (psycopg and SQLAlchemy's PostgreSQL dialect, or sqlite3) is "
              "an import, counted with the process start. From the process's first line to the step's end, "
              "everything is also shown added up:", ""]
    for r in results:
        goal = {10_000: 0.1, 100_000: 0.3}.get(r["experiments"])
        if goal is None or "driver_import_s" not in r:
            continue
        steps = r.get("idle_steps_s", []) + r.get("collect_steps_s", [])
        connects = r.get("idle_connects_s", []) + r.get("collect_connects_s", [])
        p50 = statistics.median(a + b for a, b in zip(steps, connects))
        start = r["import_s"] + r["driver_import_s"]
        whole = start + r["load_spec_s"] + p50
        lines.append(f"- {r['store']}, {r['experiments']:,}: step p50 {p50 * 1000:.0f} ms against {goal * 1000:.0f} ms "
                     f"({'met' if p50 < goal else 'MISSED'}); process start (imports {r['import_s']:.2f} s + the "
                     f"driver {r['driver_import_s']:.2f} s) {start:.2f} s against 0.5 s "
                     f"({'met' if start < 0.5 else 'MISSED'}); all of it {whole:.2f} s")
    lines += ["", "Staying up (`rankwright run`), largest store: from a run's end (`exit.json`) to its collection.", "",
              "| store | experiments | woken by | timer (s) | median latency (s) | latencies (s) | hibernating RSS (MB) | CPU s per 10 s asleep |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for k in ("run_watch", "run_timer"):
            if k in r:
                x = r[k]
                lines.append(f"| {r['store']} | {r['experiments']:,} | {'file events' if x['watch'] else 'timer only'} | "
                             f"{x['interval_s']:g} | {x['median_latency_s']:.2f} | "
                             f"{', '.join(f'{v:.2f}' for v in x['latencies_s'])} | {x['hibernating_rss_mb']:.0f} | "
                             f"{x['hibernating_cpu_s_per_10s']:.2f} |")
    for r in results:
        if "run_watch" in r and "run_timer" in r:
            ratio = r["run_timer"]["median_latency_s"] / max(r["run_watch"]["median_latency_s"], 1e-9)
            lines.append("")
            lines.append(f"{r['store']}, {r['experiments']:,} experiments: event wake is {ratio:.1f}x faster than "
                         f"a {r['run_timer']['interval_s']:g} s timer (median latency).")
    lines += ["", "The wake step is reconcile, collect, ledger, decide and submit; reading the spec is parsing and "
              "validating the campaign YAML (it names one change; the plan's runs are in the store, as a long "
              "campaign's revisions are); each step runs in a fresh process, as a wake does, so it includes the "
              "first use of each query; the process column is a whole `python -m rankwright wake` as cron or a run's "
              "wrapper starts it. Before the measurements each store is left to settle: PostgreSQL's `VACUUM ANALYZE` "
              "run at once (not by autovacuum in the middle), then 3 s in a row with the CPUs at least 90% idle "
              "(`settle_s` in the JSON).", "", "Reproduce: `.venv/bin/python benchmarks/bench_wake.py` (PostgreSQL through `.ci/postgres.sh`)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--postgres", default="auto", help="auto (start .ci/postgres.sh), a URL, or none")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "wake"))
    ARGS = parser.parse_args()
    ARGS.sizes = [int(s) for s in ARGS.sizes.split(",")]
    stores = {"sqlite": lambda w: f"sqlite:///{w}/.rankwright/rankwright.db"}
    pg = _postgres(ARGS.postgres)
    if pg:
        stores["postgresql"] = lambda w: _pg_database(pg, "rw_" + w.name.replace("-", "_").lower())
    else:
        print("PostgreSQL not available: SQLite only", file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    before = machine_reference()
    results = []
    for store_name, url_for in stores.items():
        for n in ARGS.sizes:
            (Path(tempfile.gettempdir())).mkdir(exist_ok=True)
            results.append(bench_one(store_name, url_for, n, ARGS.keep))
    after = machine_reference()
    reference = {k: statistics.median([before[k], after[k]]) for k in before}
    reference.update(before={**before}, after={**after})
    out = Path(ARGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    finished = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out.with_suffix(".json").write_text(json.dumps({"commit": commit, "started": started, "finished": finished,
                                                    "results": results, "machine": reference, "self_rss_mb":
                                                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, indent=2))
    text = render(results, reference).replace("\n\n", f"\n\nCommit {commit}; run {started} to {finished}.\n\n", 1)
    out.with_suffix(".md").write_text(text)
    print(text)


ARGS: argparse.Namespace
if __name__ == "__main__":
    main()
