"""The built-in ranking codebase as a target: `rankwright train` with its own knob schema."""

from __future__ import annotations

from typing import Any


from rankwright.targets._base import KnobSpec, MetricsSpec, Target, TargetError
from rankwright.targets.cost import CostModelSpec


class BuiltinTarget(Target):
    """Rendered configs are validated by the ranking codebase's own `validate_run_config`."""

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        from rankwright.ranking.config import ConfigError, validate_run_config

        try:
            validate_run_config(config, source=f"target {self.name}")
        except ConfigError as exc:
            raise TargetError(str(exc)) from None
        return config


def builtin_target(model: str = "dnn", base_config: dict[str, Any] | None = None) -> Target:
    """The default target: our ranking codebase training `model` from `base_config`.

    `base_config` is a run config document (data/model/train); it is validated and
    completed with every default, and its model name must be `model` (or absent).
    """
    from rankwright.ranking.config import ConfigError, validate_run_config
    from rankwright.ranking.knobs import knob_schema

    try:
        knobs = [KnobSpec.from_knob(k) for k in knob_schema(model)]
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    for knob in knobs:  # a learning rate or an L2 spans decades: search it on a log scale
        if knob.path in ("train.learning_rate", "train.weight_decay", "model.embedding_l2", "model.net_l2"):
            if knob.low is not None and knob.low >= 0:
                knobs[knobs.index(knob)] = knob.model_copy(update={"log": True, "low_inclusive": False})
    document = dict(base_config or {})
    section = dict(document.get("model") or {})
    if section.setdefault("name", model) != model:
        raise TargetError(f"base_config.model.name is {section['name']!r} but the target is for {model!r}")
    document["model"] = section
    try:
        full = validate_run_config(document, source="builtin target base_config").to_yaml_dict()
    except ConfigError as exc:
        raise TargetError(str(exc)) from None
    return BuiltinTarget(
        name=f"rankwright-{model}",
        description=f"the built-in ranking codebase, model {model}",
        command=("{python}", "-m", "rankwright", "train", "{config}", "--run-dir", "{run_dir}", "--quiet"),
        knobs=tuple(knobs),
        base_config=full,
        config_file="experiment.yaml",
        metrics=MetricsSpec(
            file="metrics.jsonl",
            format="jsonl",
            result_file="result.json",
            objective="valid.ne",
            direction="minimize",
            heartbeat_file="heartbeat.json",
            heartbeat_max_age_s=600.0,
        ),
        cost=CostModelSpec(
            unit="cpu_hours",
            overhead_seconds=10.0,
            per_row_seconds=2e-6,  # per row at embedding_dim 10 x hidden widths 1200
            size_exponent=0.5,
            reference_size=12_000.0,
            rows="data.synthetic.rows",
            epochs="train.epochs",
            fidelity="data.train_fraction",
            model_size=("model.embedding_dim", "model.hidden_units"),
        ),
    )
