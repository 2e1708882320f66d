"""Statistics shared by the learn step, the phases and the report (DESIGN.md `analysis`).

Imports nothing of ours: paired tests (alone, or with the seed noise pooled across arms), the
two-stage rule for extra seeds, verdicts, multiple-testing correction, intervals
and rank correlations, all as pure functions (`stats`).
"""

from rankwright.analysis.stats import (
    Judgement,
    PairedResult,
    TwoStageDesign,
    Verdict,
    adjust,
    benjamini_hochberg,
    borderline,
    holm,
    judge,
    judge_two_stage,
    kendall,
    mean_ci,
    paired_test,
    pooled_paired_tests,
    spearman,
    t_quantile,
    verdict,
)

__all__ = [
    "Judgement",
    "PairedResult",
    "TwoStageDesign",
    "Verdict",
    "adjust",
    "benjamini_hochberg",
    "borderline",
    "holm",
    "judge",
    "judge_two_stage",
    "kendall",
    "mean_ci",
    "paired_test",
    "pooled_paired_tests",
    "spearman",
    "t_quantile",
    "verdict",
]
