"""How much one campaign's measurements count in the next: paired effects on shared seeds, and
the between-data spread estimated from the insights themselves."""

import random
from dataclasses import replace

import pytest

from rankwright.hypotheses.insights import (
    DEFAULT_SPREAD_FRACTION, SPREAD_PSEUDO_PAIRS, Context, Insight, Spread, data_identity, estimate_spread, prior_for,
    relative_effect, seeded_effect,
)

CTX = Context("dnn", rows=100_000, fields=15, mean_cardinality=1000, baseline_ne=0.85, task="numeric")


def on(seed: int, **kw) -> Context:
    return replace(CTX, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": seed}}), **kw)


def insight(technique: str, effect: float, se: float, context: Context, campaign: str = "c") -> Insight:
    return Insight(technique=technique, changes={}, context=context, effect=effect, effect_se=se, seeds=3,
                   noise=0.002, cost_factor=1.0, campaign=campaign).with_uid()


def test_seeds_shared_by_both_arms_are_compared_pair_by_pair():
    # Seed noise moves both arms together; the candidate is better by 0.010 on every seed.
    baseline = {1: 0.880, 2: 0.900, 3: 0.870, 4: 0.890}
    candidate = {1: 0.870, 2: 0.891, 3: 0.859}
    effect, se = seeded_effect(candidate, baseline)
    diffs = [-0.010, -0.009, -0.011]
    mb = sum(baseline.values()) / 4
    assert effect == pytest.approx(sum(diffs) / 3 / mb)
    unpaired_effect, unpaired_se = relative_effect(list(candidate.values()), list(baseline.values()))
    assert se < unpaired_se / 5  # the shared seed noise cancels
    assert unpaired_se > abs(unpaired_effect) / 2  # unpaired, the same gain is lost in the noise


def test_with_fewer_than_two_shared_seeds_the_comparison_is_unpaired():
    baseline = {1: 0.88, 2: 0.90, 3: 0.87}
    assert seeded_effect({7: 0.86}, baseline) == relative_effect([0.86], list(baseline.values()))
    assert seeded_effect({1: 0.86, 9: 0.85}, baseline) == relative_effect([0.86, 0.85], list(baseline.values()))


def test_a_paired_difference_never_reads_as_certainty():
    effect, se = seeded_effect({1: 0.87, 2: 0.89}, {1: 0.88, 2: 0.90})  # identical differences
    assert se == pytest.approx(0.0005 / 2**0.5)  # the 0.05% floor, over sqrt(2) pairs


def test_without_pairs_on_other_data_the_spread_is_the_default():
    assert estimate_spread([], {"a": 0.003}) == Spread()
    same_data = [insight("a", -0.01, 0.001, on(1), "c1"), insight("a", +0.01, 0.001, on(1), "c2")]
    far = replace(on(2), rows=1e8, baseline_ne=0.5)
    distant = [insight("a", -0.01, 0.001, on(1)), insight("a", +0.01, 0.001, far)]
    unknown = [insight("b", -0.01, 0.001, on(1)), insight("b", +0.01, 0.001, on(2))]  # not in the knowledge base
    for group in (same_data, distant, unknown):
        assert estimate_spread(group, {"a": 0.003}).pairs == 0


@pytest.mark.parametrize("true_fraction", [0.3, 1.5])
def test_the_spread_is_estimated_from_pairs_on_other_data(true_fraction):
    rng = random.Random(7)
    kb_sd, insights = {}, []
    for t in range(300):
        name, sd = f"t{t}", rng.choice([0.001, 0.003, 0.005])
        kb_sd[name] = sd
        mean = rng.gauss(0, sd)
        for data_seed in (1, 2):
            se = rng.choice([0.0005, 0.001])
            true = mean + rng.gauss(0, true_fraction * sd)
            insights.append(insight(name, true + rng.gauss(0, se), se, on(data_seed), f"c{data_seed}"))
    spread = estimate_spread(insights, kb_sd)
    assert spread.pairs == 300
    assert spread.estimate == pytest.approx(true_fraction, rel=0.25)
    # pooled with the default as SPREAD_PSEUDO_PAIRS pairs
    n0 = SPREAD_PSEUDO_PAIRS
    expected = ((300 * spread.estimate**2 + n0 * DEFAULT_SPREAD_FRACTION**2) / (300 + n0)) ** 0.5
    assert spread.fraction == pytest.approx(expected)
    assert "estimated" in spread.describe() and "300 pair" in spread.describe()


def test_measurements_that_agree_better_than_their_noise_give_a_spread_of_zero_not_an_error():
    tight = [insight("a", -0.010, 0.004, on(1)), insight("a", -0.010, 0.004, on(2))]
    spread = estimate_spread(tight, {"a": 0.003})
    assert spread.estimate == 0.0 and 0 < spread.fraction < DEFAULT_SPREAD_FRACTION


def test_a_measurement_on_the_same_data_counts_more_than_one_on_other_data():
    kb_mean, kb_sd = 0.0, 0.003
    here = on(1)
    same = prior_for("a", kb_mean, kb_sd, here, [insight("a", -0.01, 0.0005, on(1))])
    other = prior_for("a", kb_mean, kb_sd, here, [insight("a", -0.01, 0.0005, on(2))])
    assert same.mean < other.mean < 0  # both move toward -1%, the same data further
    assert same.mean == pytest.approx(-0.01, abs=0.001)
    # a wider between-data spread trusts other data less
    wide = prior_for("a", kb_mean, kb_sd, here, [insight("a", -0.01, 0.0005, on(2))], Spread(2.0))
    assert other.mean < wide.mean < 0 and wide.sd > other.sd
