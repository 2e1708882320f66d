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
