"""Runs as Ray jobs, through the Ray Jobs API (`ray.job_submission.JobSubmissionClient`).

The job's `submission_id` is the run's handle (a readable slug of the key and its hash)
and the claim's token: Ray refuses a second job under one id, so a claimed key can never
start two jobs, whoever submits it, and another store's run of the same key is another job. CPUs, GPUs and memory become the entrypoint's resources. The store's URL reaches the
wrapper through the job's runtime environment. A head that restarts without persistent
state forgets its jobs: a started run that stopped reporting is then LOST, which the
runbook triages as preemption (tried again under a new attempt key).

Needs the extra `rankwright[ray]`; Ray is imported only when this executor is used.
"""

from __future__ import annotations

import os
from typing import Any

from rankwright.executors._base import RunSpec
from rankwright.executors.cluster import ClusterExecutor, JobState, SchedulerUnavailable

DEFAULT_ADDRESS = "http://127.0.0.1:8265"


def ray_address(address: str | None) -> str:
    return address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


def _client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise SchedulerUnavailable("Ray is not installed here: pip install 'rankwright[ray]'") from None
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # noqa: BLE001 - connection refused, a head restarting, a proxy's error page
        raise SchedulerUnavailable(f"the Ray head at {address} did not answer: {exc}") from None


def _missing(exc: Exception) -> bool:
    text = str(exc)
    return "404" in text or "does not exist" in text or "not found" in text.lower()


class RayExecutor(ClusterExecutor):
    """Each run one Ray job on the cluster whose dashboard is at `address`."""

    engine = "ray"

    def __init__(self, store: Any, max_parallel: int, *, address: str | None = None, **kwargs: Any) -> None:
        super().__init__(store, max_parallel, **kwargs)
        self.address = ray_address(address)
        self._connected: Any = None

    @property
    def client(self) -> Any:
        if self._connected is None:
            self._connected = _client(self.address)
        return self._connected

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except SchedulerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            if _missing(exc) or "already exists" in str(exc):
                raise
            self._connected = None  # reconnect next time: the head may have restarted
            raise SchedulerUnavailable(f"the Ray head at {self.address} did not answer: {exc}") from None

    @staticmethod
    def submission_id(handle: str, claim: str) -> str:
        return f"{handle}-{claim[:12]}"

    def _launch(self, handle: str, claim: str, spec: RunSpec) -> str:
        import shlex

        resources: dict[str, Any] = {"entrypoint_num_cpus": self.cpus_per_run}
        if spec.gpus:
            resources["entrypoint_num_gpus"] = spec.gpus
        if self.memory_mb:
            resources["entrypoint_memory"] = int(self.memory_mb) * 2**20
        env = {**self.job_env(), **{k: os.environ[k] for k in ("RANKWRIGHT_RUN_SCRATCH",) if k in os.environ}}
        try:
            return self._call("submit_job", entrypoint=shlex.join(self.wrapper_command(handle)),
                              submission_id=self.submission_id(handle, claim),
                              runtime_env={"env_vars": env}, metadata={"rankwright": "run"}, **resources)
        except SchedulerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            if "already exists" in str(exc):  # submitted before (a crash between submit and its record)
                return self.submission_id(handle, claim)
            raise

    def _find_job(self, handle: str, claim: str) -> str | None:
        job = self.submission_id(handle, claim)
        try:
            self._call("get_job_info", job)
        except SchedulerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            if _missing(exc):
                return None
            raise SchedulerUnavailable(str(exc)) from None
        return job

    def _job_state(self, job_id: str) -> JobState:
        try:
            status = str(self._call("get_job_status", job_id))
        except SchedulerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            if _missing(exc):
                return "unknown"
            raise SchedulerUnavailable(str(exc)) from None
        status = status.rsplit(".", 1)[-1].upper()
        if status == "PENDING":
            return "queued"
        if status == "RUNNING":
            return "running"
        return "ended"  # STOPPED, SUCCEEDED, FAILED

    def _cancel_job(self, job_id: str) -> None:
        try:
            self._call("stop_job", job_id)
        except SchedulerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            if not _missing(exc):
                raise

    def _job_log(self, job_id: str) -> str:
        try:
            return str(self._call("get_job_logs", job_id))
        except Exception:  # noqa: BLE001 - the log is a courtesy
            return ""


def probe(options: Any) -> tuple[bool, str]:
    """Whether the Ray head answers (for the plan's preflight), in words."""
    address = ray_address(getattr(options, "address", None))
    try:
        client = _client(address)
        jobs = client.list_jobs()
    except SchedulerUnavailable as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001
        return False, f"the Ray head at {address} did not answer: {exc}"
    return True, f"Ray head at {address}, {len(jobs)} job(s) known"
