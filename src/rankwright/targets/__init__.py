"""What a model codebase looks like to the agent: command, knobs, metrics, cost."""

from rankwright.targets._base import KnobSpec, MetricsSpec, Target, TargetError, value_at
from rankwright.targets.builtin import BuiltinTarget, builtin_target
from rankwright.targets.cost import CostFeatures, CostModel, CostModelSpec, CostObservation
from rankwright.targets.loading import load_target, target_from_dict

__all__ = [
    "BuiltinTarget",
    "CostFeatures",
    "CostModel",
    "CostModelSpec",
    "CostObservation",
    "KnobSpec",
    "MetricsSpec",
    "Target",
    "TargetError",
    "builtin_target",
    "load_target",
    "target_from_dict",
    "value_at",
]
