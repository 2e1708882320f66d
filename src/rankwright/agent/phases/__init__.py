"""The three phase policies, each a pure `next(state)` behind `PhasePolicy`."""

from rankwright.agent.phases._base import Done, PhasePolicy, Step
from rankwright.agent.phases.combination import Combination
from rankwright.agent.phases.exploitation import Exploitation
from rankwright.agent.phases.validation import Validation

POLICIES: dict[str, PhasePolicy] = {p.name: p for p in (Validation(), Combination(), Exploitation())}

__all__ = ["POLICIES", "Combination", "Done", "Exploitation", "PhasePolicy", "Step", "Validation"]
