"""The phase policy: one method, `next(state)`, a pure function of the campaign's state.

It returns the next `Step` of its phase (experiments to add, with the reason in words) or
`Done` (the phase has nothing worth running; the reason says why). It never touches the
store or the executor; `decide` records what it returns before anything is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from rankwright.agent.naming import BASELINE, arm_name, base_name
from rankwright.agent.state import CampaignState

MIN_COST_FACTOR = 0.5  # no run costs less than half a baseline run (start-up, loading, evaluation)
# Below this many baseline runs of plannable budget, validation rounds with seeds cannot pay:
# 3 baseline seeds, 4 hypotheses x 2 seeds, the 3-seed check of 2 promoted ones and a 3-seed
# confirmation take about 19, leaving the search almost nothing (the head-to-head's 16-run
# campaigns ran 0-3 trials against the tuners' 9-13). The plan then goes tuner first.
TUNER_FIRST_RUNS = 24
# The confirmation's first stage: the winner and the baseline on this many seeds, judged at
# a stricter level; the rest of `strategy.confirmation_seeds` only for a borderline winner
# (`TwoStageDesign`). A tuner-first plan runs this many baseline seeds up front, not more.
CONFIRMATION_STAGE1_SEEDS = 2


@dataclass(frozen=True)
class Step:
    experiments: tuple[dict[str, Any], ...]
    reason: str
    step: str  # what kind of step: round, more seeds, fidelity check, greedy, trials, confirmation
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    reason: str


class PhasePolicy(Protocol):
    name: str

    def next(self, state: CampaignState) -> Step | Done:
        """The phase's next step, or Done with the reason; pure and deterministic."""
        ...


def tuner_first(state: CampaignState) -> bool:
    """Did the approved plan send the hypotheses straight to the tuner? Its first round is
    the baseline alone (`make_plan` at a budget under `TUNER_FIRST_RUNS` runs, or a spec
    with no hypotheses): read from the plan, so every wake of a campaign agrees."""
    arms = {key.split("/")[1] for key in state.first_round}
    return bool(arms) and all(base_name(a) == BASELINE for a in arms)


def baseline_arm(state: CampaignState, low: bool) -> str:
    return arm_name(BASELINE, low and bool(state.low))


def planned_runs(state: CampaignState, *, arm: str, phase: str, delta: Mapping[str, Any], low: bool,
                 seeds: range | list[int], cost_factor: float = 1.0, technique: str | None = None,
                 source: str = "knowledge", reason: str = "", hypothesis: str = "",
                 params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Entries for the seeds of `arm` not planned yet, priced from what runs cost so far."""
    known = state.seeds(arm)
    low = low and bool(state.low)
    cost = state.unit_cost(low) * max(cost_factor, MIN_COST_FACTOR)
    changes = {**(dict(state.low) if low else {}), **dict(delta)}
    return [{"phase": phase, "name": arm, "changes": changes, "seed": seed, "predicted_hours": cost,
             "technique": technique, "source": source, "reason": reason, "hypothesis": hypothesis or arm,
             "delta": dict(delta), "fidelity": "low" if low else "full", "params": dict(params or {})}
            for seed in seeds if seed not in known]


def cost_of(entries: list[dict[str, Any]]) -> float:
    return sum(e["predicted_hours"] for e in entries)
