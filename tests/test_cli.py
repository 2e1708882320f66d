"""The command line: config errors name the field, exit 2 and write nothing."""

import json

import pytest
from typer.testing import CliRunner

from rankwright.cli.main import app

runner = CliRunner()


def _train(tmp_path, *args):
    return runner.invoke(app, ["train", *args, "--run-dir", str(tmp_path / "run"),
                               "--cache-dir", str(tmp_path / "cache")])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.optimizer=sgd", "train.optimizer: Input should be 'adam', 'adamw' or 'adagrad'"),
        ("model.dropout=1.5", "model.dropout: Input should be less than 1"),
        ("model.name=transformer", "unknown model 'transformer'; allowed: "),
        ("model.embeding_dim=4", "model.embeding_dim: unknown key; did you mean 'embedding_dim'?"),
        ("model.colour=4", "model.colour: unknown key; known keys here: "),
        ("train.batch_size=abc", "train.batch_size: Input should be a valid integer"),
        ("data.source=excel", "data.source: Input should be"),
        ("trainlr", "expected KEY=VALUE"),
    ],
)
def test_config_errors_name_the_field_exit_2_and_write_nothing(tmp_path, override, expected):
    result = _train(tmp_path, "--set", override)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: dnn\n  hidden_units: [1, 2\n")
    result = _train(tmp_path, str(bad))
    assert result.exit_code == 2
    assert "not valid YAML at line" in result.output
    assert not (tmp_path / "run").exists()


def test_missing_data_file_is_a_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  source: csv\n  train: nowhere.csv\n  schema:\n    categorical: [a]\n")
    result = _train(tmp_path, str(cfg))
    assert result.exit_code == 2, result.output
    assert "nowhere.csv" in result.output
    assert not (tmp_path / "run").exists()


def test_a_different_config_in_an_existing_run_folder_is_refused(tmp_path):
    ok = _train(tmp_path, "--set", "data.synthetic.rows=10000", "--set", "train.epochs=1", "--quiet")
    assert ok.exit_code == 0, ok.output
    before = (tmp_path / "run" / "result.json").read_text()
    other = _train(tmp_path, "--set", "data.synthetic.rows=10000", "--set", "train.epochs=2")
    assert other.exit_code == 2 and "different configuration" in other.output
    assert (tmp_path / "run" / "result.json").read_text() == before


def test_knobs_lists_typed_ranges():
    result = runner.invoke(app, ["knobs", "--model", "dcnv2", "--json"])
    assert result.exit_code == 0, result.output
    knobs = {k["path"]: k for k in json.loads(result.output)}
    assert knobs["model.num_cross_layers"]["kind"] == "int"
    assert knobs["train.optimizer"]["choices"] == ["adam", "adamw", "adagrad"]
    assert knobs["model.dropout"]["high"] is not None
    widths = knobs["model.hidden_units"]
    assert widths["kind"] == "int_tuple" and widths["low"] >= 1 and widths["max_length"] is not None
    bad = runner.invoke(app, ["knobs", "--model", "nope"])
    assert bad.exit_code == 2 and "unknown model" in bad.output


def test_a_model_setting_that_does_not_fit_the_data_is_a_config_error(tmp_path):
    result = _train(tmp_path, "--set", "data.synthetic.rows=10000", "--set", "model.name=finalmlp",
                    "--set", "model.fs1_context=[no_such_field]")
    assert result.exit_code == 2, result.output
    assert "model:" in result.output and "no_such_field" in result.output
    assert not (tmp_path / "run").exists()


def test_asking_for_cuda_without_a_gpu_is_a_config_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    result = _train(tmp_path, "--set", "train.device=cuda")
    assert result.exit_code == 2 and "train.device" in result.output
    assert not (tmp_path / "run").exists()


def test_version_and_the_list_of_campaigns(tmp_path, monkeypatch):
    from importlib.metadata import version

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.output.strip() == f"rankwright {version('rankwright')}"
    empty = runner.invoke(app, ["campaigns"])
    assert empty.exit_code == 0 and "no store here" in empty.output
    assert not (tmp_path / ".rankwright").exists()  # looking creates nothing
    (tmp_path / "c.yaml").write_text("name: listed-one\nbudget: {amount: 1.0}\n"
                                     "base_config: {data: {synthetic: {rows: 10000}}, train: {epochs: 1}}\n")
    assert runner.invoke(app, ["plan", str(tmp_path / "c.yaml"), "--skip-smoke"]).exit_code in (0, 1)
    listed = runner.invoke(app, ["campaigns"])
    assert listed.exit_code == 0 and "listed-one" in listed.output and "draft" in listed.output


def test_quiet_output_is_valid_json_even_with_undefined_metrics():
    from rankwright.finite_json import finite

    out = json.dumps(finite({"valid": {"auc": float("nan"), "ne": 0.9}, "x": [float("inf")]}), allow_nan=False)
    assert json.loads(out) == {"valid": {"auc": None, "ne": 0.9}, "x": [None]}


def test_an_unwritable_folder_is_said_in_words_with_exit_1(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for option in ("--run-dir", "--cache-dir"):
        done = subprocess.run([sys.executable, "-m", "rankwright", "train", "--set", "data.synthetic.rows=10000",
                               "--set", "train.epochs=1", option, str(blocker / "inside")],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "a-file" in done.stderr and "writable" in done.stderr


def test_knobs_of_a_target_yaml_with_their_roles(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples/targets/sklearn_logreg/target.yaml"
    shown = runner.invoke(app, ["knobs", "--target", str(example)])
    assert shown.exit_code == 0 and "knobs of target sklearn-logreg" in shown.output and "model.C" in shown.output
    target = tmp_path / "t.yaml"
    target.write_text("name: t\ncommand: [run]\nknobs:\n  - {path: opt.lr, kind: float, low: 0.0001, high: 1}\n")
    shown = runner.invoke(app, ["knobs", "--target", str(target)])
    assert "(role: learning_rate)" in " ".join(shown.output.split())
    missing = runner.invoke(app, ["knobs", "--target", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "give the path of the target's YAML file" in " ".join(missing.output.split())
