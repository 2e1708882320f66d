"""The validation statistics at the product's own defaults (issue 23, defect 8): two seeds a
hypothesis, three for the baseline, two more for a borderline hypothesis, alpha 0.1 and
Holm over families of 4 and 12, runs correlated 0.5 and 0.8 on a seed. The seed noise is
pooled across arms, and the whole sequential rule (stage 1, the top-up of borderline
hypotheses, stage 2) keeps the family-wise error at or below alpha, where the rule before
(each hypothesis alone, then every top-up judged again at alpha) did not. Every setting is
read from the spec's defaults, so a change of them is simulated here too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from rankwright.agent.spec import CampaignSpec, HypothesisPolicy, Strategy
from rankwright.analysis import (
    TwoStageDesign,
    Verdict,
    judge,
    judge_two_stage,
    paired_test,
    pooled_paired_tests,
)

STRATEGY = Strategy()
ALPHA, EXTRA, METHOD = STRATEGY.alpha, STRATEGY.extra_seeds, STRATEGY.correction
SEEDS = HypothesisPolicy().seeds
BASELINE_SEEDS = CampaignSpec.model_fields["baseline_seeds"].default
DESIGN = TwoStageDesign(alpha=ALPHA, first_seeds=SEEDS, extra_seeds=EXTRA)

MEAN_NE, SEED_SD = 0.9, 0.009  # a run's seed-to-seed sd: 1% of NE
ONE_SD = SEED_SD / MEAN_NE  # a true gain of one seed-sd, relative


def test_the_simulated_defaults_are_the_products():
    # what the issue describes: 2 seeds a hypothesis, a 3-seed baseline, top-ups, alpha 0.1, Holm
    assert (SEEDS, BASELINE_SEEDS, ALPHA, METHOD) == (2, 3, 0.1, "holm") and EXTRA > 0
    assert DESIGN.sequential and DESIGN.alpha1 + DESIGN.alpha2 == pytest.approx(ALPHA)
    assert DESIGN.alpha1 < ALPHA and DESIGN.alpha2 < ALPHA  # both looks stricter than alpha


# -- one campaign's validation, simulated ------------------------------------------------------


def _draw(rng, m, rho, gains):
    """Runs by arm and seed (seeds 1..n): a shared per-seed part (correlation `rho` between
    two arms on one seed) plus each arm's own noise; arm -1 is the baseline."""
    n = max(BASELINE_SEEDS, DESIGN.total_seeds)
    shared = rng.normal(0.0, SEED_SD * math.sqrt(rho), n)
    own = rng.normal(0.0, SEED_SD * math.sqrt(1 - rho), (m + 1, n))
    base = MEAN_NE + shared + own[m]
    arms = MEAN_NE * (1 - np.asarray(gains))[:, None] + shared + own[:m]
    return base, arms


def _seeds(row, count):
    return {s + 1: float(row[s]) for s in range(count)}


def _new_rule(base, arms):
    """The product's rule: pooled stage 1; borderline hypotheses get the extra seeds (and the
    baseline the seeds they pair with); everything judged again under the same design."""
    b = _seeds(base, BASELINE_SEEDS)
    a = {f"h{i}": _seeds(row, SEEDS) for i, row in enumerate(arms)}
    js = judge_two_stage(a, b, DESIGN, method=METHOD)
    more = [name for name, j in js.items() if j.borderline]
    if more:
        b = _seeds(base, max(BASELINE_SEEDS, DESIGN.total_seeds))
        for name in more:
            a[name] = _seeds(arms[int(name[1:])], DESIGN.total_seeds)
        js = judge_two_stage(a, b, DESIGN, method=METHOD)
    return {int(n[1:]) for n, j in js.items() if j.verdict is Verdict.HELPED}, len(more)


def _old_rule(base, arms, top_up=True):
    """The rule before: each hypothesis alone (df 1 with 2 seeds), Holm at alpha; a
    borderline one (adjusted p < 2 alpha, or raw p < alpha) got the extra seeds and the
    whole family was judged again at alpha: two looks at the full alpha."""
    b = _seeds(base, BASELINE_SEEDS)
    a = {f"h{i}": _seeds(row, SEEDS) for i, row in enumerate(arms)}
    js = judge({n: paired_test(v, b) for n, v in a.items()}, alpha=ALPHA, method=METHOD)
    more = [n for n, j in js.items() if top_up and j.verdict is Verdict.INCONCLUSIVE
            and (j.p_adjusted_lower < 2 * ALPHA or j.result.p_lower < ALPHA)]
    if more:
        b = _seeds(base, max(BASELINE_SEEDS, SEEDS + EXTRA))
        for name in more:
            a[name] = _seeds(arms[int(name[1:])], SEEDS + EXTRA)
        js = judge({n: paired_test(v, b) for n, v in a.items()}, alpha=ALPHA, method=METHOD)
    return {int(n[1:]) for n, j in js.items() if j.verdict is Verdict.HELPED}, len(more)


def _simulate(seed, sims, *, m, rho, true=0, gain=ONE_SD, rules=(_new_rule,)):
    """Per rule: (family-wise error: a null hypothesis promoted, power: share of the true
    gains promoted, top-ups per campaign). The first `true` hypotheses gain `gain`; every
    rule judges the same campaigns."""
    rng = np.random.default_rng(seed)
    gains = [gain] * true + [0.0] * (m - true)
    tallies = [[0, 0, 0] for _ in rules]
    for _ in range(sims):
        base, arms = _draw(rng, m, rho, gains)
        for tally, rule in zip(tallies, rules):
            helped, topped = rule(base, arms)
            tally[0] += any(i >= true for i in helped)
            tally[1] += sum(1 for i in helped if i < true)
            tally[2] += topped
    return [(e / sims, p / (sims * true) if true else math.nan, t / sims) for e, p, t in tallies]


# -- the family-wise error of the whole rule -----------------------------------------------------


@pytest.mark.parametrize("m, rho, sims, seed", [(4, 0.5, 1500, 1), (4, 0.8, 1500, 2), (12, 0.5, 700, 3),
                                                 (12, 0.8, 700, 4)])
def test_the_whole_sequential_rule_keeps_the_family_wise_error_at_alpha(m, rho, sims, seed):
    # every hypothesis null: measured 0.052 and 0.070 (4 nulls), 0.044 and 0.044 (12), with a
    # hypothesis topped up in 26-33% of the campaigns (0.058 over 6,000 campaigns of 4, 0.050
    # of 10); Monte Carlo se 0.006-0.008. Stage 1 + stage 2 are bounded by alpha1 + alpha2 =
    # alpha whatever the top-ups, so the slack is for the Monte Carlo noise alone.
    [(fwer, _, topped)] = _simulate(seed, sims, m=m, rho=rho)
    assert fwer <= ALPHA + 0.015, fwer
    assert topped > 0.1  # the top-up happened in the simulation: its error is included


def _old_rule_one_look(base, arms):
    return _old_rule(base, arms, top_up=False)


def test_the_rule_before_was_optional_stopping():
    # the same campaigns, 4 nulls: the rule before erred 0.065 with one look and 0.101 with its
    # top-ups (0.109 over 6,000 campaigns), the new rule 0.052 with them
    new, old, one_look = _simulate(1, 1500, m=4, rho=0.5, rules=(_new_rule, _old_rule, _old_rule_one_look))
    assert old[0] >= one_look[0] + 0.015  # the second look at the full alpha added error
    assert new[0] <= ALPHA and new[0] < old[0] - 0.02


def test_pooled_p_values_are_calibrated_at_two_seeds():
    # one look, every arm null, 4 arms of 2 seeds: df 4 per test (1 alone), p uniform
    rng = np.random.default_rng(5)
    ps, dfs = [], set()
    for _ in range(1500):
        base, arms = _draw(rng, 4, 0.5, [0.0] * 4)
        rs = pooled_paired_tests({f"h{i}": _seeds(r, SEEDS) for i, r in enumerate(arms)},
                                 _seeds(base, BASELINE_SEEDS))
        ps += [r.p_lower for r in rs.values() if r.pooled]
        dfs |= {r.df for r in rs.values() if r.pooled}
    assert dfs <= {3, 4}  # 3: an arm improbably erratic (1% of them) was judged on its own
    assert scipy.stats.kstest(ps, "uniform").pvalue > 0.01  # 6000 p-values (correlated in fours)
    assert np.mean(np.asarray(ps) < ALPHA) == pytest.approx(ALPHA, abs=0.02)


# -- power for real gains ------------------------------------------------------------------------


@pytest.mark.parametrize("m, true, rho, sims, seed", [(4, 1, 0.5, 800, 6), (4, 1, 0.8, 800, 7),
                                                       (12, 3, 0.8, 300, 8)])
def test_power_for_one_sd_gains_beats_the_rule_before(m, true, rho, sims, seed):
    # measured (new vs before): 4 arms, one gain: 0.27 vs 0.22 (rho 0.5), 0.62 vs 0.44 (0.8);
    # 12 arms, three gains, rho 0.8: 0.49 vs 0.24. A one-sd gain on 2 seeds stays hard to see:
    # with rho 0.5 a paired difference has the sd of a run
    new, old = _simulate(seed, sims, m=m, rho=rho, true=true, rules=(_new_rule, _old_rule))
    assert new[1] > old[1] + 0.03, (new, old)


def test_a_two_sd_gain_is_found_mostly_at_stage_one():
    # one gain of two seed-sds among 4 arms, rho 0.8: promoted in 98% of campaigns, a top-up in 60%
    [(_, power, topped)] = _simulate(9, 400, m=4, rho=0.8, true=1, gain=2 * ONE_SD)
    assert power >= 0.8 and topped < 0.75


# -- the exploitation's confirmation: one winner, picked on seed 1 among many trials ------------


def _confirmation_rule(trials, rho, total, gain, rng, fresh_only=True):
    """One campaign's confirmation at the product's rule (`confirmation_verdict`): `trials`
    configurations run on seed 1, the best is the winner; stage 1 is its seed 2 against a
    2-seed baseline, a borderline winner gets seeds up to `total` (and the baseline too).
    `fresh_only=False` reads seed 1 as well, as the confirmation did before. True when the
    winner is judged helped."""
    from rankwright.agent.phases._base import CONFIRMATION_STAGE1_SEEDS

    design = TwoStageDesign(alpha=ALPHA, first_seeds=CONFIRMATION_STAGE1_SEEDS,
                            extra_seeds=total - CONFIRMATION_STAGE1_SEEDS)
    shared = rng.normal(0.0, SEED_SD * math.sqrt(rho), total)
    own = SEED_SD * math.sqrt(1 - rho)
    base = MEAN_NE + shared + rng.normal(0.0, own, total)
    winner = MEAN_NE * (1 - gain) + shared + rng.normal(0.0, own, total)
    winner[0] = MEAN_NE * (1 - gain) + shared[0] + rng.normal(0.0, own, trials).min()  # picked on seed 1
    first_seed = 2 if fresh_only else 1

    def verdict(n):
        arm = {s + 1: float(winner[s]) for s in range(first_seed - 1, n)}
        b = {s + 1: float(base[s]) for s in range(n)}
        return judge_two_stage({"w": arm}, b, design, method=METHOD,
                               baseline_first={s: v for s, v in b.items() if s <= design.first_seeds})["w"]

    j = verdict(design.first_seeds)
    if j.borderline:
        j = verdict(design.total_seeds)
    return j.verdict is Verdict.HELPED


@pytest.mark.parametrize("total", [STRATEGY.confirmation_seeds, 3])  # the default, and the head-to-head's
def test_a_winner_picked_on_seed_1_is_confirmed_on_its_fresh_seeds_at_alpha(total):
    """Eight null trials (the head-to-head's small campaigns ran 6-14): reading the seed the
    winner was picked on made 0.16-0.17 of null winners "helped"; its fresh seeds alone keep
    the error under alpha (measured 0.03-0.06 at rho 0.5 and 0.8, 3 or 5 seeds), and a real
    gain of two seed-sds is still confirmed in about half the campaigns or more (0.46 with 3
    seeds at rho 0.5, up to 0.92 with 5 at rho 0.8)."""
    rng = np.random.default_rng(10 + total)
    sims = 1200
    fresh = np.mean([_confirmation_rule(8, 0.5, total, 0.0, rng) for _ in range(sims)])
    both = np.mean([_confirmation_rule(8, 0.5, total, 0.0, rng, fresh_only=False) for _ in range(sims)])
    assert fresh <= ALPHA + 0.015, fresh  # Monte Carlo se about 0.008
    assert both >= ALPHA + 0.03, both  # the rule before: the selection's luck read as a gain
    power = np.mean([_confirmation_rule(8, 0.5, total, 2 * ONE_SD, rng) for _ in range(400)])
    assert power >= 0.35, power
