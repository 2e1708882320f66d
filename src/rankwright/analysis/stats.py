"""Statistics shared by the learn step, the phase promotion rule and the report.

Pure functions over objective values keyed by seed (an objective to minimise, such as NE).
Imports nothing of ours, and only `scipy.special` from SciPy, when a t distribution is
first needed: the agent's wake loads this module, and a wake with nothing to decide should
not pay for SciPy (0.2 s), let alone `scipy.stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Mapping, Sequence

import numpy as np


class Verdict(str, Enum):
    HELPED = "helped"
    HURT = "hurt"
    INCONCLUSIVE = "inconclusive"  # not significant is not failed: more seeds may decide it
    NO_GAIN = "no gain"  # confidently no gain worth having: retires a technique


def t_quantile(df: float, p: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (4.303 for df=2, p=0.975):
    with three seeds a normal 1.96 would make every interval far too narrow."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


@dataclass(frozen=True)
class PairedResult:
    """A candidate against its baseline, relative to the baseline's mean (negative = lower)."""

    effect: float
    se: float
    df: int
    n: int
    paired: bool
    p_lower: float  # one-sided, H1: effect < 0 (the candidate is lower: better when minimising)
    p_higher: float  # one-sided, H1: effect > 0

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        half = t_quantile(self.df, (1 + level) / 2) * self.se
        return self.effect - half, self.effect + half

    def upper(self, level: float = 0.95) -> float:
        """One-sided upper bound: the effect is below this with confidence `level`."""
        return self.effect + t_quantile(self.df, level) * self.se

    def lower(self, level: float = 0.95) -> float:
        """One-sided lower bound: the largest gain still plausible at confidence `level`."""
        return self.effect - t_quantile(self.df, level) * self.se


def _sd(xs: Sequence[float]) -> float | None:
    return float(np.std(xs, ddof=1)) if len(xs) >= 2 else None


def _result(effect: float, se: float, df: int, n: int, paired: bool) -> PairedResult:
    if se > 0:
        t = effect / se
    else:  # no spread at all (only with sd_floor=0): the sign alone decides
        t = math.copysign(math.inf, effect) if effect else 0.0
    from scipy.special import stdtr

    return PairedResult(effect=effect, se=se, df=df, n=n, paired=paired,
                        p_lower=float(stdtr(df, t)), p_higher=float(stdtr(df, -t)))


def paired_test(candidate: Mapping[int, float], baseline: Mapping[int, float], *,
                sd_floor: float = 0.0005) -> PairedResult:
    """Paired t-test on the seeds both arms ran (a seed fixes initialisation and data order,
    so the per-seed difference carries far less noise than either arm); Welch's unpaired
    test when fewer than two seeds are shared. Spreads are floored at `sd_floor` times the
    baseline's mean so a few seeds that happen to agree never read as certainty. The effect
    and standard error match `rankwright.hypotheses.insights.seeded_effect`."""
    if not candidate or not baseline:
        raise ValueError("both arms need at least one value")
    mb = abs(float(np.mean(list(baseline.values()))))
    if mb == 0:
        raise ValueError("the baseline's mean is zero: a relative effect is undefined")
    floor = sd_floor * mb
    shared = [seed for seed in candidate if seed in baseline]
    if len(shared) >= 2:
        diffs = [candidate[s] - baseline[s] for s in shared]
        sd = max(_sd(diffs) or 0.0, floor)
        n = len(diffs)
        return _result(float(np.mean(diffs)) / mb, sd / math.sqrt(n) / mb, n - 1, n, True)
    cv, bv = list(candidate.values()), list(baseline.values())
    nc, nb = len(cv), len(bv)
    sc, sb = _sd(cv), _sd(bv)
    sb = max(sb if sb is not None else (sc or 0.0), floor)  # a lone value borrows the other's sd
    sc = max(sc if sc is not None else sb, floor)
    vc, vb = sc**2 / nc, sb**2 / nb
    # A side with one value has no spread of its own: its term gets the other side's df.
    dfc = nc - 1 if nc > 1 else max(nb - 1, 1)
    dfb = nb - 1 if nb > 1 else max(nc - 1, 1)
    den = vc**2 / dfc + vb**2 / dfb
    df = max(int((vc + vb) ** 2 / den), 1) if den > 0 else max(nc + nb - 2, 1)
    effect = (float(np.mean(cv)) - float(np.mean(bv))) / mb
    return _result(effect, math.sqrt(vc + vb) / mb, df, nc, False)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t interval; a single value is its own (degenerate) interval."""
    if len(values) == 0:
        raise ValueError("no values")
    m = float(np.mean(values))
    if len(values) < 2:
        return m, m, m
    half = t_quantile(len(values) - 1, (1 + level) / 2) * _sd(values) / math.sqrt(len(values))
    return m, m - half, m + half


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate under any
    dependence. Adjusted values in input order, monotone in the raw ones, capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out = np.empty(m)
    out[order] = adj
    return out.tolist()


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjustment: controls the false discovery rate, a milder
    promise than Holm's for long lists of techniques."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m / np.arange(1, m + 1))  # the ratio first: never rounds below p
    adj = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adj
    return out.tolist()


def adjust(pvalues: Sequence[float], method: Literal["holm", "bh"]) -> list[float]:
    if method == "holm":
        return holm(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    raise ValueError(f"unknown correction {method!r}: use 'holm' or 'bh'")


def verdict(result: PairedResult, *, p_adjusted_lower: float, p_adjusted_higher: float, alpha: float,
            margin: float) -> Verdict:
    """Helped or hurt when the adjusted one-sided p is below alpha; no gain when the
    one-sided (1 - alpha) lower bound rules out any gain as large as `margin` (relative);
    otherwise inconclusive: absence of evidence is not evidence of absence."""
    if p_adjusted_lower < alpha:
        return Verdict.HELPED
    if p_adjusted_higher < alpha:
        return Verdict.HURT
    if result.lower(1 - alpha) > -margin:
        return Verdict.NO_GAIN
    return Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Judgement:
    name: str
    result: PairedResult
    p_adjusted_lower: float
    p_adjusted_higher: float
    verdict: Verdict
    method: str
    reason: str


_METHOD_NAMES = {"holm": "Holm", "bh": "BH"}


def _reason(r: PairedResult, v: Verdict, p_low: float, p_high: float, alpha: float, margin: float,
            method: str) -> str:
    lo, hi = r.ci(0.95)
    how = f"paired over {r.n} seeds" if r.paired else f"unpaired, {r.n} candidate seeds"
    head = f"{v.value}: {r.effect:+.2%} (95% CI {lo:+.2%} to {hi:+.2%}), {how}, {_METHOD_NAMES[method]}-adjusted"
    if v is Verdict.HELPED:
        return f"{head} p {p_low:.3g} < {alpha:.2f}"
    if v is Verdict.HURT:
        return f"{head} p for harm {p_high:.3g} < {alpha:.2f}"
    bound = r.lower(1 - alpha)
    if v is Verdict.NO_GAIN:
        return (f"{head} p {p_low:.3g} >= {alpha:.2f}, and the {1 - alpha:.0%} bound {bound:+.2%} "
                f"rules out a gain of {margin:.2%}")
    return (f"{head} p {p_low:.3g} >= {alpha:.2f}, but a gain down to {bound:+.2%} is still plausible "
            f"(margin {margin:.2%})")


def judge(results: Mapping[str, PairedResult], *, alpha: float = 0.1, margin: float = 0.002,
          method: str = "holm") -> dict[str, Judgement]:
    """Verdicts for one family of comparisons: the improvement p-values are corrected
    together, and the harm p-values together, so testing many techniques does not
    manufacture winners."""
    names = list(results)
    lows = adjust([results[k].p_lower for k in names], method)  # type: ignore[arg-type]
    highs = adjust([results[k].p_higher for k in names], method)  # type: ignore[arg-type]
    out = {}
    for name, pl, ph in zip(names, lows, highs):
        r = results[name]
        v = verdict(r, p_adjusted_lower=pl, p_adjusted_higher=ph, alpha=alpha, margin=margin)
        out[name] = Judgement(name=name, result=r, p_adjusted_lower=pl, p_adjusted_higher=ph, verdict=v,
                              method=method, reason=_reason(r, v, pl, ph, alpha, margin, method))
    return out


def borderline(j: Judgement, alpha: float) -> bool:
    """Inconclusive yet close (adjusted p below 2 alpha, or raw p below alpha): worth more
    seeds before a verdict."""
    return j.verdict is Verdict.INCONCLUSIVE and (j.p_adjusted_lower < 2 * alpha or j.result.p_lower < alpha)


def _clean(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError("x and y differ in length")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    _, inverse = np.unique(a, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / np.bincount(inverse))[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan for fewer than two points
    or a constant side. Pairs with a nan are dropped."""
    a, b = _clean(x, y)
    if len(a) < 2:
        return math.nan
    ra, rb = _ranks(a) - (len(a) + 1) / 2, _ranks(b) - (len(b) + 1) / 2
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else math.nan


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties corrected); nan for fewer than two points or a constant side.
    Pairs with a nan are dropped. Quadratic: meant for tens of points, not millions."""
    a, b = _clean(x, y)
    if len(a) < 2:
        return math.nan
    sa = np.sign(a[:, None] - a[None, :])
    sb = np.sign(b[:, None] - b[None, :])
    den = math.sqrt(float(np.abs(sa).sum()) * float(np.abs(sb).sum()))
    return float((sa * sb).sum()) / den if den > 0 else math.nan
