"""The example configs shipped in examples/ stay valid, and the Criteo one trains end to end."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankwright.cli.main import app
from rankwright.ranking.config import load_run_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate(path):
    config = load_run_config(path)
    assert config.model.name


def test_criteo_sample_trains_end_to_end(tmp_path, shared_data):
    example = next(p for p in EXAMPLES if p.name == "criteo_sample.yaml")
    result = CliRunner().invoke(app, [
        "train", str(example), "--set", "train.epochs=2", "--quiet",
        "--run-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
    ])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["test"]["rows"] == 391 and out["epochs_run"] == 2
    assert 0.5 < out["test"]["auc"] <= 1.0  # it learns something even from 7,200 rows


CAMPAIGNS = sorted((Path(__file__).resolve().parents[1] / "examples" / "campaigns").glob("*.yaml"))


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.name)
def test_example_campaigns_load_and_their_changes_fit_the_target(path):
    from rankwright.agent.spec import load_campaign

    spec, target = load_campaign(path)
    assert spec.changes or spec.hypotheses.top_k  # something to test beside the baseline
    assert all(target.validate_changes(c.set) for c in spec.changes)


FUXICTR = Path(__file__).resolve().parents[1] / "examples" / "targets" / "fuxictr"


def test_the_fuxictr_example_reaches_its_knobs_by_role_and_runs_in_its_own_environment(tmp_path, monkeypatch):
    """FuxiCTR's names (net_dropout, embedding_regularizer, ...) are reached by role: by the
    knowledge base, the runbook and the default exploitation search space."""
    from rankwright.agent.spec import load_campaign, search_space
    from rankwright.targets import load_target

    target = load_target(FUXICTR / "target.yaml")
    roles = target.role_paths()
    assert roles["dropout"] == "net_dropout" and roles["embedding_l2"] == "embedding_regularizer"
    assert roles["cross_layers"] == "num_cross_layers" and roles["seed"] == "seed"
    command, config = target.render({"learning_rate": 0.0005}, tmp_path)
    assert command[0] == str(FUXICTR / ".venv" / "bin" / "python")  # its interpreter, not ours
    assert "--learning_rate=0.0005" in command and "--dnn_hidden_units=[400, 400, 400]" in command
    data = next(part for part in command if part.startswith("--train_file="))
    assert Path(data.split("=", 1)[1]).is_absolute()  # runs start in their own folder
    assert target.render_env({}, tmp_path)["PYTHONPATH"].endswith("benchmarks/peers")
    spec, _ = load_campaign(FUXICTR.parents[1] / "campaigns" / "fuxictr_frappe.yaml")
    space = search_space(spec, target)
    assert {"learning_rate", "net_dropout", "embedding_regularizer", "embedding_dim"} <= set(space)
    assert space["embedding_regularizer"].low < 0.05 < space["embedding_regularizer"].high  # around the baseline
    monkeypatch.chdir(tmp_path)  # the knowledge base's techniques, translated to FuxiCTR's knobs
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    from rankwright.cli import research

    # the console was made when the module was first imported, maybe at another width than COLUMNS below
    monkeypatch.setattr(research.console, "_width", 200)
    shown = CliRunner().invoke(app, ["hypotheses", str(FUXICTR.parents[1] / "campaigns" / "fuxictr_frappe.yaml")],
                               env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "learning_rate_up" in shown.output and "learning_rate=0.003" in shown.output
    assert "net_regularizer=" in shown.output  # the dense L2 technique, on FuxiCTR's net_regularizer
    assert "num_cross_layers=" in shown.output  # a DCNv2 technique: the target says it trains DCNv2


@pytest.mark.slow
def test_the_fuxictr_example_trains_one_epoch_by_flags(tmp_path, shared_data):
    python = FUXICTR / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"FuxiCTR's environment is not set up ({python}); run examples/targets/fuxictr/setup_env.sh")
    import subprocess

    from rankwright.targets import load_target

    target = load_target(FUXICTR / "target.yaml")
    changes = {**target.smoke_changes(), "train_file": str(shared_data / "frappe" / "frappe_x1_valid.csv"),
               "test_file": str(shared_data / "frappe" / "frappe_x1_test.csv")}
    command, _ = target.render(changes, tmp_path)
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={**__import__("os").environ, **target.render_env(changes, tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = target.read_result(tmp_path)
    assert 0.8 < result["metrics"]["valid"]["auc"] < 1.0 and result["objective"] > 0
    assert target.read_losses(tmp_path) and target.heartbeat_age(tmp_path) is not None
