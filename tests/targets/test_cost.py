import math
import random

import pytest

from rankwright.targets import CostFeatures, CostModel, CostModelSpec, CostObservation


def synthetic(true_coef, exponent=1.0, overhead=5.0, n=20, noise=0.0, sizes=(10.0,), seed=0):
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        f = CostFeatures(rows=rng.choice([1e6, 1e7, 1e8]), model_size=sizes[i % len(sizes)],
                         fidelity=rng.choice([0.1, 0.5, 1.0]), epochs=rng.choice([1, 3, 10]))
        seconds = overhead + f.work * true_coef * (f.model_size / 10.0) ** exponent
        runs.append(CostObservation(f, seconds * math.exp(rng.gauss(0.0, noise))))
    return runs


def prior(**kw):
    return CostModel(per_row_seconds=1e-4, overhead_seconds=5.0, reference_size=10.0, **kw)


def test_prediction_formula():
    model = prior(size_exponent=1.0)
    f = CostFeatures(rows=1000, model_size=20.0, fidelity=0.5, epochs=4)
    assert model.predict(f) == pytest.approx(5.0 + 1000 * 0.5 * 4 * 1e-4 * 2.0)
    low, high = model.interval(f)
    assert low == pytest.approx(model.predict(f) / 3.0) and high == pytest.approx(model.predict(f) * 3.0)
    assert model.predict_hours(f, devices=2) == pytest.approx(model.predict(f) * 2 / 3600)


def test_no_observations_return_the_prior():
    model = prior()
    assert model.refine([]) is model
    assert model.refine([CostObservation(CostFeatures(rows=0), 3.0)]) is model


def test_refinement_recovers_a_known_coefficient_and_narrows():
    model = prior(prior_weight=0.05).refine(synthetic(true_coef=3e-6, n=30))
    assert model.per_row_seconds == pytest.approx(3e-6, rel=0.02)
    assert model.uncertainty < prior().uncertainty and model.observations == 30


def test_refinement_recovers_the_size_exponent_when_sizes_vary():
    runs = synthetic(true_coef=2e-6, exponent=0.5, n=40, noise=0.05, sizes=(5.0, 10.0, 40.0, 160.0))
    model = prior(size_exponent=1.0, prior_weight=0.05).refine(runs)
    assert model.per_row_seconds == pytest.approx(2e-6, rel=0.15)
    assert model.size_exponent == pytest.approx(0.5, abs=0.1)
    assert 1.05 <= model.uncertainty < 1.5


def test_one_run_moves_the_estimate_only_part_way():
    model = CostModel(per_row_seconds=1e-4, overhead_seconds=0.0, prior_weight=1.0)
    model = model.refine([CostObservation(CostFeatures(rows=1e6, epochs=2), 2.0)])
    # geometric mean of prior 1e-4 and the measured 1e-6, with equal weights
    assert model.per_row_seconds == pytest.approx(1e-5, rel=0.01)


def test_spec_reads_features_from_a_config():
    spec = CostModelSpec(rows="data.rows", epochs="train.epochs", fidelity=0.25,
                         model_size=("model.dim", "model.hidden", 2))
    config = {"data": {"rows": 5000}, "train": {"epochs": 3}, "model": {"dim": 8, "hidden": [64, 32]}}
    assert spec.features(config) == CostFeatures(rows=5000, model_size=8 * 96 * 2, fidelity=0.25, epochs=3)
    assert spec.model().per_row_seconds == spec.per_row_seconds
    with pytest.raises(ValueError, match="cost.rows: the config has no 'data.rows'"):
        spec.features({"model": {"dim": 8, "hidden": [1]}})


def test_runs_dominated_by_overhead_count_little():
    runs = synthetic(true_coef=3e-6, n=30)
    runs.append(CostObservation(CostFeatures(rows=100, epochs=1), 5.0 * 1.3))  # noisy, all overhead
    runs.append(CostObservation(CostFeatures(rows=100, epochs=1), 4.0))  # faster than the overhead
    assert prior(prior_weight=0.05).refine(runs).per_row_seconds == pytest.approx(3e-6, rel=0.05)


def test_the_prior_pulls_less_as_runs_accumulate():
    errors = [abs(math.log(prior().refine(synthetic(true_coef=3e-6, n=n)).per_row_seconds / 3e-6)) for n in (1, 5, 200)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.1
