"""The LLM as a source of a campaign's hypotheses, through `rankwright hypotheses` with the
endpoint configured in the environment (a local server; no network): its valid suggestions
are ranked beside the offline ones with source `llm`, invalid ones are rejected with the
reason, and a timeout falls back to the offline sources and says so."""

import json
import os
import sys

import pytest
import yaml
from typer.testing import CliRunner

from rankwright.cli.main import app

pytest.importorskip("openai")
sys.path.insert(0, os.path.dirname(__file__))
from llm_server import LLMServer, Reply, openai_completion  # noqa: E402

runner = CliRunner()
ANSWER = {"suggestions": [
    {"name": "wider-first-layer", "changes": [{"knob": "model.hidden_units", "value": [512, 128]}],
     "expected_effect": -0.004, "confidence": 0.7, "reason": "the baseline underfits with 256 units"},
    {"name": "made-up-knob", "changes": [{"knob": "model.turbo", "value": True}],
     "expected_effect": -0.01, "confidence": 0.9, "reason": "trust me"},
], "refusal": None}


@pytest.fixture
def campaign(tmp_path, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "RANKWRIGHT_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path / 'rw.db'}")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "llm-c", "budget": {"amount": 1.0},
                                    "base_config": {"model": {"hidden_units": [256, 128]}}}))
    with LLMServer() as server:
        monkeypatch.setenv("RANKWRIGHT_LLM_PROVIDER", "openai")
        monkeypatch.setenv("RANKWRIGHT_LLM_MODEL", "local-test")
        monkeypatch.setenv("RANKWRIGHT_LLM_URL", server.url + "/v1")
        yield path, server


def test_llm_suggestions_are_ranked_with_the_offline_ones_and_invalid_ones_rejected(campaign):
    path, server = campaign
    server.reply_openai(openai_completion(json.dumps(ANSWER)))
    shown = runner.invoke(app, ["hypotheses", str(path), "--top", "60"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "llm:wider-first-layer (llm)" in text and "the baseline underfits with 256 units" in text
    assert "made-up-knob' rejected" in text and "model.turbo" in text
    assert "(knowledge)" in text  # the offline sources are still there
    prompt = "\n".join(m["content"] for m in server.requests[0].body["messages"])
    assert "model.hidden_units" in prompt  # it was given the knob schema


def test_an_llm_timeout_falls_back_to_the_offline_sources(campaign, monkeypatch):
    path, server = campaign
    monkeypatch.setenv("RANKWRIGHT_LLM_TIMEOUT", "0.5")
    server.reply_openai(Reply(body=openai_completion(json.dumps(ANSWER)), delay_s=5.0))
    shown = runner.invoke(app, ["hypotheses", str(path)])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "fell back to the offline source: LLM timed out" in text
    assert "llm:" not in text and "(knowledge)" in text
