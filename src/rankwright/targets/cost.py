"""The cost model: predicted wall seconds of a run, refined from measured runs.

    seconds = overhead + rows * fidelity * epochs * per_row_seconds * (size / reference_size) ** size_exponent

`per_row_seconds` and `size_exponent` start at a prior and are refitted by ridge least
squares in log space, shrunk toward the prior with the weight of `prior_weight` pseudo-runs.
Everything here is pure: `refine` returns a new model. `uncertainty` is a multiplicative
factor: the true cost is expected within [prediction / u, prediction * u].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class CostFeatures:
    rows: float  # rows of the full training data
    model_size: float = 1.0  # parameters, or a proxy such as embedding_dim x fields
    fidelity: float = 1.0  # share of the rows a run uses
    epochs: float = 1.0

    @property
    def work(self) -> float:
        """Rows processed over the whole run."""
        return self.rows * self.fidelity * self.epochs


@dataclass(frozen=True)
class CostObservation:
    features: CostFeatures
    seconds: float


@dataclass(frozen=True)
class CostModel:
    per_row_seconds: float  # at reference_size
    overhead_seconds: float = 0.0
    size_exponent: float = 1.0
    reference_size: float = 1.0
    uncertainty: float = 3.0  # multiplicative, >= 1
    prior_weight: float = 2.0  # pseudo-observations the prior counts for in `refine`
    observations: int = 0

    def predict(self, features: CostFeatures) -> float:
        """Predicted wall seconds of one run."""
        scale = (max(features.model_size, 1e-12) / self.reference_size) ** self.size_exponent
        return self.overhead_seconds + features.work * self.per_row_seconds * scale

    def interval(self, features: CostFeatures) -> tuple[float, float]:
        seconds = self.predict(features)
        return seconds / self.uncertainty, seconds * self.uncertainty

    def predict_hours(self, features: CostFeatures, devices: float = 1.0) -> float:
        """CPU- or GPU-hours (the unit is the spec's) of one run on `devices` devices."""
        return self.predict(features) * devices / 3600.0

    def refine(self, observations: Iterable[CostObservation], fit_exponent: bool | None = None) -> "CostModel":
        """A new model fitted to measured runs, shrunk toward this one (the prior).

        The exponent is fitted only when the observed model sizes differ (or when asked);
        otherwise just the coefficient is. With no usable observations the prior comes back.
        """
        points = []  # (x, y, weight): weighted ridge least squares in log space
        for obs in observations:
            f = obs.features
            net = obs.seconds - self.overhead_seconds
            if f.work <= 0 or not math.isfinite(obs.seconds) or net <= 0:
                continue  # a run no slower than the overhead says nothing about per-row cost
            x = math.log(max(f.model_size, 1e-12) / self.reference_size)
            # Noise is multiplicative on the whole run: log(net) is noisier when overhead dominates.
            points.append((x, math.log(net / f.work), (net / obs.seconds) ** 2))
        if not points:
            return self
        xs = [p[0] for p in points]
        if fit_exponent is None:
            fit_exponent = len(points) >= 3 and max(xs) - min(xs) > 0.1
        w0 = self.prior_weight
        a0, b0 = math.log(self.per_row_seconds), self.size_exponent
        sw = sum(w for _, _, w in points)
        if fit_exponent:
            # Ridge: minimise sum w (y - a - b x)^2 + w0 (a - a0)^2 + w0 (b - b0)^2.
            sx = sum(w * x for x, _, w in points)
            sy = sum(w * y for _, y, w in points)
            sxx = sum(w * x * x for x, _, w in points)
            sxy = sum(w * x * y for x, y, w in points)
            m11, m12, m22 = sw + w0, sx, sxx + w0
            r1, r2 = sy + w0 * a0, sxy + w0 * b0
            det = m11 * m22 - m12 * m12
            a = (r1 * m22 - m12 * r2) / det
            b = (m11 * r2 - m12 * r1) / det
        else:
            b = b0
            a = (w0 * a0 + sum(w * (y - b * x) for x, y, w in points)) / (w0 + sw)
        log_u0 = math.log(self.uncertainty)
        # The prior's spread counts as w0 pseudo-residuals; the estimate's own error shrinks too.
        ss = sum(w * (y - a - b * x) ** 2 for x, y, w in points)
        spread = math.sqrt((w0 * log_u0**2 + ss) / (w0 + sw))
        log_u = spread * math.sqrt(1.0 + 1.0 / (w0 + sw))
        return replace(
            self,
            per_row_seconds=math.exp(a),
            size_exponent=b,
            uncertainty=max(math.exp(log_u), 1.05),
            observations=self.observations + len(points),
        )


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def _number(config: Mapping[str, Any], item: float | str, what: str) -> float:
    if isinstance(item, str):
        try:
            value = _lookup(config, item)
        except KeyError:
            raise ValueError(f"cost.{what}: the config has no {item!r}") from None
        if isinstance(value, (list, tuple)):  # e.g. hidden layer widths: their sum
            value = sum(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"cost.{what}: {item!r} holds {value!r}, not a number")
        return float(value)
    return float(item)


class CostModelSpec(BaseModel):
    """How a target's runs cost: the prior and where the features are read in a config.

    A feature is a number or a dotted path into the run's config; `model_size` is the
    product of its factors (e.g. `[model.embedding_dim, 10]` for dim x fields).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Literal["cpu_hours", "gpu_hours"] = "cpu_hours"
    overhead_seconds: float = Field(5.0, ge=0.0)
    per_row_seconds: float = Field(1e-5, gt=0.0, description="prior seconds per row at reference_size")
    size_exponent: float = Field(1.0, ge=0.0, le=3.0)
    reference_size: float = Field(1.0, gt=0.0)
    uncertainty: float = Field(3.0, ge=1.0)
    prior_weight: float = Field(2.0, gt=0.0)
    rows: float | str = Field(100_000, description="full training rows, or a config path holding them")
    epochs: float | str = Field(1, description="epochs, or a config path")
    fidelity: float | str = Field(1.0, description="share of data used, or a config path")
    model_size: tuple[float | str, ...] = Field((), description="factors of the model size")
    cores: float | Literal["share"] = Field(
        "share", description="cores a CPU run keeps busy, so that wall-time priors are charged as CPU time: a number, "
                             "or 'share' (its share of the machine when runs run side by side, as OMP_NUM_THREADS says)")

    def model(self) -> CostModel:
        return CostModel(
            per_row_seconds=self.per_row_seconds,
            overhead_seconds=self.overhead_seconds,
            size_exponent=self.size_exponent,
            reference_size=self.reference_size,
            uncertainty=self.uncertainty,
            prior_weight=self.prior_weight,
        )

    def features(self, config: Mapping[str, Any]) -> CostFeatures:
        size = 1.0
        for factor in self.model_size:
            size *= _number(config, factor, "model_size")
        return CostFeatures(
            rows=_number(config, self.rows, "rows"),
            model_size=size,
            fidelity=_number(config, self.fidelity, "fidelity"),
            epochs=_number(config, self.epochs, "epochs"),
        )
