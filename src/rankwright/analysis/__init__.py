"""Statistics shared by the learn step, the phases and the report (DESIGN.md `analysis`).

Imports nothing of ours: paired tests, verdicts, multiple-testing correction, intervals
and rank correlations, all as pure functions (`stats`).
"""

from rankwright.analysis.stats import (
    Judgement,
    PairedResult,
    Verdict,
    adjust,
    benjamini_hochberg,
    borderline,
    holm,
    judge,
    kendall,
    mean_ci,
    paired_test,
    spearman,
    t_quantile,
    verdict,
)

__all__ = [
    "Judgement",
    "PairedResult",
    "Verdict",
    "adjust",
    "benjamini_hochberg",
    "borderline",
    "holm",
    "judge",
    "kendall",
    "mean_ci",
    "paired_test",
    "spearman",
    "t_quantile",
    "verdict",
]
