"""Ordered splits (file order, or a time column) hold out the latest rows; the shift report
shows what the preflight can see of validation against test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from rankwright.ranking.data import DataConfig, DataError, SchemaConfig, SplitConfig, split_rows
from rankwright.ranking.data.shift import shift_report

SCHEMA = SchemaConfig(label="click", categorical=("user",), numeric=())


def _log(path: Path, rows: int, start: int = 0, shuffle: bool = False) -> Path:
    """A click log in which every 20 rows a new user appears: later rows meet unseen users."""
    times = np.arange(start, start + rows)
    if shuffle:
        times = np.random.RandomState(0).permutation(times)
    lines = [f"{t},u{t // 20},{int(t % 3 == 0)}" for t in times]
    path.write_text("t,user,click\n" + "\n".join(lines) + "\n")
    return path


def test_ordered_splits_hold_out_the_latest_rows():
    file_order = split_rows(10, SplitConfig(order="file", valid_fraction=0.2, test_fraction=0.2))
    assert [list(p) for p in file_order] == [[0, 1, 2, 3, 4, 5], [6, 7], [8, 9]]
    times = np.array([5, 1, 9, 3, 7, 0, 8, 2, 6, 4])
    train, valid, test = split_rows(10, SplitConfig(order="column", time_column="t", valid_fraction=0.2,
                                                    test_fraction=0.2), times=times)
    assert sorted(times[test]) == [8, 9] and sorted(times[valid]) == [6, 7] and max(times[train]) == 5
    with pytest.raises(ValidationError, match="order: column needs time_column"):
        SplitConfig(order="column")
    with pytest.raises(ValidationError, match="time_column is set but order is 'random'"):
        SplitConfig(time_column="t")


def test_a_time_column_orders_a_shuffled_file_and_bad_times_are_named(tmp_path):
    path = _log(tmp_path / "log.csv", 400, shuffle=True)
    config = DataConfig(source="csv", train=str(path), schema=SCHEMA,
                        split=SplitConfig(order="column", time_column="t", valid_fraction=0.1, test_fraction=0.1))
    report = shift_report(config)
    assert report.rows == {"train": 320, "valid": 40, "test": 40}
    assert report.unseen["user"]["test"] > 0.9  # the last 40 rows: users the past never saw
    path.write_text(path.read_text().replace("\n12,", "\nsoon,", 1))
    with pytest.raises(DataError, match="time column 't' value 'soon' is neither a number nor a date"):
        shift_report(config)
    synthetic = DataConfig(split=SplitConfig(order="column", time_column="t"))
    with pytest.raises(DataError, match="needs a file with named columns"):
        shift_report(synthetic)


def test_the_shift_report_warns_when_validation_and_test_disagree(tmp_path):
    past = _log(tmp_path / "past.csv", 800)
    future = _log(tmp_path / "future.csv", 200, start=800)  # the test file is later in time
    random_cut = DataConfig(source="csv", train=str(past), test=str(future), schema=SCHEMA,
                            split=SplitConfig(valid_fraction=0.1, test_fraction=0.0))
    report = shift_report(random_cut)
    assert report.unseen["user"]["valid"] < 0.1 and report.unseen["user"]["test"] == 1.0
    assert report.warnings and "field user: 100% of test rows have a value never seen in training" in report.warnings[0]
    by_time = DataConfig(source="csv", train=str(past), test=str(future), schema=SCHEMA,
                         split=SplitConfig(order="file", valid_fraction=0.2, test_fraction=0.0))
    assert shift_report(by_time).unseen["user"]["valid"] > 0.9  # validation now meets new users too


def test_dates_order_rows_too(tmp_path):
    lines = [f"2026-0{1 + (i % 9)}-1{i % 9} 10:00,u{i % 9},{i % 2}" for i in range(90)]
    path = tmp_path / "dated.csv"
    path.write_text("t,user,click\n" + "\n".join(lines) + "\n")
    config = DataConfig(source="csv", train=str(path), schema=SCHEMA,
                        split=SplitConfig(order="column", time_column="t", valid_fraction=0.1, test_fraction=0.1))
    from rankwright.ranking.data.files import resolve_files
    from rankwright.ranking.data.splitting import frames_of

    frames, _, shuffled = frames_of(config, resolve_files(config, tmp_path))
    assert not shuffled and set(frames["test"]["user"]) == {"u8"}  # September: the latest month
