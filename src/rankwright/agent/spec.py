"""The campaign spec: one YAML naming the target, objective, budget, parallelism, the
paths the agent may write, and (until the hypothesis engine lands) the knob changes to try.

Loading validates everything a person can get wrong, including knob names and ranges
against the target's schema, before the store is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rankwright.targets import Target, TargetError, builtin_target, load_target
from rankwright.yaml_files import read_yaml


class SpecError(ValueError):
    """A campaign spec is wrong; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Objective(_Frozen):
    metric: str = Field("valid.ne", min_length=1, description="dotted path in the run's result")
    direction: Literal["minimize", "maximize"] = "minimize"


class Budget(_Frozen):
    amount: float = Field(gt=0, description="approved compute, in `unit`")
    unit: Literal["cpu_hours", "gpu_hours"] = "cpu_hours"
    pause_threshold: float = Field(0.8, gt=0, le=1, description="pause when this share is committed")
    hard_cap: float | None = Field(None, gt=0, description="halt and cancel at this spend (default: amount)")

    @model_validator(mode="after")
    def _cap_not_below_amount(self) -> "Budget":
        if self.hard_cap is not None and self.hard_cap < self.amount:
            raise ValueError(f"hard_cap {self.hard_cap} is below the approved amount {self.amount}")
        return self


class Change(_Frozen):
    name: str = Field(min_length=1, max_length=200)
    set: dict[str, Any] = Field(min_length=1, description="knob path -> value")
    reason: str = ""


class HypothesisPolicy(_Frozen):
    """How many of the hypothesis engine's ranked hypotheses the validation phase tests."""

    top_k: int = Field(0, ge=0, le=200, description="plan the engine's top K hypotheses besides `changes` (0: off)")
    seeds: int = Field(1, ge=1, le=20, description="seeds per hypothesis")
    use_llm: bool = Field(True, description="ask the LLM when one is configured (RANKWRIGHT_LLM_*)")


class CampaignSpec(_Frozen):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    target: str = Field("builtin", description="'builtin' or the path of a target YAML")
    model: str = Field("dnn", description="model of the built-in target")
    base_config: dict[str, Any] = Field(default_factory=dict, description="run config the experiments start from")
    objective: Objective = Field(default_factory=Objective)
    budget: Budget
    max_parallel: int = Field(2, ge=1, le=1024)
    baseline_seeds: int = Field(3, ge=1, le=100, description="baseline repeats that measure the noise")
    allowed_paths: tuple[str, ...] = Field((".rankwright",), min_length=1)
    changes: tuple[Change, ...] = ()
    hypotheses: HypothesisPolicy = Field(default_factory=HypothesisPolicy)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    if error["type"] not in ("missing", "extra_forbidden") and "input" in error:
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def load_campaign(path: Path) -> tuple[CampaignSpec, Target]:
    """Read, validate and resolve a campaign spec; raises `SpecError` naming what is wrong."""
    path = Path(path)
    document = read_yaml(path, SpecError, "campaign spec")
    if not isinstance(document, dict):
        raise SpecError(f"{path}: expected a mapping (name, target, budget, ...)")
    try:
        spec = CampaignSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid campaign spec\n  " + "\n  ".join(_describe(e) for e in exc.errors())) from None
    try:
        if spec.target == "builtin":
            target = builtin_target(spec.model, spec.base_config)
        else:
            target_path = Path(spec.target)
            target = load_target(target_path if target_path.is_absolute() else path.parent / target_path)
    except TargetError as exc:
        raise SpecError(f"{path}: target: {exc}") from None
    for i, change in enumerate(spec.changes):
        try:
            target.validate_changes(change.set)
        except TargetError as exc:
            raise SpecError(f"{path}: changes[{i}] ({change.name}): {exc}") from None
    return spec, target
