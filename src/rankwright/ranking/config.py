"""One run of the ranking codebase as a typed document: data + model + training.

`load_run_config` is the only way a YAML file and `--set key=value` overrides become a
`RunConfig`; every problem is raised as `ConfigError` naming the field and what is allowed,
before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rankwright.ranking.data.config import DataConfig
from rankwright.ranking.errors import ConfigError
from rankwright.ranking.models.configs import MODEL_CONFIGS, DNNConfig, ModelConfigUnion
from rankwright.ranking.train.config import TrainConfig
from rankwright.yaml_files import read_yaml


DEFAULT_MODEL = "dnn"


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfigUnion = Field(default_factory=DNNConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def to_yaml_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.hidden_units=[256,128]` -> (["model", "hidden_units"], [256, 128])."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.learning_rate=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(document: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = document
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} holds a value, not a section")
            node = child
        node[path[-1]] = value
    return document


def _describe(error: dict[str, Any], document: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    # Discriminated unions put the chosen tag in the location (model.dcnv2.x): drop it.
    if len(loc) >= 2 and loc[0] == "model" and isinstance(document.get("model"), dict):
        if document["model"].get("name", DEFAULT_MODEL) == loc[1]:
            loc = [loc[0]] + loc[2:]
    where = ".".join(loc) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
        allowed = _known_keys(loc[:-1], document)
        import difflib

        close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6) if loc and allowed else []
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif allowed:
            message += f"; known keys here: {', '.join(allowed)}"
    elif error["type"] == "union_tag_invalid":
        message = f"unknown model {error['input'].get('name')!r}; allowed: {', '.join(sorted(MODEL_CONFIGS))}"
        where = "model.name"
    elif "input" in error and error["type"] not in ("missing",):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def _known_keys(loc: list[str], document: dict[str, Any]) -> list[str]:
    model: type[BaseModel] | None = RunConfig
    for part in loc:
        if model is None:
            return []
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return []
        if part == "model" and model is RunConfig:
            name = (document.get("model") or {}).get("name", DEFAULT_MODEL)
            model = MODEL_CONFIGS.get(name)
            continue
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def validate_run_config(document: Any, source: str = "config") -> RunConfig:
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with data/model/train sections, got {type(document).__name__}")
    model = document.get("model")
    if isinstance(model, dict) and "name" not in model:
        document = {**document, "model": {"name": DEFAULT_MODEL, **model}}
    try:
        return RunConfig.model_validate(document)
    except ValidationError as exc:
        lines = [_describe(e, document) for e in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


def load_run_config(path: Path | None, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML run config (or the built-in default when `path` is None)."""
    document: Any = {}
    source = "built-in default"
    if path is not None:
        source = str(path)
        document = read_yaml(path, ConfigError, "config file") or {}
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping with data/model/train sections")
    document = apply_overrides(document, overrides)
    return validate_run_config(document, source)
