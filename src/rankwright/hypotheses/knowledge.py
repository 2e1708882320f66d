"""The offline knowledge base of ranking-model techniques the research agent draws on.

Each technique is a change of knobs with a literature-backed prior on its effect, so the
agent can propose and rank hypotheses without network access. The techniques live in
`techniques.yaml` next to this module; `load_knowledge_base` reads and checks them.
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rankwright.yaml_files import read_yaml

Category = Literal["architecture", "embeddings", "optimization", "regularization", "efficiency"]
CATEGORIES: tuple[str, ...] = ("architecture", "embeddings", "optimization", "regularization", "efficiency")

# Kept literal so that reading the knowledge base never imports torch; a test checks it
# against the model registry.
MODEL_FAMILIES: tuple[str, ...] = ("lr", "fm", "dnn", "deepfm", "dcnv2", "dlrm", "autoint_plus", "finalmlp")

SIGNALS: dict[str, str] = {
    "overfitting": "train/valid gap large, validation loss rising",
    "underfitting": "still improving at the end, or train loss high",
    "undertrained": "the epoch budget ended training while validation still improved (one epoch included)",
    "overtrained": "the model kept is past its best epoch on validation",
    "unstable": "loss spikes",
    "miscalibrated": "predicted and observed click rates disagree",
    "embeddings_too_large": "embedding parameters large against training rows",
    "embeddings_too_small": "embedding capacity small against the data",
    "slow_training": "runs take long for their budget",
}


class KnowledgeError(ValueError):
    """The knowledge base, or a technique applied to a config, is wrong; the message names the technique."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean(x: float) -> float:
    # 0.2 + 0.1 would otherwise land in a config as 0.30000000000000004
    return float(f"{x:.12g}")


class KnobChange(_Frozen):
    """One knob move; relative ops (`scale`, `add`) keep a technique meaningful from any starting point.

    `scale` multiplies (an int is rounded and kept >= 1; a tuple of ints scales every
    width). `add` adds to a number; on a tuple of ints it adds (or, negative, removes)
    layers, repeating the last width. `set` replaces.
    """

    knob: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    op: Literal["set", "scale", "add"]
    value: Any

    @model_validator(mode="after")
    def _value_fits_op(self) -> "KnobChange":
        if self.op == "scale" and not (_is_number(self.value) and self.value > 0):
            raise ValueError(f"knob {self.knob}: scale needs a positive number, got {self.value!r}")
        if self.op == "add" and not (_is_number(self.value) and self.value != 0):
            raise ValueError(f"knob {self.knob}: add needs a non-zero number, got {self.value!r}")
        return self

    @property
    def direction(self) -> int | None:
        """+1 raises the knob, -1 lowers it, None for `set` (no direction of its own)."""
        if self.op == "scale":
            return 0 if self.value == 1 else (1 if self.value > 1 else -1)
        if self.op == "add":
            return 1 if self.value > 0 else -1
        return None

    def resolve(self, current: Any) -> Any:
        """The knob's new value given its current one (unused by `set`)."""
        if self.op == "set":
            return list(self.value) if isinstance(self.value, tuple) else self.value
        if isinstance(current, (list, tuple)):
            widths = list(current)
            if not all(isinstance(w, int) and not isinstance(w, bool) for w in widths):
                raise ValueError(f"{self.op} needs a tuple of ints, the current value is {current!r}")
            if self.op == "scale":
                return [max(1, round(w * self.value)) for w in widths]
            if not isinstance(self.value, int):
                raise ValueError(f"add on layer widths needs a whole number of layers, got {self.value!r}")
            if self.value > 0:
                if not widths:
                    raise ValueError("cannot add layers to an empty tower (no width to repeat)")
                return widths + [widths[-1]] * self.value
            return widths[: max(1, len(widths) + self.value)] if widths else widths
        if not _is_number(current):
            raise ValueError(f"{self.op} needs a number, the current value is {current!r}")
        if isinstance(current, int):
            if self.op == "scale":
                return max(1, round(current * self.value))
            if isinstance(self.value, int):
                return current + self.value
            return _clean(current + self.value)
        result = current * self.value if self.op == "scale" else current + self.value
        return _clean(result)


class Prior(_Frozen):
    """Expected relative change of validation NE (negative = better) and its spread across contexts."""

    effect: float = Field(ge=-0.5, le=0.5, allow_inf_nan=False)
    sd: float = Field(gt=0.0, le=0.5, allow_inf_nan=False)
    evidence: str = Field(min_length=1)


class Technique(_Frozen):
    """A literature-backed change of knobs the research agent can propose as a hypothesis."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    category: Category
    description: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    applies_to: tuple[str, ...] = Field(min_length=1)
    signals: tuple[str, ...] = ()
    changes: tuple[KnobChange, ...] = Field(min_length=1)
    prior: Prior
    cost_factor: float = Field(gt=0.0, le=100.0, allow_inf_nan=False)
    conflicts_with: tuple[str, ...] = ()

    @field_validator("applies_to")
    @classmethod
    def _known_families(cls, families: tuple[str, ...]) -> tuple[str, ...]:
        for family in families:
            if family != "any" and family not in MODEL_FAMILIES:
                raise ValueError(f"unknown model family {family!r}; known: any, {', '.join(MODEL_FAMILIES)}")
        if "any" in families and len(families) > 1:
            raise ValueError("'any' stands alone in applies_to")
        if len(set(families)) != len(families):
            raise ValueError("a model family is named twice in applies_to")
        return families

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, signals: tuple[str, ...]) -> tuple[str, ...]:
        for signal in signals:
            if signal not in SIGNALS:
                raise ValueError(f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}")
        return signals

    @model_validator(mode="after")
    def _one_change_per_knob(self) -> "Technique":
        knobs = [c.knob for c in self.changes]
        repeated = sorted({k for k in knobs if knobs.count(k) > 1})
        if repeated:
            raise ValueError(f"knob changed twice: {', '.join(repeated)}")
        if self.id in self.conflicts_with:
            raise ValueError("a technique cannot conflict with itself")
        return self

    @property
    def knob_paths(self) -> frozenset[str]:
        return frozenset(c.knob for c in self.changes)

    def names_model(self, model_family: str) -> bool:
        return "any" in self.applies_to or model_family in self.applies_to

    def applicable(self, knob_paths: set[str] | frozenset[str]) -> bool:
        """Whether a target exposes every knob this technique moves (a partial move tests something else)."""
        return self.knob_paths <= set(knob_paths)

    def apply(self, current: Mapping[str, Any]) -> dict[str, Any]:
        """The knob changes resolved against the current values (knob path -> value).

        Relative ops need the knob's current value in `current`; a missing or unusable one
        raises KnowledgeError naming the technique and the knob.
        """
        result: dict[str, Any] = {}
        for change in self.changes:
            if change.op != "set" and change.knob not in current:
                raise KnowledgeError(f"technique {self.id!r}: no current value for knob {change.knob}")
            try:
                result[change.knob] = change.resolve(current.get(change.knob))
            except ValueError as exc:
                raise KnowledgeError(f"technique {self.id!r}, knob {change.knob}: {exc}") from None
        return result


def _check_entries(techniques: Iterable[Technique]) -> None:
    """Cross-entry rules: unique ids, and conflicts that name real techniques."""
    seen: set[str] = set()
    items = list(techniques)
    for technique in items:
        if technique.id in seen:
            raise KnowledgeError(f"technique {technique.id!r} is defined more than once")
        seen.add(technique.id)
    for technique in items:
        for other in technique.conflicts_with:
            if other not in seen:
                raise KnowledgeError(
                    f"technique {technique.id!r}: conflicts_with names unknown technique {other!r}"
                )


class KnowledgeBase(_Frozen):
    """All techniques, with the look-ups the planner needs."""

    techniques: tuple[Technique, ...]

    @model_validator(mode="after")
    def _consistent(self) -> "KnowledgeBase":
        _check_entries(self.techniques)
        return self

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.techniques)

    def get(self, technique_id: str) -> Technique:
        for technique in self.techniques:
            if technique.id == technique_id:
                return technique
        raise KeyError(f"no technique {technique_id!r} in the knowledge base")

    def for_model(self, model_family: str) -> tuple[Technique, ...]:
        """Techniques that name this family (or `any`); check `applicable` against the target's knobs too."""
        return tuple(t for t in self.techniques if t.names_model(model_family))

    def with_signal(self, signal: str) -> tuple[Technique, ...]:
        if signal not in SIGNALS:
            raise KnowledgeError(f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}")
        return tuple(t for t in self.techniques if signal in t.signals)

    def conflicts(self, first: str, second: str) -> bool:
        """Symmetric: either side declaring the conflict is enough to keep them out of one experiment."""
        return second in self.get(first).conflicts_with or first in self.get(second).conflicts_with


def knob_values(config: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """Current values at dotted paths of a nested config, so `Technique.apply` can start from a target's base_config.

    Paths absent from the config are left out.
    """
    values: dict[str, Any] = {}
    for path in paths:
        node: Any = config
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            values[path] = node
    return values


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_knowledge_base(document: Any, source: str = "knowledge base") -> KnowledgeBase:
    """A checked knowledge base from a parsed YAML document; errors name the technique."""
    if not isinstance(document, Mapping) or not isinstance(document.get("techniques"), list):
        raise KnowledgeError(f"{source}: expected a mapping with a 'techniques' list")
    extra = sorted(set(document) - {"version", "techniques"})
    if extra:
        raise KnowledgeError(f"{source}: unknown top-level keys: {', '.join(map(str, extra))}")
    techniques = []
    for index, entry in enumerate(document["techniques"], start=1):
        label = repr(entry.get("id")) if isinstance(entry, Mapping) and entry.get("id") else f"#{index}"
        if not isinstance(entry, Mapping):
            raise KnowledgeError(f"{source}: technique {label}: expected a mapping")
        try:
            techniques.append(Technique.model_validate(dict(entry)))
        except ValidationError as exc:
            raise KnowledgeError(f"{source}: technique {label}: {_describe(exc)}") from None
    try:
        _check_entries(techniques)
    except KnowledgeError as exc:
        raise KnowledgeError(f"{source}: {exc}") from None
    return KnowledgeBase(techniques=tuple(techniques))


@functools.lru_cache(maxsize=1)
def _packaged() -> KnowledgeBase:
    resource = resources.files("rankwright.hypotheses").joinpath("techniques.yaml")
    with resources.as_file(resource) as path:
        return parse_knowledge_base(read_yaml(path, KnowledgeError, "knowledge base"), str(path))


def load_knowledge_base(path: Path | str | None = None) -> KnowledgeBase:
    """The packaged knowledge base, or the one at `path` (for tests and site-specific additions)."""
    if path is None:
        return _packaged()
    return parse_knowledge_base(read_yaml(Path(path), KnowledgeError, "knowledge base"), str(path))
