"""The knob schema: every setting the agent may change, with its type and allowed range.

It is read off the typed configs themselves (Pydantic field types, Literal choices and
ge/le bounds), so a knob can never be declared in one place and validated in another.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel

from rankwright.ranking.data.config import DataConfig, ProcessingConfig
from rankwright.ranking.models.configs import MODEL_CONFIGS
from rankwright.ranking.train.config import TrainConfig

KnobKind = Literal["int", "float", "bool", "choice", "int_tuple", "str"]


@dataclass(frozen=True)
class Knob:
    path: str  # dotted, as used by `--set`
    kind: KnobKind
    default: Any
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    description: str = ""
    min_length: int | None = None  # int_tuple only: bounds on the number of elements
    max_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe_range(self) -> str:
        if self.choices is not None:
            text = " | ".join(str(c) for c in self.choices)
        elif self.low is not None or self.high is not None:
            left = "[" if self.low_inclusive else "("
            right = "]" if self.high_inclusive else ")"
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            text = f"{left}{low}, {high}{right}"
        else:
            text = self.kind
        return text + (" | null" if self.nullable else "")


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, at.Ge):
            bounds.update(low=item.ge, low_inclusive=True)
        elif isinstance(item, at.Gt):
            bounds.update(low=item.gt, low_inclusive=False)
        elif isinstance(item, at.Le):
            bounds.update(high=item.le, high_inclusive=True)
        elif isinstance(item, at.Lt):
            bounds.update(high=item.lt, high_inclusive=False)
        elif isinstance(item, at.MinLen):
            bounds.update(min_length=item.min_length)
        elif isinstance(item, at.MaxLen):
            bounds.update(max_length=item.max_length)
    return bounds


def _int_items(annotation: Any) -> list[Any] | None:
    """Metadata of the items of `tuple[int, ...]` / `tuple[Annotated[int, ...], ...]`, else None."""
    args = typing.get_args(annotation)
    if len(args) != 2 or args[1] is not Ellipsis:
        return None
    item, metadata = args[0], []
    if typing.get_origin(item) is typing.Annotated:
        item, *extra = typing.get_args(item)
        for entry in extra:  # a pydantic Field(...) carries its constraints in .metadata
            metadata.extend(getattr(entry, "metadata", [entry]))
    return metadata if item is int else None


def _knob(path: str, field: Any) -> Knob | None:
    annotation, nullable = _strip_optional(field.annotation)
    origin = typing.get_origin(annotation)
    bounds = {k: v for k, v in _bounds(field.metadata).items() if k not in ("min_length", "max_length")}
    common = dict(path=path, default=field.default, nullable=nullable, description=field.description or "")
    if origin is Literal:
        return Knob(kind="choice", choices=typing.get_args(annotation), **common)
    if annotation is bool:
        return Knob(kind="bool", choices=(False, True), **common)
    if annotation is int:
        return Knob(kind="int", **bounds, **common)
    if annotation is float:
        return Knob(kind="float", **bounds, **common)
    if origin is tuple:
        items = _int_items(annotation)
        if items is None:
            return None
        lengths = {k: v for k, v in _bounds(field.metadata).items() if k in ("min_length", "max_length")}
        return Knob(kind="int_tuple", **_bounds(items), **lengths, **common)
    if annotation is str:
        return Knob(kind="str", **common)
    return None  # nested sections and mappings are not single knobs


def _walk(prefix: str, model: type[BaseModel], skip: set[str] = frozenset()) -> list[Knob]:
    knobs = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        knob = _knob(f"{prefix}.{name}", field)
        if knob is not None:
            knobs.append(knob)
    return knobs


def knob_schema(model_name: str = "dnn") -> list[Knob]:
    """All knobs of a run of `model_name`: model, training and feature processing."""
    if model_name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(sorted(MODEL_CONFIGS))}")
    config_cls = MODEL_CONFIGS[model_name]
    return (
        _walk("model", config_cls, skip={"name"})
        + _walk("train", TrainConfig, skip={"device", "num_threads", "heartbeat_seconds", "eval_batch_size"})
        + _walk("data.processing", ProcessingConfig)
        + [k for k in [_knob("data.train_fraction", DataConfig.model_fields["train_fraction"])] if k is not None]
    )
