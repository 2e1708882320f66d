"""Readers: csv/tsv/parquet with a schema, raw Criteo TSV, libsvm (libffm and libfm), config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from rankwright.ranking.data import DataConfig, DataError, SchemaConfig, load_data
from rankwright.ranking.data.sources import read_criteo, read_libsvm, read_parquet, read_table

SHARED = Path(__file__).parents[3] / "shared/data"
CRITEO_SAMPLE = SHARED / "criteo_sample/train.tsv"
SCHEMA = SchemaConfig(label="click", categorical=("user", "item"), numeric=("price",))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- csv / tsv / parquet


def test_csv_with_schema_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "click,user,item,price,ignored\n1,u1,7,2.5,x\n-1,NA,8,,y\n-1,u2,,3,z\n")
    frame, schema = read_table(path, SCHEMA)
    assert list(frame.columns) == ["label", "user", "item", "price"]
    assert schema.label == "label" and schema.categorical == ("user", "item")
    assert frame["label"].tolist() == [1.0, 0.0, 0.0]  # -1 is a negative (libsvm style)
    assert frame["label"].dtype == np.float32
    assert frame["user"].tolist()[:2] == ["u1", "NA"]  # "NA" is a value of a categorical column
    assert pd.isna(frame["item"].iloc[2])
    assert frame["price"].dtype == np.float64 and np.isnan(frame["price"].iloc[1])


def test_tsv_reads_like_csv(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.tsv", "click\tuser\titem\tprice\n1\ta\t1\t0.5\n0\tb\t2\t1.5\n")
    frame, _ = read_table(path, SCHEMA, sep="\t")
    assert frame["price"].tolist() == [0.5, 1.5] and frame["item"].tolist() == ["1", "2"]


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "click,user,price\n1,a,1\n")
    with pytest.raises(DataError, match=r"d\.csv.*missing column.*'item'"):
        read_table(path, SCHEMA)


def test_bad_label_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "click,user,item,price\n1,a,1,1\n0,a,1,1\n2,b,1,1\n")
    with pytest.raises(DataError, match=r"d\.csv line 4: label .*2"):
        read_table(path, SCHEMA)


def test_labels_mixing_0_and_minus_1_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "click,user,item,price\n1,a,1,1\n0,a,1,1\n-1,b,1,1\n")
    with pytest.raises(DataError, match=r"d\.csv line 4: column 'click' mixes labels 0 and -1"):
        read_table(path, SCHEMA)


def test_an_infinite_numeric_value_is_refused_not_zeroed(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "click,user,item,price\n1,a,1,1\n0,a,1,inf\n")
    with pytest.raises(DataError, match=r"d\.csv line 3: column 'price' value 'inf' is infinite"):
        read_table(path, SCHEMA)


def test_a_split_with_one_class_is_refused(tmp_path: Path) -> None:
    rows = "".join(f"0,u{i % 7},{i % 3},{i}\n" for i in range(300))
    path = _write(tmp_path / "d.csv", "click,user,item,price\n" + rows)
    config = DataConfig(source="csv", train=str(path), schema=SCHEMA)
    with pytest.raises(DataError, match="every label of the train split is 0"):
        load_data(config, cache_dir=None)


def test_non_number_in_numeric_column_names_column_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "click,user,item,price\n1,a,1,1\n0,a,1,cheap\n")
    with pytest.raises(DataError, match=r"d\.csv line 3: column 'price' value 'cheap'"):
        read_table(path, SCHEMA)


def test_parquet_reads_and_checks_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"click": [1, 0, 1], "user": ["a", "b", None], "item": [1, 2, 3], "price": [1.0, None, 2.0]}).to_parquet(path)
    frame, _ = read_parquet(path, SCHEMA)
    assert frame["label"].tolist() == [1.0, 0.0, 1.0] and np.isnan(frame["price"].iloc[1])
    with pytest.raises(DataError, match=r"d\.parquet.*'age'"):
        read_parquet(path, SchemaConfig(label="click", categorical=("age",)))


# ----------------------------------------------------------------------------- criteo


def _criteo_line(label: str, ints: list[str], cats: list[str]) -> str:
    return "\t".join([label, *ints, *cats]) + "\n"


def test_criteo_tsv_with_empty_fields(tmp_path: Path) -> None:
    ints = ["1", "", "-2"] + ["3"] * 10
    cats = ["68fd1e64", ""] + ["a"] * 24
    text = _criteo_line("0", ints, cats) + _criteo_line("1", [""] * 13, [""] * 26)
    frame, schema = read_criteo(_write(tmp_path / "c.tsv", text))
    assert len(schema.numeric) == 13 and len(schema.categorical) == 26
    assert frame["label"].tolist() == [0.0, 1.0]
    assert frame["I1"].tolist()[0] == 1.0 and np.isnan(frame["I2"].iloc[0]) and frame["I3"].iloc[0] == -2.0
    assert frame["C1"].iloc[0] == "68fd1e64" and pd.isna(frame["C2"].iloc[0])
    assert frame.iloc[1, 1:].isna().all()


@pytest.mark.parametrize("extra", [-1, 1])
def test_criteo_wrong_field_count_names_file_and_line(tmp_path: Path, extra: int) -> None:
    good = _criteo_line("0", ["1"] * 13, ["a"] * 26)
    cats = ["a"] * (26 + extra)
    path = _write(tmp_path / "c.tsv", good + good + _criteo_line("1", ["1"] * 13, cats))
    with pytest.raises(DataError, match=rf"c\.tsv line 3: expected 40 .*found {40 + extra}"):
        read_criteo(path)


def test_criteo_non_number_in_integer_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.tsv", _criteo_line("0", ["1"] * 12 + ["x"], ["a"] * 26))
    with pytest.raises(DataError, match=r"c\.tsv line 1: column 'I13' value 'x'"):
        read_criteo(path)


@pytest.mark.skipif(not CRITEO_SAMPLE.is_file(), reason=f"shared Criteo sample not found at {CRITEO_SAMPLE}")
def test_criteo_sample_loads_end_to_end(tmp_path: Path) -> None:
    frame, _ = read_criteo(CRITEO_SAMPLE)
    assert frame.shape == (7200, 40)
    assert set(frame["label"].unique()) == {0.0, 1.0}
    data = load_data(
        DataConfig(source="criteo", train=CRITEO_SAMPLE.name, valid="dev.tsv", test="test.tsv"),
        base_dir=CRITEO_SAMPLE.parent,
        cache_dir=None,
    )
    assert (len(data.train), len(data.valid), len(data.test)) == (7200, 409, 391)
    assert data.meta.num_categorical == 26 and data.meta.num_numeric == 13
    assert torch.isfinite(data.train.numeric).all()
    for j, card in enumerate(data.meta.cardinalities):
        assert 0 <= int(data.valid.categorical[:, j].min()) and int(data.valid.categorical[:, j].max()) < card


# ----------------------------------------------------------------------------- libsvm


def test_libffm_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.ffm", "1 0:10:1 1:20:1 2:30:1\n-1 0:11:1 2:31:1\n\n-1 1:21:1.0\n")
    frame, schema = read_libsvm(path)
    assert schema.categorical == ("f0", "f1", "f2")
    assert frame["label"].tolist() == [1.0, 0.0, 0.0]
    assert frame["f0"].tolist()[:2] == [10, 11] and pd.isna(frame["f0"].iloc[2])
    assert pd.isna(frame["f1"].iloc[1]) and frame["f1"].iloc[2] == 21


def test_libfm_format_fields_by_position(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.fm", "1 5:1 900:1 4000:1\n0 6:1 901:1 4001:1\n")
    frame, schema = read_libsvm(path)
    assert schema.categorical == ("f0", "f1", "f2")
    assert frame["f1"].tolist() == [900, 901]


def test_libsvm_text_feature_ids_stay_text(tmp_path: Path) -> None:
    frame, _ = read_libsvm(_write(tmp_path / "d.fm", "1 a:1 b:1\n0 c:1 d:1\n"))
    assert frame["f0"].tolist() == ["a", "c"]


def test_libsvm_weighted_value_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.ffm", "1 0:10:1\n0 0:11:0.5\n")
    with pytest.raises(DataError, match=r"d\.ffm line 2: token '0:11:0\.5'.*only value 1"):
        read_libsvm(path)


def test_libsvm_repeated_field_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.ffm", "1 0:10:1 1:3:1\n0 0:11:1 0:12:1\n")
    with pytest.raises(DataError, match=r"line 2: field 0 appears more than once"):
        read_libsvm(path)


def test_libsvm_mixed_token_forms_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: token '7:1' is not field:feature:value"):
        read_libsvm(_write(tmp_path / "d.ffm", "1 0:10:1\n0 7:1\n"))


def test_libsvm_bad_label(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: label '3'"):
        read_libsvm(_write(tmp_path / "d.fm", "1 1:1\n3 2:1\n"))


def test_libsvm_loads_through_load_data(tmp_path: Path) -> None:
    lines = [f"{i % 2} 0:{i % 7}:1 1:{i % 5}:1" + (f" 2:{i % 3}:1" if i % 4 else "") for i in range(200)]
    _write(tmp_path / "train.ffm", "\n".join(lines) + "\n")
    _write(tmp_path / "test.ffm", "1 0:1:1\n0 1:2:1 3:9:1\n")  # lacks field 2, has an unseen field 3
    data = load_data(DataConfig(source="libsvm", train="train.ffm", test="test.ffm"), base_dir=tmp_path, cache_dir=None)
    assert data.meta.categorical_names == ("f0", "f1", "f2")
    assert len(data.test) == 2 and data.test.categorical[:, 2].tolist() == [0, 0]


# ----------------------------------------------------------------------------- config


def test_config_checks() -> None:
    with pytest.raises(ValidationError, match="needs a 'train' file"):
        DataConfig(source="criteo")
    with pytest.raises(ValidationError, match="schema.categorical or schema.numeric"):
        DataConfig(source="csv", train="x.csv")
    with pytest.raises(ValidationError, match="takes no train"):
        DataConfig(train="x.csv")
    with pytest.raises(ValidationError, match="repeated"):
        SchemaConfig(categorical=("a", "a"))
    with pytest.raises(ValidationError, match="leave some rows"):
        DataConfig(split={"valid_fraction": 0.5, "test_fraction": 0.5})
    with pytest.raises(ValidationError):
        DataConfig(processing={"buckets": 1})


def test_schema_key_in_yaml_form() -> None:
    config = DataConfig.model_validate(
        {"source": "csv", "train": "a.csv", "schema": {"label": "y", "categorical": ["u"]}}
    )
    assert config.schema_.categorical == ("u",)
    assert config.model_dump()["schema"]["label"] == "y"
    assert DataConfig.model_validate(config.model_dump()) == config


def test_missing_file_names_role_and_path(tmp_path: Path) -> None:
    config = DataConfig(source="csv", train="nope.csv", schema={"categorical": ["a"]})
    with pytest.raises(DataError, match=r"data\.train: file not found: .*nope\.csv"):
        load_data(config, base_dir=tmp_path, cache_dir=None)


def test_criteo_declared_subset_can_reinterpret_fields(tmp_path: Path) -> None:
    text = _criteo_line("1", ["3"] + ["1"] * 12, ["12"] + ["a"] * 25) + _criteo_line("0", ["4"] + [""] * 12, ["x"] + [""] * 25)
    _write(tmp_path / "c.tsv", text)
    config = DataConfig(source="criteo", train="c.tsv", valid="c.tsv", test="c.tsv", schema={"categorical": ["I1", "C2"]})
    data = load_data(config, base_dir=tmp_path, cache_dir=None)
    assert data.meta.categorical_names == ("I1", "C2") and data.meta.numeric_names == ()
    assert data.meta.cardinalities == (3, 2)
    with pytest.raises(DataError, match=r"row 2: column 'C1' value 'x' is not a number"):
        load_data(config.model_copy(update={"schema_": SchemaConfig(numeric=("C1",))}), base_dir=tmp_path, cache_dir=None)
    with pytest.raises(DataError, match=r"'C99' is not one of this format's columns"):
        load_data(config.model_copy(update={"schema_": SchemaConfig(categorical=("C99",))}), base_dir=tmp_path, cache_dir=None)
