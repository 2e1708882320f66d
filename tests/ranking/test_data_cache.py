"""The processed-data cache: hits, keys, atomic writes and recovery from damaged files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rankwright.ranking.data import DataConfig, ProcessedData, SyntheticConfig, load_data
from rankwright.ranking.data import cache, loading


def _csv(path: Path, seed: int = 0, rows: int = 500) -> Path:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {"y": rng.integers(0, 2, rows), "c": rng.integers(0, 20, rows), "x": rng.exponential(3.0, rows)}
    ).to_csv(path, index=False)
    return path


def _config(**extra) -> DataConfig:
    return DataConfig(source="csv", train="d.csv", schema={"label": "y", "categorical": ["c"], "numeric": ["x"]}, **extra)


def _same(a: ProcessedData, b: ProcessedData) -> bool:
    if a.meta != b.meta or a.cache_key != b.cache_key:
        return False
    for name in ("train", "valid", "test"):
        x, y = getattr(a, name), getattr(b, name)
        for t in ("categorical", "numeric", "label", "true_probability"):
            u, v = getattr(x, t), getattr(y, t)
            if (u is None) != (v is None) or (u is not None and not torch.equal(u, v)):
                return False
    return True


def _no_build(*args, **kwargs):
    raise AssertionError("the cache should have answered")


def test_hit_returns_identical_tensors_without_rebuilding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _csv(tmp_path / "d.csv")
    first = load_data(_config(), base_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert len(first.cache_key) == 32 and cache.cache_path(tmp_path / "cache", first.cache_key).is_file()
    monkeypatch.setattr(loading, "build", _no_build)
    second = load_data(_config(), base_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert _same(first, second)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"data-{first.cache_key}.pt"]  # no temporary files left


def test_synthetic_hit_keeps_true_probability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = DataConfig(synthetic=SyntheticConfig(rows=10_000))
    first = load_data(config, cache_dir=tmp_path)
    monkeypatch.setattr(loading, "build", _no_build)
    second = load_data(config, cache_dir=tmp_path)
    assert second.test.true_probability is not None and _same(first, second)


def test_key_follows_data_and_settings_not_paths(tmp_path: Path) -> None:
    data = _csv(tmp_path / "d.csv")
    files = {"train": data}
    key = cache.cache_key(_config(), files)
    assert cache.cache_key(_config(), files) == key
    changed = [
        _config(processing={"min_count": 2}),
        _config(processing={"numeric_transform": "standardize"}),
        _config(split={"seed": 1}),
        _config(train_fraction=0.5),
        DataConfig(source="csv", train="d.csv", schema={"label": "y", "categorical": ["c"]}),
    ]
    keys = {cache.cache_key(c, files) for c in changed}
    assert key not in keys and len(keys) == len(changed)
    moved = tmp_path / "elsewhere.csv"
    shutil.copy(data, moved)
    assert cache.cache_key(_config(), {"train": moved}) == key  # same bytes, same data
    _csv(data, seed=1)
    assert cache.cache_key(_config(), files) != key  # new bytes, new key
    synthetic = cache.cache_key(DataConfig(), {})
    assert synthetic != cache.cache_key(DataConfig(synthetic=SyntheticConfig(seed=1)), {})


@pytest.mark.parametrize("damage", [b"", b"not a torch file", None])
def test_damaged_cache_file_is_ignored_and_rebuilt(tmp_path: Path, damage: bytes | None) -> None:
    _csv(tmp_path / "d.csv")
    cache_dir = tmp_path / "cache"
    good = load_data(_config(), base_dir=tmp_path, cache_dir=cache_dir)
    path = cache.cache_path(cache_dir, good.cache_key)
    if damage is None:  # truncated half-way
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(damage)
    assert cache.load(cache_dir, good.cache_key) is None
    rebuilt = load_data(_config(), base_dir=tmp_path, cache_dir=cache_dir)
    assert _same(good, rebuilt)
    assert cache.load(cache_dir, good.cache_key) is not None  # the rebuilt file is whole again


def test_cache_can_be_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _csv(tmp_path / "d.csv")
    monkeypatch.chdir(tmp_path)
    load_data(_config(), cache_dir=None)
    assert not (tmp_path / ".rankwright").exists()
