"""One read of the store that gives a decision everything it needs, as frozen values.

`decide` is a pure function of a `CampaignState`: the same store gives the same state,
so a wake killed anywhere and started again decides the same thing. What needs I/O (the
ranking with the campaign's own insights, the diagnosis of its best run, the per-epoch
curves of running trials) is gathered here, in `observe`, never inside a policy.
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from rankwright.agent.naming import BASELINE
from rankwright.agent.spec import SearchRange, Strategy
from rankwright.store.records import ExperimentStatus, RevisionRecord

PHASES = ("validation", "combination", "exploitation")


@dataclass(frozen=True)
class Run:
    """One experiment as a decision sees it; `objective` is as minimised (sign applied)."""

    key: str
    arm: str
    seed: int
    status: ExperimentStatus
    objective: float | None
    reserved: float
    actual: float | None
    ended_as: str | None = None  # a failed run: how the runbook ended it (unstable, invalid, ...)


@dataclass(frozen=True)
class Candidate:
    """A ranked hypothesis (or a change the spec says to try) that validation may test."""

    name: str
    changes: dict[str, Any]
    technique: str | None = None
    source: str = "spec"
    expected_effect: float = 0.0
    p_success: float = 1.0
    cost_factor: float = 1.0
    reason: str = ""

    @property
    def expected_to_help(self) -> bool:
        from rankwright.hypotheses.engine import MIN_P_SUCCESS

        return self.source == "spec" or (self.expected_effect < 0 and self.p_success >= MIN_P_SUCCESS)


@dataclass(frozen=True)
class CampaignState:
    name: str
    strategy: Strategy
    low: Mapping[str, Any]  # knob changes of a low-fidelity run ({}: validation runs at full fidelity)
    space: Mapping[str, SearchRange]  # approved exploitation ranges
    allowed_knobs: frozenset[str]  # every knob a re-plan may set without asking
    plannable: float  # budget the agent may commit alone: approved x pause threshold
    round_size: int
    validation_seeds: int
    max_parallel: int
    planned: tuple[Mapping[str, Any], ...]  # the approved plan's experiments, then each revision's
    revisions: tuple[RevisionRecord, ...]
    runs: Mapping[str, Run]
    candidates: tuple[Candidate, ...] = ()  # the ranking re-computed with what this campaign learned
    curves: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # running trials' epochs
    base_values: Mapping[str, Any] = field(default_factory=dict)  # the baseline's value of each space knob
    conflicts: frozenset[frozenset[str]] = frozenset()  # pairs of hypotheses the knowledge base says conflict
    first_round: frozenset[str] = frozenset()  # keys of the approved plan's experiments (priced by the prior)

    # -- what was planned -------------------------------------------------------------
    @property
    def next_revision(self) -> int:
        return (self.revisions[-1].number if self.revisions else 0) + 1

    @property
    def phase(self) -> str:
        return self.revisions[-1].phase if self.revisions else "validation"

    @property
    def seed(self) -> int:
        """The campaign's own seed: any randomness in a decision is drawn from it and the
        revision number, never from the clock."""
        return int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16)

    @cached_property
    def _by_arm(self) -> dict[str, list[Mapping[str, Any]]]:
        """Planned entries by arm, in plan order: every query below is a lookup, so a
        campaign with thousands of experiments decides in time linear in them."""
        out: dict[str, list[Mapping[str, Any]]] = {}
        for p in self.planned:
            out.setdefault(p["name"], []).append(p)
        return out

    def arms(self, phase: str | None = None) -> list[str]:
        """Arms in the order they were first planned."""
        if phase is None:
            return list(self._by_arm)
        return list(dict.fromkeys(p["name"] for p in self.planned if p["phase"] == phase))

    def first_entry(self, arm: str) -> Mapping[str, Any]:
        return self._by_arm[arm][0]

    def seeds(self, arm: str) -> set[int]:
        return {p["seed"] for p in self._by_arm.get(arm, ())}

    def steps(self, phase: str, step: str) -> int:
        """How many revisions of this phase took this step."""
        return sum(1 for r in self.revisions if r.phase == phase and r.body.get("step") == step)

    # -- what ran ---------------------------------------------------------------------
    def values(self, arm: str) -> dict[int, float]:
        """Seed -> objective of the arm's succeeded runs."""
        out = {}
        for seed in sorted(self.seeds(arm)):
            run = self.runs.get(f"{self.name}/{arm}/seed{seed}")
            if run is not None and run.status is ExperimentStatus.SUCCEEDED and run.objective is not None:
                out[seed] = run.objective
        return out

    def complete(self, arm: str) -> bool:
        """Every planned seed of the arm has ended (succeeded, failed or cancelled)."""
        keys = [f"{self.name}/{arm}/seed{s}" for s in self.seeds(arm)]
        return bool(keys) and all(k in self.runs and self.runs[k].status.is_terminal for k in keys)

    @property
    def all_ended(self) -> bool:
        return all(self.complete(arm) for arm in self.arms())

    def committed(self, phase: str | None = None) -> float:
        """Measured cost of ended runs plus the reservation of the rest (of one phase)."""
        total = 0.0
        for p in self.planned:
            if phase is not None and p["phase"] != phase:
                continue
            run = self.runs.get(f"{self.name}/{p['name']}/seed{p['seed']}")
            if run is None:
                total += p["predicted_hours"]
            else:
                total += run.actual if run.actual is not None else run.reserved
        return total

    def phase_budget(self, phase: str) -> float:
        """What `phase` may still commit: its share, plus what earlier phases left unused,
        while later phases keep their shares."""
        index = PHASES.index(phase)
        later = sum(self.strategy.phases.of(p) for p in PHASES[index + 1:]) * self.plannable
        earlier = sum(self.committed(p) for p in PHASES[:index])
        return self.plannable - later - earlier - self.committed(phase)

    def unit_cost(self, low: bool) -> float:
        """Cost of one run of the unchanged baseline at this fidelity: measured where it
        ran, else the plan's prediction corrected by how far off the measured runs were."""
        arm = BASELINE + ("@low" if low and self.low else "")
        measured = [self.runs[k].actual for k in (f"{self.name}/{arm}/seed{s}" for s in self.seeds(arm))
                    if k in self.runs and self.runs[k].status is ExperimentStatus.SUCCEEDED
                    and self.runs[k].actual]
        if measured:
            return statistics.mean(measured)
        predicted = [p["predicted_hours"] for p in self.planned if p["name"] == arm] or \
                    [p["predicted_hours"] for p in self.planned if bool(p.get("fidelity") == "low") == low] or \
                    [p["predicted_hours"] for p in self.planned]
        return statistics.mean(predicted) * self.correction()

    def correction(self) -> float:
        """Measured / predicted cost of the approved plan's runs that succeeded: how far
        off the up-front estimate was (1 before any ended)."""
        pairs = [(r.actual, r.reserved) for k, r in self.runs.items()
                 if k in self.first_round and r.status is ExperimentStatus.SUCCEEDED and r.actual and r.reserved]
        if not pairs:
            return 1.0
        return sum(a for a, _ in pairs) / sum(p for _, p in pairs)
