"""Where runs happen: one small interface (``_base``) and its implementations."""

from rankwright.executors._base import Executor, ExecutorFull, RunInfo, RunSpec, RunStatus, thread_env
from rankwright.executors.local import LocalExecutor

__all__ = ["Executor", "ExecutorFull", "LocalExecutor", "RunInfo", "RunSpec", "RunStatus", "thread_env"]
