"""The synthetic ad-click log: calibration, determinism, distinct structures, Bayes limit, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from rankwright.ranking.data import (
    DataConfig,
    DataError,
    SyntheticConfig,
    TensorSplit,
    bayes_metrics,
    generate_frame,
    load_data,
    synthetic_schema,
)

STRUCTURES = ("default", "wide", "pairwise", "higher_order", "numeric")


@pytest.fixture(scope="module")
def default_frame() -> pd.DataFrame:
    return generate_frame(SyntheticConfig(rows=200_000))


def test_frame_columns_and_types(default_frame: pd.DataFrame) -> None:
    schema = synthetic_schema()
    assert list(default_frame.columns) == ["label", *schema.categorical, *schema.numeric, "prob"]
    assert len(default_frame) == 200_000 and not default_frame.isna().any().any()
    assert all(default_frame[c].dtype == np.int32 and default_frame[c].min() >= 0 for c in schema.categorical)
    assert all(default_frame[c].min() >= 0 for c in schema.numeric)  # fits the default log transform
    assert set(np.unique(default_frame["label"])) == {0.0, 1.0}
    assert default_frame["prob"].between(0, 1).all()


@pytest.mark.parametrize("base_rate", [0.03, 0.1, 0.3])
def test_base_rate_is_hit(base_rate: float) -> None:
    frame = generate_frame(SyntheticConfig(rows=50_000, base_rate=base_rate, seed=3))
    assert abs(frame["prob"].mean() - base_rate) < 0.1 * base_rate
    se = np.sqrt(base_rate * (1 - base_rate) / len(frame))
    assert abs(frame["label"].mean() - frame["prob"].mean()) < 4.5 * se


def test_label_rate_per_probability_bin_matches_the_bin_probability(default_frame: pd.DataFrame) -> None:
    prob = default_frame["prob"].to_numpy(np.float64)
    label = default_frame["label"].to_numpy(np.float64)
    edges = np.quantile(prob, np.linspace(0, 1, 11)[1:-1])
    bins = np.searchsorted(edges, prob)
    count = np.bincount(bins, minlength=10)
    mean_prob = np.bincount(bins, prob, 10) / count
    rate = np.bincount(bins, label, 10) / count
    se = np.sqrt(mean_prob * (1 - mean_prob) / count)
    assert (np.abs(rate - mean_prob) < 4.0 * se).all(), list(zip(rate, mean_prob, se))
    assert mean_prob[-1] > 3 * mean_prob[0]  # the probabilities really vary


def test_same_seed_same_data_and_more_rows_extend_the_same_task() -> None:
    small = generate_frame(SyntheticConfig(rows=10_000, seed=5))
    again = generate_frame(SyntheticConfig(rows=10_000, seed=5))
    pd.testing.assert_frame_equal(small, again)
    large = generate_frame(SyntheticConfig(rows=150_000, seed=5))  # several generation chunks
    pd.testing.assert_frame_equal(small, large.iloc[:10_000])
    other = generate_frame(SyntheticConfig(rows=10_000, seed=6))
    assert not np.array_equal(small["prob"], other["prob"])


def _additive_share(frame: pd.DataFrame, shrink: float = 20.0) -> float:
    """Held-out share of the true logit's variance that one additive term per field explains.

    Backfitting of per-value means (numeric fields in 20 quantile bins): near 1 when the
    task is first-order, near 0 when the signal lives in interactions.
    """
    schema = synthetic_schema()
    p = frame["prob"].to_numpy(np.float64)
    target = np.log(p / (1 - p))
    half = len(p) // 2
    target = target - target[:half].mean()
    codes = {f: frame[f].to_numpy() for f in schema.categorical}
    for f in schema.numeric:
        x = frame[f].to_numpy()
        codes[f] = np.searchsorted(np.quantile(x, np.linspace(0, 1, 21)[1:-1]), x)
    terms = {f: np.zeros(int(c.max()) + 1) for f, c in codes.items()}
    pred = np.zeros_like(target)
    for _ in range(3):
        for f, c in codes.items():
            pred -= terms[f][c]
            n = terms[f].size
            resid = (target - pred)[:half]
            terms[f] = np.bincount(c[:half], resid, n) / (np.bincount(c[:half], minlength=n) + shrink)
            pred += terms[f][c]
    return float(1 - (target[half:] - pred[half:]).var() / target[half:].var())


def _numeric_share(frame: pd.DataFrame) -> float:
    """Share of the true logit's variance explained by the numeric fields alone (binned means)."""
    p = frame["prob"].to_numpy(np.float64)
    target = np.log(p / (1 - p))
    explained = np.zeros_like(target)
    for f in synthetic_schema().numeric:
        x = frame[f].to_numpy()
        c = np.searchsorted(np.quantile(x, np.linspace(0, 1, 21)[1:-1]), x)
        resid = target - explained
        explained += (np.bincount(c, resid, 20) / np.maximum(np.bincount(c, minlength=20), 1))[c]
    return float(1 - (target - explained).var() / target.var())


def test_structures_really_differ() -> None:
    frames = {s: generate_frame(SyntheticConfig(rows=100_000, structure=s)) for s in STRUCTURES}
    additive = {s: _additive_share(f) for s, f in frames.items()}
    numeric = {s: _numeric_share(f) for s, f in frames.items()}
    print("additive share", additive, "numeric share", numeric)
    assert additive["wide"] > 0.7 and additive["numeric"] > 0.6
    assert additive["pairwise"] < 0.2 and additive["higher_order"] < 0.2
    assert 0.25 < additive["default"] < 0.65
    assert numeric["numeric"] > 0.4 and max(numeric[s] for s in ("wide", "pairwise", "higher_order")) < 0.15
    for s in STRUCTURES:
        assert abs(frames[s]["prob"].mean() - 0.1) < 0.01
    assert len({round(float(f["prob"].iloc[:1000].sum()), 3) for f in frames.values()}) == len(STRUCTURES)


def test_load_data_synthetic_keeps_true_probability_and_bayes_auc() -> None:
    config = DataConfig(synthetic=SyntheticConfig(rows=50_000), split={"valid_fraction": 0.2, "test_fraction": 0.2})
    data = load_data(config, cache_dir=None)
    assert (len(data.train), len(data.valid), len(data.test)) == (30_000, 10_000, 10_000)
    assert data.meta.categorical_names == synthetic_schema().categorical
    assert data.meta.numeric_names == synthetic_schema().numeric
    for split in (data.train, data.valid, data.test):
        assert split.true_probability is not None and split.true_probability.shape == split.label.shape
        assert split.categorical.dtype == torch.int64 and split.numeric.dtype == torch.float32
    for j, card in enumerate(data.meta.cardinalities):
        assert int(data.test.categorical[:, j].max()) < card
    metrics = bayes_metrics(data.test)
    assert metrics.auc > 0.6 and metrics.ne < 0.95 and metrics.rows == 10_000


def test_bayes_metrics_needs_true_probability() -> None:
    split = TensorSplit(torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 0), torch.tensor([0.0, 1.0]))
    with pytest.raises(DataError, match="no true probabilities"):
        bayes_metrics(split)


def test_one_million_rows_generation_time() -> None:
    start = time.perf_counter()
    frame = generate_frame(SyntheticConfig(rows=1_000_000, seed=1))
    seconds = time.perf_counter() - start
    print(f"synthetic: 1,000,000 rows in {seconds:.1f} s, {frame.memory_usage().sum() / 1e6:.0f} MB")
    assert len(frame) == 1_000_000
    assert seconds < 60
