"""Feature processing (vocabularies, hashing, numeric transforms) and splitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rankwright.ranking.data import DataConfig, DataError, FeatureProcessor, ProcessingConfig, SplitConfig, load_data, split_rows

FRAPPE = Path(__file__).parents[3] / "shared/data/frappe"
FRAPPE_FIELDS = ["user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city"]


def _frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"label": np.zeros(n, np.float32), **columns})


def _processor(categorical=(), numeric=(), **config) -> FeatureProcessor:
    return FeatureProcessor(ProcessingConfig(**config), tuple(categorical), tuple(numeric))


# ----------------------------------------------------------------------------- vocabularies


def test_vocabulary_orders_by_count_then_value() -> None:
    train = _frame(c=["b", "a", "c", "a", "b", "d", None])
    processor = _processor(["c"]).fit(train)
    ids = processor.transform(train).categorical[:, 0].tolist()
    # a and b both twice (a first by value), then c, d once each; missing -> 0
    assert ids == [2, 1, 3, 1, 2, 4, 0]
    assert processor.meta.cardinalities == (5,)


def test_min_count_sends_rare_and_unseen_values_to_oov() -> None:
    train = _frame(c=[1, 1, 1, 2, 2, 3])
    processor = _processor(["c"], min_count=2).fit(train)
    assert processor.meta.cardinalities == (3,)
    valid = _frame(c=[1, 2, 3, 4])
    assert processor.transform(valid).categorical[:, 0].tolist() == [1, 2, 0, 0]


def test_integers_read_as_text_or_float_map_to_the_same_ids() -> None:
    processor = _processor(["c"]).fit(_frame(c=np.array([5, 5, 7], dtype=np.int64)))
    as_text = _frame(c=pd.Series(["7", "5", "x", None], dtype="str"))
    as_float = _frame(c=[7.0, 5.0, np.nan, 9.0])
    assert processor.transform(as_text).categorical[:, 0].tolist() == [2, 1, 0, 0]
    assert processor.transform(as_float).categorical[:, 0].tolist() == [2, 1, 0, 0]


def test_hashing_above_threshold_is_in_range_and_deterministic() -> None:
    values = pd.Series([f"v{i}" for i in range(5000)] + [None], dtype="str")
    train = _frame(c=values, n=np.arange(5001, dtype=np.int64))
    config = dict(hash_threshold=100, hash_buckets=64)
    first = _processor(["c", "n"], **config).fit(train)
    second = _processor(["c", "n"], **config).fit(train.iloc[::-1].reset_index(drop=True))
    assert first.meta.cardinalities == (65, 65)
    ids = first.transform(train).categorical
    assert int(ids.min()) >= 0 and int(ids.max()) <= 64
    assert ids[-1, 0] == 0 and (ids[:-1, 0] > 0).all()  # only missing gets 0
    assert torch.equal(ids, second.transform(train).categorical)
    assert len(torch.unique(ids[:, 0])) > 50  # spread over the buckets
    # pinned values: the hash is seed-free, so ids never change between processes or runs
    probe = _frame(c=pd.Series(["v0", "v1", "criteo"], dtype="str"), n=np.array([0, 1, 123456789], dtype=np.int64))
    pinned = first.transform(probe).categorical
    assert pinned.tolist() == PINNED_HASH_IDS


PINNED_HASH_IDS = [[40, 1], [15, 38], [47, 33]]


# ----------------------------------------------------------------------------- numeric transforms


def test_log_transform_is_signed_log1p_and_missing_is_zero() -> None:
    train = _frame(x=[0.0, 1.0, 9.0, -3.0, np.nan, np.inf])
    split = _processor(numeric=["x"], numeric_transform="log").fit(train).transform(train)
    expected = [0.0, np.log(2.0), np.log(10.0), -np.log(4.0), 0.0, 0.0]
    np.testing.assert_allclose(split.numeric[:, 0].numpy(), expected, rtol=1e-6)
    assert split.numeric.dtype == torch.float32


def test_default_log_standardize_centres_the_logged_values() -> None:
    train = _frame(x=[0.0, 1.0, 9.0, -3.0, np.nan])
    processor = _processor(numeric=["x"]).fit(train)
    logged = np.array([0.0, np.log(2.0), np.log(10.0), -np.log(4.0)])
    out = processor.transform(_frame(x=[9.0, np.nan])).numeric[:, 0].numpy()
    np.testing.assert_allclose(out, [(np.log(10.0) - logged.mean()) / logged.std(), 0.0], rtol=1e-5)


def test_standardize_uses_train_statistics() -> None:
    train = _frame(x=[1.0, 2.0, 3.0, np.nan])
    processor = _processor(numeric=["x"], numeric_transform="standardize").fit(train)
    out = processor.transform(_frame(x=[2.0, 5.0, np.nan])).numeric[:, 0].numpy()
    std = np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out, [0.0, 3.0 / std, 0.0], rtol=1e-6)


def test_none_and_override() -> None:
    train = _frame(x=[4.0, np.nan], y=[4.0, 1.0])
    processor = _processor(numeric=["x", "y"], numeric_transform="none", numeric_overrides={"y": "log"}).fit(train)
    out = processor.transform(train).numeric.numpy()
    np.testing.assert_allclose(out, [[4.0, np.log(5.0)], [0.0, np.log(2.0)]], rtol=1e-6)


def test_bucketize_turns_a_numeric_field_into_a_categorical_one() -> None:
    x = np.arange(1000, dtype=np.float64)
    train = _frame(c=["a"] * 1000, x=x, y=x)
    processor = _processor(["c"], ["x", "y"], numeric_overrides={"x": "bucketize"}, buckets=10).fit(train)
    meta = processor.meta
    assert meta.categorical_names == ("c", "x") and meta.numeric_names == ("y",)
    assert meta.cardinalities == (2, 11)  # 9 inner edges -> 10 buckets + missing
    ids = processor.transform(_frame(c=["a"] * 4, x=[-5.0, 0.0, 999.0, np.nan], y=[1.0] * 4)).categorical[:, 1]
    assert ids.tolist() == [1, 1, 10, 0]
    counts = np.bincount(processor.transform(train).categorical[:, 1].numpy())
    assert counts[0] == 0 and (counts[1:] == 100).all()  # quantile buckets are equally full


def test_unknown_override_and_missing_column_are_data_errors() -> None:
    with pytest.raises(DataError, match="numeric_overrides.*'z'"):
        _processor(numeric=["x"], numeric_overrides={"z": "log"})
    processor = _processor(["c"]).fit(_frame(c=[1, 2]))
    with pytest.raises(DataError, match=r"valid split: missing column.*'c'"):
        processor.transform(_frame(d=[1]), where="valid split")


# ----------------------------------------------------------------------------- splitting


def test_split_sizes_and_determinism() -> None:
    split = SplitConfig(valid_fraction=0.1, test_fraction=0.2, seed=7)
    train, valid, test = split_rows(1000, split)
    assert (len(train), len(valid), len(test)) == (700, 100, 200)
    assert np.array_equal(np.sort(np.concatenate([train, valid, test])), np.arange(1000))
    perm = np.random.RandomState(7).permutation(1000)
    assert np.array_equal(test, perm[-200:]) and np.array_equal(valid, perm[700:800])
    again = split_rows(1000, split)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))
    other = split_rows(1000, SplitConfig(valid_fraction=0.1, test_fraction=0.2, seed=8))
    assert not np.array_equal(train, other[0])
    train, valid, test = split_rows(1000, split, need_test=False)
    assert (len(train), len(valid), test) == (900, 100, None)
    assert np.array_equal(valid, perm[900:])


def test_load_data_splits_one_file_and_applies_train_fraction(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame({"y": rng.integers(0, 2, 1000), "c": rng.integers(0, 30, 1000), "x": rng.random(1000)}).to_csv(
        tmp_path / "d.csv", index=False
    )
    # "log" has no fitted statistics, so the same rows give the same values at any fraction.
    base = dict(source="csv", train="d.csv", schema={"label": "y", "categorical": ["c"], "numeric": ["x"]},
                processing={"numeric_transform": "log"})
    full = load_data(DataConfig(**base), base_dir=tmp_path, cache_dir=None)
    assert (len(full.train), len(full.valid), len(full.test)) == (800, 100, 100)
    half = load_data(DataConfig(**base, train_fraction=0.5), base_dir=tmp_path, cache_dir=None)
    assert len(half.train) == 400
    assert torch.equal(half.valid.label, full.valid.label) and torch.equal(half.test.numeric, full.test.numeric)
    assert torch.equal(half.train.numeric, full.train.numeric[:400])  # the leading share of the shuffled train


@pytest.mark.skipif(not (FRAPPE / "frappe_x1_valid.csv").is_file(), reason=f"shared Frappe data not found in {FRAPPE}")
def test_frappe_split_matches_the_benchmark_rule() -> None:
    config = DataConfig(
        source="csv",
        train="frappe_x1_valid.csv",
        test="frappe_x1_test.csv",
        schema={"categorical": FRAPPE_FIELDS},
        split={"seed": 2024},
    )
    data = load_data(config, base_dir=FRAPPE, cache_dir=None)
    assert (len(data.train), len(data.valid), len(data.test)) == (51_950, 5_772, 28_860)
    assert data.meta.categorical_names == tuple(FRAPPE_FIELDS)
    assert 0.3 < float(data.train.label.mean()) < 0.36
