"""The campaign's launch-ready proposal: value types and the report files.

The campaign engine builds a `Proposal` from its store and calls
`write_report(proposal, out_dir)`, which writes proposal.yaml, report.md and report.html.
Nothing here reads the store; matplotlib is imported only when charts are drawn.
"""

from rankwright.report.proposal import (
    ABSENT,
    PHASES,
    VERDICTS,
    ArmResult,
    Curve,
    Decision,
    HypothesisEvidence,
    MetricComparison,
    PhaseCost,
    Proposal,
    Revision,
    SpendPoint,
    config_diff,
)
from rankwright.report.render import proposal_yaml, render_html, render_markdown, write_report

__all__ = [
    "ABSENT",
    "PHASES",
    "VERDICTS",
    "ArmResult",
    "Curve",
    "Decision",
    "HypothesisEvidence",
    "MetricComparison",
    "PhaseCost",
    "Proposal",
    "Revision",
    "SpendPoint",
    "config_diff",
    "proposal_yaml",
    "render_html",
    "render_markdown",
    "write_report",
]
