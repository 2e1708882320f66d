"""`decide(state) -> Decision`: what the campaign does next, as a pure function of the
store's state. It asks the current phase's policy; a phase that is done hands over to
the next; a step that would leave the approved strategy (more budget, a knob or a value
outside the approved space) is not taken: the campaign pauses and says what it wants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rankwright.agent.naming import BASELINE, base_name
from rankwright.agent.phases import POLICIES, Done, PhasePolicy
from rankwright.agent.state import PHASES, CampaignState


@dataclass(frozen=True)
class Decision:
    action: Literal["wait", "run", "pause", "finish"]
    phase: str
    reason: str
    step: str = ""
    experiments: tuple[dict[str, Any], ...] = ()
    data: dict[str, Any] | None = None


def outside_guardrails(state: CampaignState, phase: str, experiments: tuple[dict[str, Any], ...]) -> list[str]:
    """What in these experiments the engineer has not approved, in words ([] when nothing)."""
    problems = []
    for e in experiments:
        for knob, value in e["delta"].items():
            if knob not in state.allowed_knobs:
                problems.append(f"{e['name']} sets {knob}, which is outside the approved search space")
            elif knob in state.space and e["source"] == "exploitation" and knob in e.get("params", {}) \
                    and not state.space[knob].contains(value):
                problems.append(f"{e['name']} sets {knob}={value}, outside the approved range "
                                f"{state.space[knob].shown()}")
    cost = sum(e["predicted_hours"] for e in experiments)
    left = state.phase_budget(phase)
    if cost > left + 1e-12 and cost > state.plannable - state.committed() + 1e-12:
        problems.append(f"it needs {cost:.3g} more compute but {max(left, 0):.3g} of the approved budget is left "
                        f"for it; approve about {cost - max(state.plannable - state.committed(), 0):.3g} more")
    return list(dict.fromkeys(problems))


def decide(state: CampaignState, policies: dict[str, PhasePolicy] = POLICIES) -> Decision:
    if not state.all_ended:
        return Decision("wait", state.phase, "runs of the current revision are still in flight")
    for arm in state.arms():
        if base_name(arm) == BASELINE and state.complete(arm) and not state.values(arm):
            return Decision("pause", state.phase, f"every run of {arm} failed, so nothing can be compared: "
                            "`rankwright status` shows why; fix the cause, then stop this campaign and plan again")
    ended: list[str] = []
    for phase in PHASES[PHASES.index(state.phase):]:
        outcome = policies[phase].next(state)
        if isinstance(outcome, Done):
            ended.append(f"{phase} ended: {outcome.reason}")
            continue
        reason = "; ".join(ended + [outcome.reason])
        problems = outside_guardrails(state, phase, outcome.experiments)
        if problems:
            return Decision("pause", phase, "wants approval: " + "; ".join(problems) + f" (to do: {outcome.reason})",
                            outcome.step, outcome.experiments, outcome.data)
        return Decision("run", phase, reason, outcome.step, outcome.experiments, outcome.data)
    return Decision("finish", PHASES[-1], "; ".join(ended))


__all__ = ["Decision", "decide", "outside_guardrails"]
