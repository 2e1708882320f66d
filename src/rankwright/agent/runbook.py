"""The runbook as data: the failure kinds, how the log shows them, and the remedy the
agent may apply without asking. The shipped `runbook.yaml` is the default; a campaign's
`runbook:` file replaces or adds kinds by name. A malformed runbook is refused at load,
naming the file and the field, before any campaign uses it."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rankwright.targets._base import KNOB_ROLES as ROLES
from rankwright.yaml_files import read_yaml

SHIPPED = Path(__file__).with_name("runbook.yaml")
# the kinds the agent detects from evidence other than the log; a runbook must say what to do about each
DETECTED = ("hang", "timeout", "bad_result", "nan_loss", "divergence", "collapsed", "preempted", "oom", "unknown")


class RunbookError(ValueError):
    """A runbook file is wrong; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Remedy(_Frozen):
    action: Literal["resume", "retry", "invalid", "quarantine", "flag"]
    scale: dict[str, float] = Field(default_factory=dict, description="role -> factor")
    set: dict[str, float] = Field(default_factory=dict, description="role -> value")
    backoff_s: float = Field(0.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _coherent(self) -> "Remedy":
        for name in (*self.scale, *self.set):
            if name not in ROLES:
                raise ValueError(f"unknown knob role {name!r}; known: {', '.join(ROLES)}")
        if any(f <= 0 for f in self.scale.values()):
            raise ValueError("scale factors must be positive")
        if (self.scale or self.set) and self.action != "retry":
            raise ValueError(f"only a retry may change knobs (this remedy is {self.action!r})")
        return self

    @property
    def retries(self) -> bool:
        return self.action in ("resume", "retry")


class Kind(_Frozen):
    describe: str = Field(min_length=1)
    log_patterns: tuple[str, ...] = ()
    remedy: Remedy
    max_attempts: int = Field(1, ge=1, le=10)
    on_exhausted: Literal["failed", "unstable", "quarantined"] = "failed"

    @field_validator("log_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"log pattern {p!r} is not a valid regular expression: {exc}") from None
        return patterns


class Breaker(_Frozen):
    window: int = Field(8, ge=2, le=1000)
    failures: int = Field(6, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> "Breaker":
        if self.failures > self.window:
            raise ValueError(f"breaker.failures ({self.failures}) is more than breaker.window ({self.window})")
        return self


class Runbook(_Frozen):
    version: Literal[1] = 1
    breaker: Breaker = Field(default_factory=Breaker)
    kinds: dict[str, Kind]

    @model_validator(mode="after")
    def _complete(self) -> "Runbook":
        missing = [k for k in DETECTED if k not in self.kinds]
        if missing:
            raise ValueError(f"kinds missing: {', '.join(missing)} (the agent detects these and needs a remedy)")
        return self

    def pattern_kinds(self) -> list[tuple[str, re.Pattern[str]]]:
        """(kind, compiled pattern) in file order, for reading a log tail."""
        return [(name, re.compile(p, re.IGNORECASE)) for name, kind in self.kinds.items() for p in kind.log_patterns]


def _parse(document: Any, where: str) -> Runbook:
    try:
        return Runbook.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RunbookError(f"{where}: {field}: {message}{more}") from None


@lru_cache(maxsize=1)
def shipped() -> Runbook:
    return _parse(read_yaml(SHIPPED, RunbookError, "runbook"), str(SHIPPED))


def load_runbook(path: Path | str | None = None) -> Runbook:
    """The shipped runbook, with the kinds of `path` (if given) replacing or adding to it."""
    base = shipped()
    if path is None:
        return base
    path = Path(path)
    document = read_yaml(path, RunbookError, "runbook")
    if not isinstance(document, dict):
        raise RunbookError(f"{path}: a runbook is a mapping with `kinds:` (found {type(document).__name__})")
    unknown = sorted(set(document) - {"version", "breaker", "kinds"})
    if unknown:
        raise RunbookError(f"{path}: unknown key {unknown[0]!r} (a runbook has version, breaker, kinds)")
    kinds = document.get("kinds") or {}
    if not isinstance(kinds, dict):
        raise RunbookError(f"{path}: kinds: a mapping of kind name -> kind (found {type(kinds).__name__})")
    merged = base.model_dump()
    # a kind of the same name replaces the shipped one; new kinds are read first (they are the specific ones)
    merged["kinds"] = {**{k: v for k, v in kinds.items() if k not in merged["kinds"]},
                       **{k: kinds.get(k, v) for k, v in merged["kinds"].items()}}
    if "breaker" in document:
        merged["breaker"] = document["breaker"]
    return _parse(merged, str(path))
