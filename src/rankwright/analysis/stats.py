"""Statistics shared by the learn step, the phase promotion rule and the report.

Pure functions over objective values keyed by seed (an objective to minimise, such as NE).
Imports nothing of ours, and only `scipy.special` from SciPy, when a t distribution is
first needed: the agent's wake loads this module, and a wake with nothing to decide should
not pay for SciPy (0.2 s), let alone `scipy.stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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
    pooled: int = 0  # arms whose seed noise the standard error pools (0: the arm's own spread alone)

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


def _result(effect: float, se: float, df: int, n: int, paired: bool, pooled: int = 0) -> PairedResult:
    if se > 0:
        t = effect / se
    else:  # no spread at all (only with sd_floor=0): the sign alone decides
        t = math.copysign(math.inf, effect) if effect else 0.0
    from scipy.special import stdtr

    return PairedResult(effect=effect, se=se, df=df, n=n, paired=paired,
                        p_lower=float(stdtr(df, t)), p_higher=float(stdtr(df, -t)), pooled=pooled)


def paired_test(candidate: Mapping[int, float], baseline: Mapping[int, float], *,
                sd_floor: float = 0.0005) -> PairedResult:
    """Paired t-test on the seeds both arms ran (a seed fixes initialisation and data order,
    so the per-seed difference carries far less noise than either arm). A candidate with one
    run on a seed the baseline also ran (a confirmation's first fresh seed): the difference
    on that seed, its noise the baseline's own run spread times sqrt(2) (no credit taken
    for the pairing) with the baseline's df; against the baseline's mean instead, the
    seed's own luck would count as the arm's. Otherwise, with fewer than two seeds shared,
    Welch's unpaired test. Spreads are floored at `sd_floor` times the baseline's mean so
    a few seeds that happen to agree never read as certainty. With two or more shared
    seeds the effect and standard error match `rankwright.hypotheses.insights.seeded_effect`."""
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
    if len(candidate) == 1 and shared and len(baseline) >= 2:
        seed = shared[0]
        spread = max(_sd(list(baseline.values())) or 0.0, floor)
        return _result((candidate[seed] - baseline[seed]) / mb, math.sqrt(2) * spread / mb, len(baseline) - 1, 1,
                       True)
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


# A hypothesis whose own seed-to-seed spread is this improbable under the pooled noise
# scale (one-sided F test against the pool without it) is judged on its own spread: a
# change that makes training erratic must not borrow the calm of the others.
HETEROGENEITY_P = 0.01


def _two_way(seed: np.ndarray, arm: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int] | None:
    """Least squares of y = seed effect + arm effect (arm 0, the baseline, has none).

    One row per run: its seed, its arm (0..k, every one present) and its value. Returns
    (arm effects, their unscaled variances, residual sum of squares, residual df) for arms
    1..k, or None when no df is left. A seed run once only fits its own effect: dropped."""
    keep = np.bincount(seed)[seed] >= 2
    seed, arm, y = seed[keep], arm[keep], y[keep]
    if not len(y):
        return None
    _, column = np.unique(seed, return_inverse=True)
    n_seeds = int(column.max()) + 1
    k = int(arm.max())
    df = len(y) - n_seeds - k
    if df < 1 or len(np.unique(arm)) != k + 1:
        return None
    x = np.zeros((len(y), n_seeds + k))
    rows = np.arange(len(y))
    x[rows, column] = 1.0
    hyp = arm > 0
    x[rows[hyp], n_seeds + arm[hyp] - 1] = 1.0
    try:
        inverse = np.linalg.inv(x.T @ x)
    except np.linalg.LinAlgError:  # an arm linked to the baseline by no seed
        return None
    beta = inverse @ (x.T @ y)
    residual = y - x @ beta
    return beta[n_seeds:], np.diag(inverse)[n_seeds:], float(residual @ residual), df


def _runs(arms: Sequence[Mapping[int, float]], baseline: Mapping[int, float],
          scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seeds: list[int] = []
    index: list[int] = []
    values: list[float] = []
    for i, runs in enumerate((baseline, *arms)):
        seeds += list(runs)
        index += [i] * len(runs)
        values += [v / scale for v in runs.values()]
    _, seed = np.unique(np.asarray(seeds), return_inverse=True)
    return seed, np.asarray(index), np.asarray(values, dtype=float)


def _without(seed: np.ndarray, arm: np.ndarray, y: np.ndarray,
             drop: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs without those of the arms in `drop`, the remaining arms numbered 0..k' again."""
    if not drop:
        return seed, arm, y
    gone = np.zeros(int(arm.max()) + 1, dtype=bool)
    gone[list(drop)] = True
    keep = ~gone[arm]
    return seed[keep], (np.cumsum(~gone) - 1)[arm[keep]], y[keep]


def pooled_paired_tests(arms: Mapping[str, Mapping[int, float]], baseline: Mapping[int, float], *,
                        sd_floor: float = 0.0005, heterogeneity_p: float = HETEROGENEITY_P) -> dict[str, PairedResult]:
    """Every arm against one baseline, the seed noise pooled across the arms.

    A seed fixes initialisation and data order for every arm, so a run is modelled as
    seed effect + arm effect + noise, one noise scale for all the arms of a campaign (they
    differ by one change each, on the same data and model). Least squares over every run of
    the baseline and the arms gives each arm's effect (with balanced seeds exactly the mean
    paired difference, as `paired_test`) and one residual variance with df = runs - seeds -
    arms: k arms on 2 seeds each give df = k where each alone would have df = 1. Every
    comparison shares the baseline's runs, which this model accounts for (the paired
    differences of two arms are correlated; pooling their variances as if independent would
    overstate the df). A baseline seed no arm ran (the third of three) informs nothing here.

    Guards: an arm that shares no seed with the baseline gets `paired_test` (Welch); an
    arm whose own paired spread is improbably large under the pool of the others
    (`heterogeneity_p`, one-sided F; the widest spread tested first, then the next while
    they fail) is judged on its own spread and left out of the pool;
    the standard deviation of a paired difference is floored at `sd_floor` of the baseline's
    mean, as in `paired_test`. With no residual df at all, every arm gets `paired_test`.
    Effects are relative to the baseline's mean."""
    if not baseline or any(not values for values in arms.values()):
        raise ValueError("the baseline and every arm need at least one value")
    mb = abs(float(np.mean(list(baseline.values()))))
    if mb == 0:
        raise ValueError("the baseline's mean is zero: a relative effect is undefined")
    out: dict[str, PairedResult] = {}
    linked = [name for name in arms if set(arms[name]) & set(baseline)]
    for name in arms:
        if name not in linked:
            out[name] = paired_test(arms[name], baseline, sd_floor=sd_floor)
    if not linked:
        return out
    from scipy.special import fdtri

    seed, arm, y = _runs([arms[n] for n in linked], baseline, mb)
    # the spreads of the arms' own paired differences, the widest first: each is tested
    # against the pool of the others (those already found erratic left out) until one fits
    spreads = []
    for i, name in enumerate(linked):
        diffs = np.asarray([(arms[name][s] - baseline[s]) / mb for s in arms[name] if s in baseline])
        if len(diffs) >= 2:
            spreads.append((float(np.var(diffs, ddof=1)), len(diffs) - 1, i + 1, name))
    erratic: set[str] = set()
    dropped: set[int] = set()
    for variance, df_own, index, name in sorted(spreads, key=lambda item: -item[0]):
        if len(linked) - len(dropped) < 2:
            break
        rest = _two_way(*_without(seed, arm, y, dropped | {index}))
        if rest is None:
            break
        pool = 2 * rest[2] / rest[3]  # the variance of a paired difference: twice a run's
        if not (pool > 0 and variance / pool > float(fdtri(df_own, rest[3], 1 - heterogeneity_p))):
            break
        erratic.add(name)
        dropped.add(index)
    kept = [name for name in linked if name not in erratic]
    fit = _two_way(*_without(seed, arm, y, dropped)) if kept else None
    if fit is None:
        for name in linked:
            out[name] = paired_test(arms[name], baseline, sd_floor=sd_floor)
        return {name: out[name] for name in arms}
    effects, unscaled, rss, df = fit
    run_variance = max(rss / df, sd_floor**2 / 2)  # a paired difference's sd is at least sd_floor
    for i, name in enumerate(kept):
        n = len(set(arms[name]) & set(baseline))
        out[name] = _result(float(effects[i]), math.sqrt(run_variance * unscaled[i]), df, n, True, len(kept))
    for name in erratic:
        out[name] = paired_test(arms[name], baseline, sd_floor=sd_floor)
    return {name: out[name] for name in arms}


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
            margin: float, bound_alpha: float | None = None) -> Verdict:
    """Helped or hurt when the adjusted one-sided p is below alpha; no gain when the
    one-sided (1 - `bound_alpha`, default 1 - alpha) lower bound rules out any gain as large
    as `margin` (relative); otherwise inconclusive: absence of evidence is not evidence of
    absence."""
    if p_adjusted_lower < alpha:
        return Verdict.HELPED
    if p_adjusted_higher < alpha:
        return Verdict.HURT
    if result.lower(1 - (alpha if bound_alpha is None else bound_alpha)) > -margin:
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
    stage: int = 1  # the stage of a two-stage rule whose data and level gave the verdict
    level: float | None = None  # the alpha the adjusted p was held to (None: the family's alpha)
    borderline: bool = False  # inconclusive at stage 1 yet inside the band: more seeds decide it


_METHOD_NAMES = {"holm": "Holm", "bh": "BH"}


def _reason(r: PairedResult, v: Verdict, p_low: float, p_high: float, alpha: float, margin: float,
            method: str, bound_alpha: float | None = None, stage: str = "") -> str:
    bound_alpha = alpha if bound_alpha is None else bound_alpha
    lo, hi = r.ci(0.95)
    how = f"paired over {r.n} seeds" if r.paired else f"unpaired, {r.n} candidate seeds"
    if r.pooled > 1:
        how += f", seed noise pooled over {r.pooled} arms (df {r.df})"
    head = f"{v.value}: {r.effect:+.2%} (95% CI {lo:+.2%} to {hi:+.2%}), {how}, {_METHOD_NAMES[method]}-adjusted"
    tail = f" ({stage})" if stage else ""
    if v is Verdict.HELPED:
        return f"{head} p {p_low:.3g} < {alpha:.2f}{tail}"
    if v is Verdict.HURT:
        return f"{head} p for harm {p_high:.3g} < {alpha:.2f}{tail}"
    bound = r.lower(1 - bound_alpha)
    if v is Verdict.NO_GAIN:
        return (f"{head} p {p_low:.3g} >= {alpha:.2f}, and the {1 - bound_alpha:.0%} bound {bound:+.2%} "
                f"rules out a gain of {margin:.2%}{tail}")
    return (f"{head} p {p_low:.3g} >= {alpha:.2f}, but a gain down to {bound:+.2%} is still plausible "
            f"(margin {margin:.2%}){tail}")


def judge(results: Mapping[str, PairedResult], *, alpha: float = 0.1, margin: float = 0.002,
          method: str = "holm", band: float | None = None) -> dict[str, Judgement]:
    """Verdicts for one family of comparisons: the improvement p-values are corrected
    together, and the harm p-values together, so testing many techniques does not
    manufacture winners. An inconclusive one whose adjusted p is below `band` is marked
    borderline (None: none is; a single look has nothing to add)."""
    names = list(results)
    lows = adjust([results[k].p_lower for k in names], method)  # type: ignore[arg-type]
    highs = adjust([results[k].p_higher for k in names], method)  # type: ignore[arg-type]
    out = {}
    for name, pl, ph in zip(names, lows, highs):
        r = results[name]
        v = verdict(r, p_adjusted_lower=pl, p_adjusted_higher=ph, alpha=alpha, margin=margin)
        out[name] = Judgement(name=name, result=r, p_adjusted_lower=pl, p_adjusted_higher=ph, verdict=v,
                              method=method, reason=_reason(r, v, pl, ph, alpha, margin, method), level=alpha,
                              borderline=v is Verdict.INCONCLUSIVE and band is not None and pl < band)
    return out


def borderline(j: Judgement) -> bool:
    """Inconclusive at stage 1 yet inside the band decided in advance: worth more seeds
    before a verdict (see `TwoStageDesign`)."""
    return j.borderline


# The two-stage rule at the product's defaults (2 seeds a hypothesis, 2 more for a
# borderline one, alpha 0.1, Holm over families of 4-12): the share of alpha spent at
# stage 1, and the band (in units of alpha, on the stage-1 adjusted p) inside which an
# inconclusive hypothesis gets its extra seeds. Chosen by simulation of the whole rule
# (tests/analysis/test_sequential.py): for a one-sd gain among 4 or 12, shares 0.3-0.5
# gave the same power within noise (0.6 less), and a band of 3 alpha 10-15% more power
# than 2 alpha for about 0.2 more top-ups per campaign; the error bound holds for any values.
STAGE1_SHARE = 0.4
BORDERLINE_BAND = 3.0


@dataclass(frozen=True)
class TwoStageDesign:
    """The sequential rule for adding seeds, fixed before any run.

    Stage 1: every hypothesis runs `first_seeds` seeds, paired with the baseline's; the
    family (every hypothesis judged so far) is corrected together and a verdict of helped or
    hurt needs an adjusted p below `alpha1` = `stage1_share` x alpha, a stricter level than
    alpha. A hypothesis still inconclusive whose stage-1 adjusted p is below `band` x alpha
    is borderline and gets `extra_seeds` more seeds (as the budget allows); nothing else
    does. Stage 2: a topped-up hypothesis is judged on all of its seeds, the adjustment run
    over the whole family with every hypothesis that was not topped up at p = 1, at `alpha2`
    = alpha - alpha1.

    Why the family-wise error stays at or below alpha (with Holm): at stage 1 Holm holds
    it at alpha1. At stage 2, imagine every hypothesis topped up: Holm over those p-values
    would hold the error at alpha2 whatever the dependence. The p-values used are those,
    except that hypotheses not topped up stand at 1; Holm rejects no more when a p-value
    grows, so the stage-2 rejections are a subset of that imagined family's, whatever rule
    chose the top-ups. The union of both stages errs with probability at most alpha1 +
    alpha2 = alpha (Bonferroni over the two looks; conservative, since the looks share
    seeds). BH is run the same way, a false discovery rate of about alpha1 + alpha2.
    Re-judging on all seeds at the full alpha instead, as the product did before, is
    optional stopping: at the product's defaults it lifted the error with 4 nulls from
    0.065 to 0.10-0.11 (tests/analysis/test_sequential.py); the issue measured 0.08 -> 0.16
    with 10.

    With `extra_seeds` 0 there is no second look and stage 1 spends all of alpha."""

    alpha: float
    first_seeds: int
    extra_seeds: int
    stage1_share: float = STAGE1_SHARE
    band: float = BORDERLINE_BAND

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.stage1_share <= 1 or self.first_seeds < 1 or self.extra_seeds < 0:
            raise ValueError("alpha in (0, 1), stage1_share in (0, 1], first_seeds >= 1, extra_seeds >= 0")

    @property
    def sequential(self) -> bool:
        return self.extra_seeds > 0 and self.stage1_share < 1

    @property
    def alpha1(self) -> float:
        return self.alpha * self.stage1_share if self.sequential else self.alpha

    @property
    def alpha2(self) -> float:
        return self.alpha - self.alpha1

    @property
    def band_level(self) -> float:
        """The stage-1 adjusted p below which an inconclusive hypothesis is borderline."""
        return self.band * self.alpha

    @property
    def total_seeds(self) -> int:
        return self.first_seeds + (self.extra_seeds if self.sequential else 0)

    def describe(self) -> str:
        if not self.sequential:
            return f"one look at alpha {self.alpha:g}, no top-ups"
        return (f"two stages: alpha {self.alpha1:.3g} on {self.first_seeds} seeds, then {self.alpha2:.3g} on "
                f"{self.total_seeds} seeds for a borderline hypothesis, stage-1 adjusted p < {self.band_level:.3g}")

    def stage_words(self, stage: int) -> str:
        """Where a verdict stands in the rule, for its reason."""
        if not self.sequential:
            return self.describe()
        if stage == 1:
            return (f"stage 1 of 2, on {self.first_seeds} seeds at alpha {self.alpha1:.3g}; "
                    f"{self.extra_seeds} more seeds if its adjusted p < {self.band_level:.3g}")
        return f"stage 2 of 2, on all its seeds at alpha {self.alpha2:.3g}"


def judge_two_stage(arms: Mapping[str, Mapping[int, float]], baseline: Mapping[int, float], design: TwoStageDesign,
                    *, margin: float = 0.002, method: str = "holm", sd_floor: float = 0.0005,
                    baseline_first: Mapping[int, float] | None = None) -> dict[str, Judgement]:
    """Verdicts for one family of hypotheses against one baseline under `design`, the seed
    noise pooled across the arms (`pooled_paired_tests`). Seeds are repeat numbers: those
    up to `design.first_seeds` are stage 1, a hypothesis with a later seed was topped up
    and is judged again at stage 2 on all of them. A verdict reached at stage 1 stands.
    No gain is judged on all the seeds an arm has, at the family's alpha. Stage 1 reads
    `baseline_first` when given: the baseline as it stood at stage 1, when the top-up
    added baseline seeds too (stage 1 must be judged on what it saw)."""
    if not arms:
        return {}
    names = list(arms)
    alpha = design.alpha
    if not design.sequential:
        js = judge(pooled_paired_tests(arms, baseline, sd_floor=sd_floor), alpha=alpha, margin=margin, method=method)
        return {n: replace(j, reason=f"{j.reason} ({design.stage_words(1)})") for n, j in js.items()}
    n1 = design.first_seeds
    first = {n: ({s: v for s, v in arms[n].items() if s <= n1} or dict(arms[n])) for n in names}
    topped = {n for n in names if any(s > n1 for s in arms[n])}
    one = pooled_paired_tests(first, baseline if baseline_first is None else baseline_first, sd_floor=sd_floor)
    two = pooled_paired_tests(arms, baseline, sd_floor=sd_floor) if topped else {}
    low1 = adjust([one[n].p_lower for n in names], method)  # type: ignore[arg-type]
    high1 = adjust([one[n].p_higher for n in names], method)  # type: ignore[arg-type]
    low2 = adjust([two[n].p_lower if n in topped else 1.0 for n in names], method)  # type: ignore[arg-type]
    high2 = adjust([two[n].p_higher if n in topped else 1.0 for n in names], method)  # type: ignore[arg-type]
    a1, a2 = design.alpha1, design.alpha2
    out: dict[str, Judgement] = {}
    for i, name in enumerate(names):
        decided_first = low1[i] < a1 or high1[i] < a1
        if name in topped and not decided_first:
            r, pl, ph, level, stage = two[name], low2[i], high2[i], a2, 2
        else:  # a verdict of stage 1 stands; shown with every seed the arm has
            r, pl, ph, level, stage = (two[name] if name in topped else one[name]), low1[i], high1[i], a1, 1
        v = verdict(r, p_adjusted_lower=pl, p_adjusted_higher=ph, alpha=level, margin=margin, bound_alpha=alpha)
        where = design.stage_words(stage)
        out[name] = Judgement(name=name, result=r, p_adjusted_lower=pl, p_adjusted_higher=ph, verdict=v,
                              method=method, reason=_reason(r, v, pl, ph, level, margin, method, alpha, where),
                              stage=stage, level=level,
                              borderline=(v is Verdict.INCONCLUSIVE and name not in topped
                                          and pl < design.band_level))
    return out


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
