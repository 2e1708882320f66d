"""The campaign's launch-ready proposal as frozen values.

The campaign engine builds a `Proposal` from its store and hands it to
`rankwright.report.write_report`; nothing here reads the store. Amounts of compute are in
the campaign's budget unit; effects of hypotheses are relative changes of the objective
as fractions (-0.0042 is -0.42%, negative is better); metric differences are in the
metric's own units.

Sequences given as lists are stored as tuples, so a value built from query results is as
immutable as one built by hand.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PHASES = ("validation", "combination", "exploitation", "confirmation")
VERDICTS = ("helped", "hurt", "inconclusive", "no gain", "failed", "pruned", "not run")


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent.ABSENT
"""Stands in `config_diff` rows for a key one side does not have (None is YAML's null)."""


def _tuples(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, tuple):
            object.__setattr__(obj, name, tuple(value))


def _check_interval(what: str, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        if low > high:
            raise ValueError(f"{what}: the interval's low end {low} is above its high end {high}")


@dataclass(frozen=True)
class MetricComparison:
    """One test-split metric, baseline against proposal, over the seeds both ran (when the
    proposal is the baseline: the baseline's own seeds, proposal equal to baseline)."""

    metric: str  # "ne" | "auc" | "logloss" | "calibration"
    lower_is_better: bool
    baseline: float  # mean over seeds
    proposal: float
    diff: float  # proposal - baseline: mean of the per-seed differences (metric units)
    ci_low: float  # 95% t interval of diff over the paired seeds
    ci_high: float
    seeds: int

    def __post_init__(self) -> None:
        _check_interval(f"metric {self.metric}", self.ci_low, self.ci_high)
        if self.seeds < 0:
            raise ValueError(f"metric {self.metric}: seeds cannot be negative")

    @property
    def outcome(self) -> str:
        """"better" or "worse" when the 95% interval excludes zero, else "unclear"."""
        if self.ci_low > 0 or self.ci_high < 0:
            return "better" if (self.diff < 0) == self.lower_is_better else "worse"
        return "unclear"


@dataclass(frozen=True)
class HypothesisEvidence:
    """One hypothesis tried at one fidelity, and what came of it."""

    name: str
    source: str  # knowledge | history | diagnosis | llm | spec | combination | exploitation
    changes: dict[str, Any]
    phase: str  # validation | combination | exploitation | confirmation
    fidelity: str  # e.g. "low (train_fraction 0.5)" or "full"
    seeds: int
    effect: float | None  # relative objective change vs its baseline (negative = better)
    ci_low: float | None
    ci_high: float | None
    p_adjusted: float | None
    verdict: str  # helped | hurt | inconclusive | no gain | failed | pruned | not run
    promoted: bool
    why: str  # one sentence

    def __post_init__(self) -> None:
        _check_interval(f"hypothesis {self.name}", self.ci_low, self.ci_high)
        if self.seeds < 0:
            raise ValueError(f"hypothesis {self.name}: seeds cannot be negative")


@dataclass(frozen=True)
class Curve:
    """Validation objective per epoch of one run."""

    label: str  # "baseline seed 1", "proposal seed 1"
    epochs: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        _tuples(self, "epochs", "values")
        if len(self.epochs) != len(self.values):
            raise ValueError(f"curve {self.label!r}: {len(self.epochs)} epochs but {len(self.values)} values")

    @property
    def group(self) -> str:
        """The label's first word: "baseline" or "proposal" for the engine's curves."""
        return self.label.split(" ", 1)[0] if self.label.strip() else self.label


@dataclass(frozen=True)
class SpendPoint:
    hours_since_start: float
    phase: str
    cumulative: float  # in the budget unit


@dataclass(frozen=True)
class PhaseCost:
    """A phase's cost: the plan's estimate, what it used, and its share of the budget."""

    phase: str
    estimated: float
    actual: float
    budget: float  # the phase's share after flows between phases

    @property
    def error(self) -> float | None:
        """(actual - estimated) / estimated; None without an estimate."""
        return (self.actual - self.estimated) / self.estimated if self.estimated > 0 else None

    @property
    def used(self) -> float | None:
        """Share of the phase's budget used; None when the phase had no budget."""
        return self.actual / self.budget if self.budget > 0 else None


@dataclass(frozen=True)
class Revision:
    number: int
    phase: str
    reason: str
    experiments: int


@dataclass(frozen=True)
class ArmResult:
    """One arm against the baseline on the validation objective, over the seeds both ran:
    what the ship decision reads (the test split never enters it)."""

    arm: str
    phase: str  # where it was first planned: validation | combination | exploitation
    seeds: int  # seeds paired with the baseline's
    effect: float  # relative change of the objective as minimised (negative = better)
    ci_low: float  # 95% paired t interval of the effect
    ci_high: float
    p_better: float  # probability that it beats the baseline (paired t, flat prior)

    def __post_init__(self) -> None:
        _check_interval(f"arm {self.arm}", self.ci_low, self.ci_high)
        if not 0.0 <= self.p_better <= 1.0:
            raise ValueError(f"arm {self.arm}: p_better {self.p_better} is not a probability")

    @property
    def confirmed(self) -> bool:
        """Its 95% validation interval lies wholly on the side of a gain."""
        return self.ci_high < 0


@dataclass(frozen=True)
class Decision:
    """What ships and why, decided on validation alone."""

    rule: str  # "expected" (best expected gain) | "confirmed" (its 95% interval is wholly a gain)
    ships: str | None  # the arm that ships; None: the baseline
    arms: tuple[ArmResult, ...]  # every arm with 2+ seeds paired with the baseline's, best first
    reason: str  # one sentence, capitalised where it does not start with an arm's name

    def __post_init__(self) -> None:
        _tuples(self, "arms")
        if self.ships is not None and self.ships not in {a.arm for a in self.arms}:
            raise ValueError(f"decision ships {self.ships!r}, which is not among its arms")

    @property
    def best(self) -> ArmResult | None:
        """The arm with the best expected validation gain, shipped or not."""
        return min(self.arms, key=lambda a: (a.effect, a.arm), default=None)

    @property
    def shipped(self) -> ArmResult | None:
        return next((a for a in self.arms if a.arm == self.ships), None)


@dataclass(frozen=True)
class Proposal:
    campaign: str
    objective: str  # e.g. "valid.ne"
    unit: str  # "cpu_hours" | "gpu_hours"
    approved_budget: float
    spent: float
    found_better: bool
    headline: str  # one or two sentences, written by the engine
    baseline_config: dict[str, Any]  # full config documents (nested dicts)
    proposal_config: dict[str, Any]
    config_diff: tuple[tuple[str, Any, Any], ...]  # (dotted path, baseline value, proposal value)
    metrics: tuple[MetricComparison, ...]
    hypotheses: tuple[HypothesisEvidence, ...]
    curves: tuple[Curve, ...]
    spend: tuple[SpendPoint, ...]
    phase_costs: tuple[PhaseCost, ...]
    revisions: tuple[Revision, ...]
    correction: str  # e.g. "Holm over the 8 hypotheses of validation, alpha 0.10"
    rank_agreement: tuple[str, float, int] | None  # (method, value, n points) low vs full fidelity
    bayes_ne: float | None  # the Bayes limit on synthetic data, else None
    gap_closed: float | None  # share of the baseline -> Bayes NE gap closed by the proposal
    ruled_out: tuple[str, ...]  # plain sentences: what was shown not to help
    notes: tuple[str, ...]  # anything else the engineer should know
    reproduce: str = "rankwright train proposal.yaml"  # the one command that trains the proposal
    decision: Decision | None = None  # the ship decision on validation (None: built by hand, without one)

    def __post_init__(self) -> None:
        _tuples(self, *_SEQUENCE_FIELDS)
        object.__setattr__(self, "config_diff", tuple(tuple(row) for row in self.config_diff))
        if self.rank_agreement is not None:
            if len(self.rank_agreement) != 3:
                raise ValueError("rank_agreement is (method, value, number of points)")
            object.__setattr__(self, "rank_agreement", tuple(self.rank_agreement))

    @property
    def p_better(self) -> float | None:
        """Probability on validation that the shipped change beats the baseline."""
        shipped = self.decision.shipped if self.decision else None
        return None if shipped is None else shipped.p_better

    @property
    def valid_effect(self) -> float | None:
        """The shipped change's relative validation effect (negative = better)."""
        shipped = self.decision.shipped if self.decision else None
        return None if shipped is None else shipped.effect

    @property
    def budget_used(self) -> float | None:
        """Share of the approved budget spent; None when nothing was approved."""
        return self.spent / self.approved_budget if self.approved_budget > 0 else None


_SEQUENCE_FIELDS = ("config_diff", "metrics", "hypotheses", "curves", "spend", "phase_costs",
                    "revisions", "ruled_out", "notes")


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {dotted path: leaf value}. Lists and empty mappings are leaves."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: True is not 1, [1, 2] is (1, 2)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def config_diff(baseline: Mapping[str, Any], proposal: Mapping[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    """Every leaf that differs, as (dotted path, baseline value, proposal value), by path.

    A key only one side has gets `ABSENT` on the other; lists are compared as values.
    """
    old, new = flatten(baseline), flatten(proposal)
    rows = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path, ABSENT), new.get(path, ABSENT)
        if a is ABSENT or b is ABSENT or not _same(a, b):
            rows.append((path, a, b))
    return tuple(rows)
