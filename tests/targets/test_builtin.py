import pytest

from rankwright.ranking.config import ConfigError, validate_run_config
from rankwright.ranking.knobs import knob_schema
from rankwright.targets import TargetError, builtin_target


@pytest.fixture(scope="module")
def target():
    return builtin_target()


def test_knobs_cover_the_ranking_schema_and_hidden_units(target):
    paths = {k.path for k in target.knobs}
    assert {k.path for k in knob_schema("dnn")} <= paths
    hidden = target.knob("model.hidden_units")
    assert (hidden.kind, hidden.low, hidden.high, hidden.min_length, hidden.max_length) == ("int_tuple", 1, 8192, 1, 16)
    assert target.knob("train.learning_rate").log


def test_render_gives_a_config_the_codebase_accepts(target, tmp_path):
    command, config = target.render({"model.embedding_dim": 16, "model.hidden_units": [64, 32],
                                     "train.optimizer": "adamw", "train.grad_clip_norm": None}, tmp_path)
    assert command[1:5] == ("-m", "rankwright", "train", str(tmp_path / "experiment.yaml"))
    assert command[-3:] == ("--run-dir", str(tmp_path), "--quiet")
    run = validate_run_config(config)
    assert run.model.embedding_dim == 16 and run.model.hidden_units == (64, 32)
    assert run.train.optimizer == "adamw" and run.train.grad_clip_norm is None


@pytest.mark.parametrize(
    "path, value",
    [
        ("model.embedding_dim", 0),
        ("model.embedding_dim", 513),
        ("model.dropout", 1.0),
        ("model.embedding_init_std", 0.0),
        ("train.learning_rate", 0.0),
        ("train.plateau_factor", 1.0),
        ("train.early_stopping_patience", 0),
        ("train.optimizer", "sgd"),
        ("model.hidden_units", []),
        ("model.hidden_units", [8192, 8193]),
        ("data.processing.buckets", 1),
    ],
)
def test_out_of_range_agrees_with_the_pydantic_configs(target, path, value):
    with pytest.raises(TargetError, match=path.replace(".", r"\.")):
        target.validate_changes({path: value})
    document = target.config_with({})
    section, _, key = path.rpartition(".")
    node = document
    for part in section.split("."):
        node = node[part]
    node[key] = value
    with pytest.raises(ConfigError):
        validate_run_config(document)


@pytest.mark.parametrize("path", ["model.dropout", "train.learning_rate", "train.plateau_factor"])
def test_edges_inside_the_range_agree_too(target, path):
    knob = target.knob(path)
    inside = knob.low if knob.low_inclusive else knob.high if knob.high_inclusive else (knob.low + knob.high) / 2
    validate_run_config(target.config_with({path: inside}))


def test_base_config_is_completed_and_checked():
    target = builtin_target("deepfm", {"train": {"epochs": 2}})
    assert target.base_config["model"]["name"] == "deepfm" and target.base_config["train"]["epochs"] == 2
    assert target.cost_features(target.base_config).epochs == 2
    with pytest.raises(TargetError, match="model name|target is for"):
        builtin_target("dnn", {"model": {"name": "deepfm"}})
    with pytest.raises(TargetError, match="train.epochs"):
        builtin_target("dnn", {"train": {"epochs": 0}})
    with pytest.raises(TargetError, match="unknown model"):
        builtin_target("nope")


def test_a_rendered_run_trains_and_its_result_is_read(tmp_path):
    import subprocess

    target = builtin_target(base_config={"data": {"synthetic": {"rows": 10_000}}, "train": {"epochs": 1}})
    run_dir = tmp_path / "run"
    command, config = target.render({"model.embedding_dim": 4, "model.hidden_units": [16]}, run_dir)
    target.write_config(run_dir, config)
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = target.read_result(run_dir)
    assert 0.5 < result["objective"] < 1.5 and result["direction"] == "minimize"
    assert result["metrics"]["valid"]["auc"] > 0.5
    assert target.heartbeat_age(run_dir) < 60
