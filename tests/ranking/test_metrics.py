import numpy as np
import pytest
from sklearn import metrics as sk

from rankwright.ranking import metrics as M


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 5000))
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(float)
    p = rng.random(n)
    if seed % 2:  # many ties
        p = np.round(p, 1)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    assert M.roc_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
    assert M.log_loss(y, p) == pytest.approx(sk.log_loss(y, p), rel=1e-10)
    rate = y.mean()
    assert M.normalized_entropy(y, p) == pytest.approx(sk.log_loss(y, p) / sk.log_loss(y, np.full(n, rate)), rel=1e-10)
    assert M.calibration(y, p) == pytest.approx(p.mean() / rate)


def test_base_rate_predictor_has_ne_one_and_perfect_scores_auc_one():
    y = np.array([0, 0, 1, 0, 1, 0, 0, 0])
    assert M.normalized_entropy(y, np.full(8, y.mean())) == pytest.approx(1.0)
    assert M.roc_auc(y, y * 0.5 + 0.25) == 1.0
    assert np.isnan(M.roc_auc(np.zeros(4), np.random.rand(4)))


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        M.evaluate([0, 1], [0.5])
