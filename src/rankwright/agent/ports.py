"""What the agent needs from the parts it drives, as small Protocols: any codebase that
answers the two target Protocols can be driven, and any hypothesis source that answers
`HypothesisSource` can feed the validation rounds; nothing in `agent` asks which concrete
one it has (the built-in target is one target among others)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable


@runtime_checkable
class RunnableTarget(Protocol):
    """How one experiment becomes a run and a run becomes a result (the apply step)."""

    def render(self, changes: Mapping[str, Any], run_dir: Path | str) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The command line and config document of one experiment; writes nothing."""
        ...

    def write_config(self, run_dir: Path | str, config: Mapping[str, Any]) -> Path: ...

    def read_result(self, run_dir: Path | str) -> dict[str, Any] | None:
        """`{"objective", "direction", "metrics"}` of a finished run; None while unfinished."""
        ...

    def read_curve(self, run_dir: Path | str, epoch_event: str = "epoch") -> list[float]:
        """The objective after each epoch so far ([] when the codebase writes none)."""
        ...


@runtime_checkable
class DescribedTarget(Protocol):
    """What planning, learning and deciding read about a target."""

    base_config: dict[str, Any]

    def validate_changes(self, changes: Mapping[str, Any]) -> dict[str, Any]: ...

    def model_family(self) -> str: ...

    def low_fidelity(self) -> dict[str, Any]: ...

    def data_shape(self, embedding_parameters: float | None = None) -> tuple[float, int, float | None]: ...


@runtime_checkable
class HypothesisSource(Protocol):
    """Ranked hypotheses for a campaign as it stands (best first), and notes on what was
    used. `diagnose_key` names the run whose diagnosis counts (the best so far)."""

    def rank(self, spec: Any, target: Any, store: Any, root: Path, *,
             diagnose_key: str | None = None) -> tuple[Any, list[str]]: ...
