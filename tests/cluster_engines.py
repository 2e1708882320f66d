"""Real cluster engines for the executor tests: a single-node Slurm (munged, slurmctld,
slurmd) and a local Ray head, both on loopback, started by the scripts CI uses. A test
that cannot have its engine skips with the reason; a running one is reused (SLURM_CONF,
RAY_ADDRESS with RAY_AUTH_TOKEN_PATH), so CI starts each once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Engine:
    kind: str
    options: dict  # the spec's `executor:` section for it
    env: dict  # what a process needs to reach it
    stop: list | None = None  # how to stop it for good (None: started by someone else)
    restart: list | None = None  # how to bring it back after `down`
    down: list | None = None  # how to take its controller down for an outage (None: not ours to stop)


def slurm_answers(env: dict) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env={**os.environ, **env}, capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_slurm() -> tuple[Engine | None, str]:
    conf = os.environ.get("SLURM_CONF")
    if conf and slurm_answers({"SLURM_CONF": conf}):
        return Engine("slurm", {"kind": "slurm"}, {"SLURM_CONF": conf}), ""
    if os.geteuid() != 0:
        return None, "starting a Slurm cluster needs root (or set SLURM_CONF to a running one)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return None, "Slurm is not installed and apt-get is absent"
    done = subprocess.run(["bash", str(REPO / ".ci" / "slurm.sh")], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return None, f"could not start Slurm: {done.stderr.strip()[-400:]}"
    conf = done.stdout.strip().splitlines()[-1]
    return Engine("slurm", {"kind": "slurm"}, {"SLURM_CONF": conf},
                  stop=["bash", str(REPO / ".ci" / "slurm.sh"), "stop", str(Path(conf).parent)],
                  restart=_slurmctld(conf), down=_kill_slurmctld(conf)), ""


def _slurmctld(conf: str) -> list:
    return ["slurmctld", "-f", conf]


def _kill_slurmctld(conf: str) -> list:
    pid_file = Path(conf).parent / "slurmctld.pid"
    return ["sh", "-c", f"kill $(cat {pid_file}); while kill -0 $(cat {pid_file}) 2>/dev/null; do sleep 0.1; done"]


def answers(engine: Engine) -> bool:
    """Whether the engine takes work again: Slurm's controller answers and its node is up."""
    if engine.kind == "slurm":
        try:
            done = subprocess.run(["sinfo", "-h", "-o", "%T"], env={**os.environ, **engine.env},
                                  capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and any(s.strip("*~#") in ("idle", "mixed", "allocated")
                                            for s in done.stdout.split())
    return ray_answers(engine.options["address"], engine.env)


def engine_jobs(engine: Engine, claims: set[str]) -> int:
    """How many jobs the engine started for these claims (each claim should have one)."""
    if engine.kind == "slurm":
        done = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%k"], env={**os.environ, **engine.env},
                              capture_output=True, text=True, check=True)
        return sum(1 for line in done.stdout.split() if line.removeprefix("rankwright:") in claims)
    from ray.job_submission import JobSubmissionClient

    ids = [j.submission_id or "" for j in JobSubmissionClient(engine.options["address"]).list_jobs()]
    return sum(1 for i in ids if i.rsplit("-", 1)[-1] in {c[:12] for c in claims})


def ray_answers(address: str, env: dict) -> bool:
    code = "from ray.job_submission import JobSubmissionClient as C; C(%r).list_jobs()" % address
    try:
        return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_ray() -> tuple[Engine | None, str]:
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # not imported: Ray reads its auth settings once, at import
        return None, "Ray is not installed in this environment (pip install 'rankwright[ray]')"
    bin_dir = str(Path(sys.executable).parent)
    address = os.environ.get("RAY_ADDRESS")
    if address:
        env = {"RAY_ADDRESS": address, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
               **({"RAY_AUTH_TOKEN_PATH": os.environ["RAY_AUTH_TOKEN_PATH"]}
                  if "RAY_AUTH_TOKEN_PATH" in os.environ else {})}
        if ray_answers(address, env):
            return Engine("ray", {"kind": "ray", "address": address}, env), ""
    done = subprocess.run(["bash", str(REPO / ".ci" / "ray.sh"), bin_dir], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        return None, f"could not start a Ray head: {done.stderr.strip()[-400:]}"
    address, token, again = done.stdout.strip().splitlines()[-3:]
    env = {"RAY_ADDRESS": address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token,
           "RAY_USAGE_STATS_ENABLED": "0"}
    return Engine("ray", {"kind": "ray", "address": address}, env,
                  stop=["bash", str(REPO / ".ci" / "ray.sh"), "stop", bin_dir], restart=["bash", again],
                  down=["bash", str(REPO / ".ci" / "ray.sh"), "stop", bin_dir]), ""
