"""The built-in target's measured cost features: real training rows and per-row model compute."""

import os

import numpy as np
import pytest

from rankwright.ranking.config import validate_run_config
from rankwright.ranking.data import load_data, split_rows
from rankwright.ranking.data.config import SplitConfig
from rankwright.ranking.data.errors import DataError
from rankwright.ranking.data.sources import read_libsvm
from rankwright.ranking.knobs import knob_schema
from rankwright.ranking.models import REGISTRY
from rankwright.targets import CostModelSpec, Target, builtin_target
from rankwright.targets.builtin import field_names, model_compute, train_rows


def write_csv(path, n, sep=",", header=True):
    rng = np.random.default_rng(n)
    lines = [sep.join(("label", "user", "item", "price"))] if header else []
    for i in range(n):
        lines.append(sep.join((str(int(rng.random() < 0.3)), f"u{i % 7}", f"i{i % 5}", f"{rng.random():.3f}")))
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_config(train, **data):
    schema = {"label": "label", "categorical": ["user", "item"], "numeric": ["price"]}
    return {"data": {"source": "csv", "train": str(train), "schema": schema, **data}, "train": {"epochs": 2}}


def net_seconds(target, changes):
    """Predicted seconds less the fixed overhead: the part that scales with the work."""
    return target.predict_hours(changes, devices=1.0) * 3600.0 - target.cost.overhead_seconds


def test_csv_rows_are_the_real_train_split(tmp_path):
    path = write_csv(tmp_path / "train.csv", 250)
    split = {"valid_fraction": 0.1, "test_fraction": 0.2, "seed": 3}
    target = builtin_target("dnn", csv_config(path, split=split))
    features = target.cost_features(target.base_config)
    expected = len(split_rows(250, SplitConfig(**split))[0])
    assert features.rows == expected == 250 - 25 - 50
    assert features.epochs == 2 and features.fidelity == 1.0
    data = load_data(validate_run_config(target.base_config).data, base_dir=tmp_path, cache_dir=None)
    assert len(data.train) == features.rows  # what the trainer really gets

    # valid and test files given: nothing is carved out of the train file
    write_csv(tmp_path / "valid.csv", 40)
    write_csv(tmp_path / "test.csv", 30)
    whole = builtin_target("dnn", csv_config(path, valid=str(tmp_path / "valid.csv"), test=str(tmp_path / "test.csv")))
    assert whole.cost_features(whole.base_config).rows == 250
    # only the test file given: the split carves out validation only
    partial = builtin_target("dnn", csv_config(path, test=str(tmp_path / "test.csv")))
    assert partial.cost_features(partial.base_config).rows == 250 - 25


def test_relative_paths_start_at_the_working_folder_and_edits_are_seen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "train.csv", 100)
    target = builtin_target("dnn", csv_config("train.csv"))
    assert target.cost_features(target.base_config).rows == 80
    write_csv(tmp_path / "train.csv", 200)  # rewritten in place: the cached count is not reused
    os.utime(tmp_path / "train.csv", ns=(1, 1))
    assert target.cost_features(target.base_config).rows == 160
    (tmp_path / "train.csv").unlink()
    with pytest.raises(DataError, match="data.train: file not found"):
        target.cost_features(target.base_config)


def test_other_file_formats_count_their_data_rows(tmp_path):
    write_csv(tmp_path / "t.tsv", 50, sep="\t")
    tsv = builtin_target("dnn", {**csv_config(tmp_path / "t.tsv"), "data": {
        **csv_config(tmp_path / "t.tsv")["data"], "source": "tsv"}})
    assert tsv.cost_features(tsv.base_config).rows == 40

    import pandas as pd

    pd.read_csv(write_csv(tmp_path / "p.csv", 60)).to_parquet(tmp_path / "t.parquet")
    parquet = builtin_target("dnn", {"data": {**csv_config(tmp_path / "t.parquet")["data"], "source": "parquet"}})
    assert parquet.cost_features(parquet.base_config).rows == 48

    criteo_line = "\t".join(["1", *["3"] * 13, *["a1"] * 26])
    (tmp_path / "criteo.tsv").write_text("\n".join([criteo_line] * 30))  # no header, no final newline
    criteo = builtin_target("dnn", {"data": {"source": "criteo", "train": str(tmp_path / "criteo.tsv")}})
    assert criteo.cost_features(criteo.base_config).rows == 24
    categorical, numeric = field_names(validate_run_config(criteo.base_config).data, tmp_path)
    assert len(categorical) == 26 and len(numeric) == 13

    lines = [f"{i % 2} 0:{i % 3}:1 2:{i % 5}:1 7:1:1" for i in range(20)]
    (tmp_path / "t.ffm").write_text("\n".join(lines) + "\n")
    libsvm = builtin_target("dnn", {"data": {"source": "libsvm", "train": str(tmp_path / "t.ffm")}})
    data = validate_run_config(libsvm.base_config).data
    assert train_rows(data, tmp_path) == 16
    _, implied = read_libsvm(tmp_path / "t.ffm")
    assert field_names(data, tmp_path) == (implied.categorical, ()) == (("f0", "f2", "f7"), ())


def test_synthetic_rows_follow_the_configured_rows():
    small = builtin_target("dnn", {"data": {"synthetic": {"rows": 50_000}}})
    large = builtin_target("dnn", {"data": {"synthetic": {"rows": 100_000}, "split": {"test_fraction": 0.0}}})
    assert small.cost_features(small.base_config).rows == 40_000  # 10% valid and 10% test held out
    assert large.cost_features(large.base_config).rows == 90_000
    assert small.predict_hours({}) < large.predict_hours({})


@pytest.mark.parametrize("model", sorted(REGISTRY))
def test_a_wider_embedding_costs_more(model):
    target = builtin_target(model, {"data": {"synthetic": {"rows": 50_000}}})
    narrow, wide = (target.predict_hours({"model.embedding_dim": d}) for d in (10, 16))
    if model == "lr":
        assert wide == narrow  # LR has first-order weights only: embedding_dim is unused
    else:
        assert wide > narrow


@pytest.mark.parametrize("model", sorted(REGISTRY))
def test_wider_hidden_layers_cost_more(model):
    base = {"data": {"synthetic": {"rows": 50_000}}}
    if model == "finalmlp":  # gates driven by fields: per row (see below for the default)
        base["model"] = {"fs1_context": ["user_id"], "fs2_context": ["ad_id", "price"]}
    target = builtin_target(model, base)
    knobs = [k.path for k in knob_schema(model) if k.path.endswith("hidden_units")]
    if model in ("lr", "fm"):
        assert not knobs
    for path in knobs:
        assert net_seconds(target, {path: [800, 400]}) > net_seconds(target, {path: [400, 200]}) > 0, path


def test_work_done_once_per_batch_is_not_per_row_work():
    # FinalMLP without context fields computes its gates once per batch, from a learned vector
    target = builtin_target("finalmlp", {"data": {"synthetic": {"rows": 50_000}}})
    wide, narrow = ({"model.fs_hidden_units": units} for units in ([800, 400], [400, 200]))
    assert net_seconds(target, wide) == pytest.approx(net_seconds(target, narrow))


def test_the_field_list_and_its_processing_count():
    target = builtin_target("dlrm", {"data": {"synthetic": {"rows": 50_000}}})
    some = {"data": {"synthetic": {"rows": 50_000}, "schema": {"categorical": ["user_id", "ad_id"],
                                                                "numeric": ["price"]}}}
    fewer = builtin_target("dlrm", some)
    assert fewer.cost_features(fewer.base_config).model_size < target.cost_features(target.base_config).model_size
    # bucketized numeric fields become categorical: DLRM then embeds them instead of its bottom MLP
    bucketized = target.cost_features(target.config_with({"data.processing.numeric_transform": "bucketize"}))
    assert bucketized.model_size != target.cost_features(target.base_config).model_size


def test_fidelity_and_epochs_scale_the_work():
    target = builtin_target("dcnv2", {"data": {"synthetic": {"rows": 50_000}}})
    base = net_seconds(target, {"train.epochs": 4})
    assert net_seconds(target, {"train.epochs": 8}) == pytest.approx(2 * base)
    half = target.cost_features(target.config_with({"train.epochs": 4}))
    assert half.fidelity == 1.0
    config = target.config_with({"train.epochs": 4})
    config["data"]["train_fraction"] = 0.25
    features = target.cost_features(config)
    assert features.fidelity == 0.25 and features.work == pytest.approx(half.work / 4)


def test_model_compute_is_cached_and_leaves_the_rng_alone():
    import torch

    model = validate_run_config({"model": {"name": "finalmlp", "embedding_dim": 12,
                                           "fs1_context": ["user_id"]}}).model
    fields = (("user_id", "ad_id"), ("price",))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    first = model_compute(model, *fields)
    assert torch.equal(torch.rand(3), expected)
    assert model_compute(model, *fields) == first > 0


def test_targets_described_by_yaml_keep_their_config_paths():
    target = Target(name="t", command=("{python}", "x.py"), base_config={"data": {"rows": 600}, "epochs": 3},
                    cost=CostModelSpec(rows="data.rows", epochs="epochs", model_size=(4.0,)))
    assert target.cost_features(target.base_config) == target.cost.features(target.base_config)
    assert target.cost_features(target.base_config).rows == 600
    wall = target.cost.model().predict_hours(target.cost.features(target.base_config))
    import os

    # the prior is wall time; the ledger charges CPU time: a run keeping its share of the cores busy counts it
    assert target.predict_hours({}, parallel=os.cpu_count() or 1) == pytest.approx(wall)
    four = Target(name="t", command=("{python}", "x.py"), base_config=target.base_config,
                  cost=target.cost.model_copy(update={"cores": 4}))
    assert four.predict_hours({}) == pytest.approx(4 * wall)  # a codebase that keeps 4 cores busy
    gpu = Target(name="t", command=("{python}", "x.py"), base_config=target.base_config,
                 cost=target.cost.model_copy(update={"unit": "gpu_hours"}))
    assert gpu.predict_hours({}) == pytest.approx(wall)  # a GPU run counts its wall hours
