"""Runs as Slurm jobs: `sbatch`, `squeue`/`scontrol`, `scancel`.

The job's name is the run's handle (a readable slug of the key and its hash) and its
comment the claim's token, so a job is found again after a crash between `sbatch` and the
record of its id, and never confused with another store's run of the same key. A retry's
back-off is Slurm's own `--begin`. Used compute is what the run's wrapper measured (the
command's CPU time; GPU-hours from the start and end it recorded): `sacct` needs Slurm's
accounting database, which many clusters have and a test cluster does not.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path
from typing import Any

from rankwright.executors._base import RunSpec
from rankwright.executors.cluster import ClusterExecutor, JobState, SchedulerUnavailable

QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED",
          "STOPPED", "SIGNALING", "STAGE_OUT"}
RUNNING = {"RUNNING", "COMPLETING"}
TIMEOUT_S = 30.0  # a Slurm command that takes longer than this: the controller is not answering


class SlurmExecutor(ClusterExecutor):
    """Each run one `sbatch` job. `partition`, `account`, `time_limit_s`, `cpus_per_run`,
    `memory_mb` and the run's GPUs become sbatch's flags; `extra_args` are passed as they
    are. The job's own output (the wrapper's, not the command's) goes to `log_dir` on the
    run's host (default: /tmp)."""

    engine = "slurm"

    def __init__(self, store: Any, max_parallel: int, *, partition: str | None = None, account: str | None = None,
                 extra_args: list[str] | None = None, log_dir: str = "/tmp", **kwargs: Any) -> None:
        super().__init__(store, max_parallel, **kwargs)
        self.partition, self.account = partition, account
        self.extra_args = list(extra_args or [])
        self.log_dir = log_dir

    def _slurm(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  env={**os.environ, **self.job_env()})
        except FileNotFoundError:
            raise SchedulerUnavailable(f"{args[0]} is not installed on this host") from None
        except subprocess.TimeoutExpired:
            raise SchedulerUnavailable(f"{args[0]} did not answer within {TIMEOUT_S:g} s") from None
        text = (done.stderr or "") + (done.stdout or "")
        if done.returncode != 0 and ("Unable to contact" in text or "Connection refused" in text
                                     or "Socket timed out" in text or "Zero Bytes" in text):
            raise SchedulerUnavailable(text.strip().splitlines()[-1] if text.strip() else "no answer")
        return done

    def _launch(self, handle: str, claim: str, spec: RunSpec) -> str:
        flags = [f"--job-name={handle}", f"--comment=rankwright:{claim}", f"--output={Path(self.log_dir) / f'rankwright-{handle}-%j.log'}",
                 f"--cpus-per-task={self.cpus_per_run}", "--parsable", "--export=ALL"]
        if self.partition:
            flags.append(f"--partition={self.partition}")
        if self.account:
            flags.append(f"--account={self.account}")
        if spec.gpus:
            flags.append(f"--gpus={spec.gpus}")
        if self.memory_mb:
            flags.append(f"--mem={int(self.memory_mb)}M")
        if self.time_limit_s:
            flags.append(f"--time={max(1, math.ceil((self.time_limit_s + spec.delay_s) / 60))}")
        if spec.delay_s > 0:
            flags.append(f"--begin=now+{math.ceil(spec.delay_s)}")
        script = "#!/bin/sh\nexec " + " ".join(_quote(p) for p in self.wrapper_command(handle)) + "\n"
        done = self._slurm("sbatch", *flags, *self.extra_args, stdin=script)
        if done.returncode != 0:
            raise RuntimeError(f"sbatch refused the run: {(done.stderr or done.stdout).strip()}")
        return done.stdout.strip().split(";")[0]

    def _find_job(self, handle: str, claim: str) -> str | None:
        done = self._slurm("squeue", "-h", "-t", "all", "-n", handle, "-o", "%i %k")
        if done.returncode != 0:
            raise SchedulerUnavailable((done.stderr or done.stdout).strip())
        for line in done.stdout.splitlines():  # a job of this name from another store is not ours
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].strip() == f"rankwright:{claim}":
                return parts[0]
        return None

    def _job_state(self, job_id: str) -> JobState:
        done = self._slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T")
        if done.returncode != 0:
            if "Invalid job id" in (done.stderr + done.stdout):
                return "unknown"
            raise SchedulerUnavailable((done.stderr or done.stdout).strip())
        state = done.stdout.strip().split("\n")[0].strip() if done.stdout.strip() else ""
        if not state:
            return "unknown"
        if state in QUEUED:
            return "queued"
        if state in RUNNING:
            return "running"
        return "ended"

    def _cancel_job(self, job_id: str) -> None:
        self._slurm("scancel", job_id)

    def _job_log(self, job_id: str) -> str:
        for path in Path(self.log_dir).glob(f"rankwright-*-{job_id}.log"):
            try:
                return path.read_text(errors="replace")[-20000:]
            except OSError:
                pass
        return ""


def _quote(part: str) -> str:
    import shlex

    return shlex.quote(part)


def probe(options: Any) -> tuple[bool, str]:
    """Whether Slurm answers here (for the plan's preflight), in words."""
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P %a %D %T"], capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except FileNotFoundError:
        return False, "sinfo is not installed on this host"
    except subprocess.TimeoutExpired:
        return False, f"sinfo did not answer within {TIMEOUT_S:g} s"
    if done.returncode != 0:
        return False, (done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout).strip() \
            else f"sinfo exited {done.returncode}"
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    wanted = getattr(options, "partition", None)
    partitions = {r[0].rstrip("*") for r in rows}
    if wanted and wanted not in partitions:
        return False, f"no partition {wanted!r} (there are: {', '.join(sorted(partitions)) or 'none'})"
    return True, f"{len(rows)} partition line(s): " + ", ".join(f"{r[0]} {r[3]}" for r in rows[:4])
