"""The optional LLM backend against a local server speaking each protocol: good answers are
validated against the real built-in target, and every remote failure becomes a fallback
reason instead of an exception."""

import json
import os
import sys
import time

import pytest

pytest.importorskip("openai")
pytest.importorskip("anthropic")

from rankwright.hypotheses.llm import (  # noqa: E402
    ANTHROPIC_TOOL_NAME,
    OPENAI_RESPONSE_SCHEMA,
    PLACEHOLDER_API_KEY,
    SUGGESTION_SCHEMA,
    LLMConfig,
    LLMConfigError,
    LLMOutcome,
    build_messages,
    llm_config_from_env,
    parse_answer,
    suggest,
)
from rankwright.targets.builtin import builtin_target  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from llm_server import (  # noqa: E402
    ANTHROPIC_PATH,
    OPENAI_PATH,
    LLMServer,
    Reply,
    anthropic_error,
    anthropic_message,
    openai_completion,
    openai_error,
    text_block,
    tool_use,
)

TARGET = builtin_target("dnn")
KNOBS = [k.model_dump(mode="json") for k in TARGET.knobs]
BASELINE = {
    "config": {"model": {"embedding_dim": 10, "dropout": 0.2}, "train": {"learning_rate": 0.001}},
    "result": {"valid": {"ne": 0.8123, "auc": 0.7712}, "train": {"ne": 0.7401}},
}
DIAGNOSIS = [{"signal": "overfitting", "evidence": "train/valid NE gap 0.072, valid loss rising after epoch 2"}]
INSIGHTS = [{"technique": "embedding_l2", "summary": "embedding L2 of 1e-5 cut valid NE by 0.4% on Criteo"}]

GOOD = {
    "suggestions": [
        {
            "name": "more-dropout",
            "changes": {"model.dropout": 0.3},
            "expected_effect": -0.002,
            "confidence": 0.6,
            "reason": "the train/valid gap says the DNN overfits",
        },
        {
            "name": "embedding-l2",
            "changes": {"model.embedding_l2": 1e-5, "model.hidden_units": [400.0, 200]},
            "expected_effect": -0.004,
            "confidence": 0.5,
            "reason": "the insight on Criteo",
        },
    ],
}
BAD_KNOBS = {
    "suggestions": [
        GOOD["suggestions"][0],
        {"name": "typo", "changes": {"model.embeding_dim": 16}, "expected_effect": -0.001,
         "confidence": 0.4, "reason": "wider"},
        {"name": "too-much-dropout", "changes": {"model.dropout": 1.5}, "expected_effect": -0.001,
         "confidence": 0.4, "reason": "more"},
        {"name": "nothing", "changes": {}, "expected_effect": 0.0, "confidence": 0.1, "reason": "none"},
        {"name": "again", "changes": {"model.dropout": 0.3}, "expected_effect": -0.002,
         "confidence": 0.6, "reason": "same as the first"},
        {"name": "sure", "changes": {"train.learning_rate": 0.002}, "expected_effect": -0.001,
         "confidence": 1.7, "reason": "overconfident"},
    ],
}


def as_openai(answer):
    """The strict wire form: changes as [{knob, value}], refusal always present."""
    return {
        "suggestions": [
            {**s, "changes": [{"knob": k, "value": v} for k, v in s["changes"].items()]}
            for s in answer["suggestions"]
        ],
        "refusal": answer.get("refusal"),
    }


@pytest.fixture(autouse=True)
def no_proxy_or_endpoint_overrides(monkeypatch):
    """The clients read proxies and default endpoints from the environment; the tests must not."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def llm_server():
    with LLMServer() as server:
        yield server


@pytest.fixture
def server(llm_server):
    llm_server.reset()
    yield llm_server
    llm_server.reset()


def openai_config(server, **kw):
    return LLMConfig(provider="openai", base_url=server.url + "/v1", model="qwen-test", **kw)


def anthropic_config(server, **kw):
    return LLMConfig(provider="anthropic", base_url=server.url, model="claude-test", **kw)


def anthropic_key(headers):
    """The key as sent: `x-api-key` (anthropic < 2) or a bearer token (newer clients)."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    return headers.get("authorization", "").removeprefix("Bearer ")


def ask(config):
    return suggest(config, baseline=BASELINE, knobs=KNOBS, diagnosis=DIAGNOSIS, insights=INSIGHTS,
                   validate=TARGET.validate_changes)


# --- configuration ------------------------------------------------------------------------
def test_off_by_default():
    assert llm_config_from_env({}) is None
    assert llm_config_from_env({"RANKWRIGHT_LLM_PROVIDER": "  "}) is None
    assert llm_config_from_env({"OPENAI_API_KEY": "sk-x", "RANKWRIGHT_LLM_MODEL": "m"}) is None


def test_missing_model_names_the_variable():
    with pytest.raises(LLMConfigError, match="RANKWRIGHT_LLM_MODEL"):
        llm_config_from_env({"RANKWRIGHT_LLM_PROVIDER": "openai"})
    with pytest.raises(LLMConfigError, match="RANKWRIGHT_LLM_PROVIDER"):
        llm_config_from_env({"RANKWRIGHT_LLM_PROVIDER": "gemini", "RANKWRIGHT_LLM_MODEL": "m"})
    with pytest.raises(LLMConfigError, match="RANKWRIGHT_LLM_TIMEOUT"):
        llm_config_from_env({"RANKWRIGHT_LLM_PROVIDER": "openai", "RANKWRIGHT_LLM_MODEL": "m",
                             "RANKWRIGHT_LLM_TIMEOUT": "soon"})
    assert issubclass(LLMConfigError, ValueError)


def test_full_config_and_key_fallback():
    env = {"RANKWRIGHT_LLM_PROVIDER": "OpenAI", "RANKWRIGHT_LLM_MODEL": "qwen2.5-7b",
           "RANKWRIGHT_LLM_URL": "http://localhost:8000/v1", "RANKWRIGHT_LLM_TIMEOUT": "12.5",
           "OPENAI_API_KEY": "sk-openai-secret", "ANTHROPIC_API_KEY": "sk-ant-secret"}
    config = llm_config_from_env(env)
    assert (config.provider, config.model, config.base_url, config.timeout_s) == (
        "openai", "qwen2.5-7b", "http://localhost:8000/v1", 12.5)
    assert config.api_key.get_secret_value() == "sk-openai-secret"
    config = llm_config_from_env({**env, "RANKWRIGHT_LLM_PROVIDER": "anthropic"})
    assert config.api_key.get_secret_value() == "sk-ant-secret"
    assert config.base_url == "http://localhost:8000/v1"
    config = llm_config_from_env({**env, "RANKWRIGHT_LLM_API_KEY": "rw-secret"})
    assert config.api_key.get_secret_value() == "rw-secret"
    config = llm_config_from_env({"RANKWRIGHT_LLM_PROVIDER": "openai", "RANKWRIGHT_LLM_MODEL": "m"})
    assert config.api_key is None and config.base_url is None and config.timeout_s == 60


def test_key_never_printed():
    config = llm_config_from_env({"RANKWRIGHT_LLM_PROVIDER": "openai", "RANKWRIGHT_LLM_MODEL": "m",
                                  "RANKWRIGHT_LLM_API_KEY": "sk-do-not-leak"})
    for text in (repr(config), str(config), config.model_dump_json(), repr(config.model_dump())):
        assert "sk-do-not-leak" not in text
    with pytest.raises(Exception):
        LLMConfig(provider="openai", model="m", temperature=0.1)  # extra fields are refused
    with pytest.raises(Exception):
        config.model = "other"  # frozen


# --- the schema and the prompt ------------------------------------------------------------
def _objects(schema):
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from _objects(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _objects(value)


def test_openai_schema_is_strict_compatible():
    objects = list(_objects(OPENAI_RESPONSE_SCHEMA))
    assert len(objects) == 3
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    assert SUGGESTION_SCHEMA["properties"]["suggestions"]["items"]["required"] == [
        "name", "changes", "expected_effect", "confidence", "reason"]


def test_prompt_is_compact_deterministic_and_complete():
    one = build_messages(BASELINE, KNOBS, DIAGNOSIS, INSIGHTS, 5)
    two = build_messages(dict(reversed(list(BASELINE.items()))), KNOBS, DIAGNOSIS, INSIGHTS, 5)
    assert one == two
    assert [m["role"] for m in one] == ["system", "user"]
    system, user = one[0]["content"], one[1]["content"]
    assert "only the knob paths" in system and "At most 5" in system
    assert json.dumps(SUGGESTION_SCHEMA, sort_keys=True, separators=(",", ":")) in system
    for knob in TARGET.knobs:
        assert f'"path":"{knob.path}"' in user
    assert '"allowed":"[0, 1)"' in user  # model.dropout's range
    assert "relu | gelu | silu | prelu" in user
    assert "train/valid NE gap 0.072" in user and "embedding L2 of 1e-5" in user
    assert '"ne":0.8123' in user and ": " not in user.split("\n")[1]


# --- OpenAI-compatible --------------------------------------------------------------------
def test_openai_good_answer(server):
    server.reply_openai(openai_completion(json.dumps(as_openai(GOOD))))
    outcome = ask(openai_config(server, api_key="sk-test-key"))
    assert outcome.ok and outcome.fallback_reason is None and outcome.rejected == ()
    assert [s.name for s in outcome.suggestions] == ["more-dropout", "embedding-l2"]
    first, second = outcome.suggestions
    assert first.changes == {"model.dropout": 0.3}
    assert (first.expected_effect, first.confidence) == (-0.002, 0.6)
    assert second.changes == {"model.embedding_l2": 1e-5, "model.hidden_units": [400, 200]}
    assert all(type(w) is int for w in second.changes["model.hidden_units"])
    assert outcome.usage["prompt_tokens"] == 321

    (request,) = server.requests
    assert request.path == OPENAI_PATH
    assert request.headers["authorization"] == "Bearer sk-test-key"
    body = request.body
    assert body["model"] == "qwen-test"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == OPENAI_RESPONSE_SCHEMA
    prompt = "\n".join(m["content"] for m in body["messages"])
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert '"path":"model.embedding_dim"' in prompt and "train/valid NE gap" in prompt
    assert "embedding L2 of 1e-5" in prompt
    assert "sk-test-key" not in json.dumps(body)


def test_openai_rejects_invalid_suggestions_with_reasons(server):
    server.reply_openai(openai_completion(json.dumps(as_openai(BAD_KNOBS))))
    outcome = ask(openai_config(server))
    assert outcome.ok
    assert [s.name for s in outcome.suggestions] == ["more-dropout"]
    reasons = dict(outcome.rejected)
    assert list(reasons) == ["typo", "too-much-dropout", "nothing", "again", "sure"]
    assert "model.embeding_dim" in reasons["typo"] and "did you mean model.embedding_dim" in reasons["typo"]
    assert "model.dropout" in reasons["too-much-dropout"] and "1.5" in reasons["too-much-dropout"]
    assert reasons["nothing"] == "no changes"
    assert "duplicate" in reasons["again"] and "more-dropout" in reasons["again"]
    assert "confidence" in reasons["sure"]
    # no key configured: the placeholder local servers ignore
    assert server.requests[0].headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


def test_openai_all_rejected_falls_back(server):
    answer = {"suggestions": [BAD_KNOBS["suggestions"][1], BAD_KNOBS["suggestions"][2]]}
    server.reply_openai(openai_completion(json.dumps(as_openai(answer))))
    outcome = ask(openai_config(server))
    assert not outcome.ok and outcome.suggestions == ()
    assert "all rejected" in outcome.fallback_reason
    assert [name for name, _ in outcome.rejected] == ["typo", "too-much-dropout"]


def test_openai_limits_the_number_of_suggestions(server):
    server.reply_openai(openai_completion(json.dumps(as_openai(GOOD))))
    outcome = ask(openai_config(server, max_suggestions=1))
    assert [s.name for s in outcome.suggestions] == ["more-dropout"]
    assert outcome.rejected == (("embedding-l2", "over the limit of 1 suggestions"),)
    assert "At most 1 suggestions" in server.requests[0].body["messages"][0]["content"]


@pytest.mark.parametrize(
    "reply, expected",
    [
        (openai_completion("Sure! Try more dropout."), "not valid JSON for the schema"),
        (openai_completion(json.dumps({"ideas": ["more dropout"]})), "no 'suggestions'"),
        (openai_completion(json.dumps({"suggestions": [{"name": "x", "changes": {"model.dropout": 0.3}}]})),
         "lacks expected_effect, confidence, reason"),
        (openai_completion(json.dumps({"suggestions": [{**GOOD["suggestions"][0], "confidence": "high"}]})),
         "confidence is not a number"),
        (openai_completion('{"suggestions": [', finish_reason="length"), "cut off"),
        (openai_completion(None, refusal="I can't help with that."), "LLM refused: I can't help with that."),
        (openai_completion(json.dumps({"suggestions": [], "refusal": "not enough information"})),
         "LLM refused: not enough information"),
        (openai_completion(json.dumps({"suggestions": [], "refusal": None})), "LLM proposed no suggestions"),
        (openai_error(500, "boom"), "HTTP 500"),
        (openai_error(401, "bad key"), "HTTP 401"),
        (Reply("<html>bad gateway</html>", 200), "not a chat completion"),
    ],
    ids=["prose", "wrong-keys", "missing-fields", "wrong-type", "truncated", "refusal", "refusal-field",
         "empty", "http-500", "http-401", "not-json-body"],
)
def test_openai_failures_fall_back(server, reply, expected):
    server.reply_openai(reply)
    outcome = ask(openai_config(server))
    assert isinstance(outcome, LLMOutcome)
    assert outcome.suggestions == () and not outcome.ok
    assert expected in outcome.fallback_reason
    assert len(server.requests) == 1  # max_retries=0: no retry on errors


def test_openai_fenced_json_is_accepted(server):
    server.reply_openai(openai_completion("```json\n" + json.dumps(GOOD) + "\n```"))
    outcome = ask(openai_config(server))
    assert [s.name for s in outcome.suggestions] == ["more-dropout", "embedding-l2"]


def test_openai_timeout(server):
    server.reply_openai(Reply(openai_completion(json.dumps(as_openai(GOOD))), delay_s=5))
    start = time.monotonic()
    outcome = ask(openai_config(server, timeout_s=0.5))
    assert time.monotonic() - start < 3
    assert outcome.fallback_reason == "LLM timed out after 0.5s"
    assert outcome.suggestions == ()


def test_connection_refused_falls_back():
    with LLMServer() as gone:
        url = gone.url
    for config in (LLMConfig(provider="openai", base_url=url + "/v1", model="m", timeout_s=2),
                   LLMConfig(provider="anthropic", base_url=url, model="m", timeout_s=2)):
        outcome = suggest(config, baseline={}, knobs=KNOBS, diagnosis=[], insights=[],
                          validate=TARGET.validate_changes)
        assert outcome.fallback_reason.startswith("LLM connection to ")


# --- Anthropic ----------------------------------------------------------------------------
def test_anthropic_tool_answer(server):
    server.reply_anthropic(anthropic_message([text_block("Here you go."), tool_use(ANTHROPIC_TOOL_NAME, GOOD)]))
    outcome = ask(anthropic_config(server, api_key="sk-ant-test"))
    assert outcome.ok and [s.name for s in outcome.suggestions] == ["more-dropout", "embedding-l2"]
    assert outcome.suggestions[1].changes["model.hidden_units"] == [400, 200]
    assert outcome.usage["input_tokens"] == 321

    (request,) = server.requests
    assert request.path == ANTHROPIC_PATH
    assert anthropic_key(request.headers) == "sk-ant-test"
    body = request.body
    assert body["model"] == "claude-test" and body["max_tokens"] > 0
    assert body["tools"][0]["name"] == ANTHROPIC_TOOL_NAME
    assert body["tools"][0]["input_schema"] == SUGGESTION_SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": ANTHROPIC_TOOL_NAME}
    assert [m["role"] for m in body["messages"]] == ["user"]
    system = body["system"] if isinstance(body["system"], str) else " ".join(b["text"] for b in body["system"])
    assert "only the knob paths" in system
    user = body["messages"][0]["content"]
    user = user if isinstance(user, str) else " ".join(b["text"] for b in user)
    assert '"path":"train.learning_rate"' in user and "train/valid NE gap" in user and "embedding L2" in user


def test_anthropic_plain_json_text(server):
    server.reply_anthropic(anthropic_message([text_block(json.dumps(BAD_KNOBS))], stop_reason="end_turn"))
    outcome = ask(anthropic_config(server))
    assert [s.name for s in outcome.suggestions] == ["more-dropout"]
    assert "model.embeding_dim" in dict(outcome.rejected)["typo"]
    assert anthropic_key(server.requests[0].headers) == PLACEHOLDER_API_KEY


@pytest.mark.parametrize(
    "reply, expected",
    [
        (anthropic_message([text_block("I would add dropout.")], stop_reason="end_turn"),
         "not valid JSON for the schema"),
        (anthropic_message([tool_use(ANTHROPIC_TOOL_NAME, {"hypotheses": []})]), "no 'suggestions'"),
        (anthropic_message([tool_use(ANTHROPIC_TOOL_NAME, {"suggestions": "more dropout"})]),
         "'suggestions' is not an array"),
        (anthropic_message([text_block("I can't help.")], stop_reason="refusal"), "LLM refused"),
        (anthropic_message([tool_use(ANTHROPIC_TOOL_NAME, {"suggestions": [], "refusal": "no data"})]),
         "LLM refused: no data"),
        (anthropic_message([tool_use(ANTHROPIC_TOOL_NAME, {"suggestions": []})], stop_reason="max_tokens"),
         "cut off"),
        (anthropic_error(500, "boom"), "HTTP 500"),
        (anthropic_error(529, "overloaded"), "HTTP 529"),
        (Reply("<html>bad gateway</html>", 200), "not a message"),
    ],
    ids=["prose", "wrong-keys", "wrong-type", "refusal", "refusal-field", "truncated", "http-500", "overloaded",
         "not-json-body"],
)
def test_anthropic_failures_fall_back(server, reply, expected):
    server.reply_anthropic(reply)
    outcome = ask(anthropic_config(server))
    assert outcome.suggestions == () and expected in outcome.fallback_reason
    assert len(server.requests) == 1


def test_anthropic_timeout(server):
    server.reply_anthropic(Reply(anthropic_message([tool_use(ANTHROPIC_TOOL_NAME, GOOD)]), delay_s=5))
    start = time.monotonic()
    outcome = ask(anthropic_config(server, timeout_s=0.5))
    assert time.monotonic() - start < 3
    assert outcome.fallback_reason == "LLM timed out after 0.5s"


# --- parsing without a server -------------------------------------------------------------
def test_parse_answer_accepts_both_change_forms_and_checks_names():
    answer = {
        "suggestions": [
            {**GOOD["suggestions"][0]},
            {**as_openai(GOOD)["suggestions"][1]},
            {**GOOD["suggestions"][1], "name": "more-dropout"},
            {**GOOD["suggestions"][1], "name": "twice",
             "changes": [{"knob": "model.dropout", "value": 0.1}, {"knob": "model.dropout", "value": 0.2}]},
        ],
    }
    outcome = parse_answer(answer, TARGET.validate_changes, 8)
    assert [s.name for s in outcome.suggestions] == ["more-dropout", "embedding-l2"]
    assert dict(outcome.rejected) == {"more-dropout": "duplicate name",
                                      "twice": "knob model.dropout set more than once"}
    assert parse_answer([1, 2], TARGET.validate_changes, 8).fallback_reason.startswith(
        "LLM answer was not valid JSON for the schema")
