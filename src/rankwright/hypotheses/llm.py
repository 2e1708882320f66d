"""An optional LLM source of hypotheses, behind the offline knowledge base.

The research agent can ask a chat model for knob changes: any OpenAI-compatible endpoint
(vLLM, llama.cpp server, Ollama, hosted APIs) through the official `openai` client, or
Anthropic through the `anthropic` client (install both with `pip install 'rankwright[llm]'`).
The model sees the baseline, the knob schema, the diagnosis and the relevant insights and
must answer in a JSON schema. Nothing it says is trusted: every suggestion goes through the
target's `validate_changes` and is rejected, with the reason, when it is invalid.

`suggest` never raises for anything the remote side does (timeouts, refused connections,
HTTP errors, bad JSON, refusals): it returns an `LLMOutcome` whose `fallback_reason` says
why the caller should fall back to the offline source. The LLM is off unless
`RANKWRIGHT_LLM_PROVIDER` is set; see `llm_config_from_env` for the variables.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

__all__ = [
    "ANTHROPIC_TOOL_NAME",
    "ENV_API_KEY",
    "ENV_MODEL",
    "ENV_PROVIDER",
    "ENV_TIMEOUT",
    "ENV_URL",
    "OPENAI_RESPONSE_SCHEMA",
    "PLACEHOLDER_API_KEY",
    "SUGGESTION_SCHEMA",
    "LLMConfig",
    "LLMConfigError",
    "LLMOutcome",
    "LLMSuggestion",
    "build_messages",
    "llm_config_from_env",
    "parse_answer",
    "suggest",
]

ENV_PROVIDER = "RANKWRIGHT_LLM_PROVIDER"
ENV_URL = "RANKWRIGHT_LLM_URL"
ENV_MODEL = "RANKWRIGHT_LLM_MODEL"
ENV_API_KEY = "RANKWRIGHT_LLM_API_KEY"
ENV_TIMEOUT = "RANKWRIGHT_LLM_TIMEOUT"
_PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}

# Local servers (vLLM, llama.cpp, Ollama) ignore the key, but both clients insist on one.
PLACEHOLDER_API_KEY = "not-needed"
ANTHROPIC_TOOL_NAME = "propose_hypotheses"
_OPENAI_SCHEMA_NAME = "rankwright_hypotheses"
_ANTHROPIC_MAX_TOKENS = 4096  # required by the Messages API; ample for a few suggestions
_MAX_REASON_CHARS = 300


class LLMConfigError(ValueError):
    """The LLM settings in the environment are incomplete or wrong; the message names the variable."""


class LLMConfig(BaseModel):
    """Where and how to ask a chat model; the key is a SecretStr so it never lands in logs or reprs.

    `base_url` is the provider's API root: for OpenAI-compatible servers usually ending in
    `/v1` (e.g. `http://localhost:8000/v1`); for Anthropic the host without `/v1`. None uses
    the client's default (the hosted API).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Literal["openai", "anthropic"]
    base_url: str | None = None
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    timeout_s: float = Field(60.0, gt=0.0)
    max_suggestions: int = Field(8, ge=1, le=64)


def llm_config_from_env(env: Mapping[str, str] | None = None) -> LLMConfig | None:
    """The LLM settings from the environment; None (the LLM is off) unless the provider is set.

    Variables: `RANKWRIGHT_LLM_PROVIDER` (openai | anthropic), `RANKWRIGHT_LLM_MODEL`
    (required with a provider), `RANKWRIGHT_LLM_URL` (optional), `RANKWRIGHT_LLM_API_KEY`
    (else `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` for the chosen provider; optional, as local
    servers need none) and `RANKWRIGHT_LLM_TIMEOUT` (seconds, optional).
    """
    env = os.environ if env is None else env
    provider = (env.get(ENV_PROVIDER) or "").strip().lower()
    if not provider:
        return None
    if provider not in _PROVIDER_KEYS:
        raise LLMConfigError(f"{ENV_PROVIDER}={provider!r} is not supported; use one of: openai, anthropic")
    model = (env.get(ENV_MODEL) or "").strip()
    if not model:
        raise LLMConfigError(f"{ENV_MODEL} must name the model when {ENV_PROVIDER} is set")
    values: dict[str, Any] = {"provider": provider, "model": model}
    url = (env.get(ENV_URL) or "").strip()
    if url:
        values["base_url"] = url
    key = env.get(ENV_API_KEY) or env.get(_PROVIDER_KEYS[provider])
    if key:
        values["api_key"] = SecretStr(key.strip())
    timeout = (env.get(ENV_TIMEOUT) or "").strip()
    if timeout:
        try:
            seconds = float(timeout)
        except ValueError:
            raise LLMConfigError(f"{ENV_TIMEOUT}={timeout!r} is not a number of seconds") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise LLMConfigError(f"{ENV_TIMEOUT}={timeout!r} must be a positive number of seconds")
        values["timeout_s"] = seconds
    try:
        return LLMConfig(**values)
    except ValidationError as exc:  # pragma: no cover - every field is checked above
        raise LLMConfigError(f"LLM settings are invalid: {exc}") from None


# --- the answer schema --------------------------------------------------------------------
_EFFECT_TEXT = (
    "predicted relative change of the validation normalized entropy (NE) against the baseline; "
    "negative is better, e.g. -0.002 for a 0.2% improvement"
)
_CONFIDENCE_TEXT = "probability, from 0 to 1, that the change improves validation NE"
_REFUSAL_TEXT = "set only when you cannot suggest anything; says why"

# The logical schema, also sent to Anthropic as the forced tool's input schema: `changes`
# maps knob paths (free keys) to new values.
SUGGESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "suggestions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "short unique name of the hypothesis"},
                    "changes": {
                        "type": "object",
                        "description": "knob path -> new value; only knob paths from the knob schema",
                        "additionalProperties": {
                            "type": ["string", "number", "boolean", "array", "null"],
                            "items": {"type": "number"},
                        },
                    },
                    "expected_effect": {"type": "number", "description": _EFFECT_TEXT},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": _CONFIDENCE_TEXT},
                    "reason": {"type": "string", "description": "why this should help, citing the diagnosis"},
                },
                "required": ["name", "changes", "expected_effect", "confidence", "reason"],
            },
        },
        "refusal": {"type": "string", "description": _REFUSAL_TEXT},
    },
    "required": ["suggestions"],
}

# OpenAI strict structured outputs accept no free keys: every object must list all its
# properties as required and set additionalProperties false, optional fields become
# nullable. So `changes` travels as a list of {knob, value} and is converted back. Numeric
# bounds stay in the descriptions (older strict modes rejected minimum/maximum) and are
# checked here instead.
_VALUE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "number"}},
        {"type": "null"},
    ]
}
OPENAI_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "suggestions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "short unique name of the hypothesis"},
                    "changes": {
                        "type": "array",
                        "description": "the knob moves; only knob paths from the knob schema",
                        "items": {
                            "type": "object",
                            "properties": {"knob": {"type": "string"}, "value": _VALUE_SCHEMA},
                            "required": ["knob", "value"],
                            "additionalProperties": False,
                        },
                    },
                    "expected_effect": {"type": "number", "description": _EFFECT_TEXT},
                    "confidence": {"type": "number", "description": _CONFIDENCE_TEXT},
                    "reason": {"type": "string", "description": "why this should help, citing the diagnosis"},
                },
                "required": ["name", "changes", "expected_effect", "confidence", "reason"],
                "additionalProperties": False,
            },
        },
        "refusal": {"type": ["string", "null"], "description": _REFUSAL_TEXT + "; null otherwise"},
    },
    "required": ["suggestions", "refusal"],
    "additionalProperties": False,
}


# --- the prompt ---------------------------------------------------------------------------
def _compact(value: Any) -> str:
    # Sorted keys and no spaces: the same inputs always give the same prompt bytes.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _knob_line(knob: Mapping[str, Any]) -> dict[str, Any]:
    """A knob as the model needs it: path, kind, allowed values, default, meaning."""
    from rankwright.targets import KnobSpec  # local: keeps importing this module light

    try:
        spec = KnobSpec.model_validate(dict(knob))
    except (ValidationError, TypeError, ValueError):
        return {k: v for k, v in dict(knob).items() if v is not None}
    line: dict[str, Any] = {"path": spec.path, "kind": spec.kind, "allowed": spec.describe_range()}
    line["default"] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    if spec.log:
        line["log_scale"] = True
    if spec.description:
        line["description"] = spec.description
    return line


def build_messages(
    baseline: Mapping[str, Any],
    knobs: Sequence[Mapping[str, Any]],
    diagnosis: Sequence[Mapping[str, Any]],
    insights: Sequence[Mapping[str, Any]],
    max_suggestions: int,
    *,
    schema: Mapping[str, Any] | None = None,
) -> list[dict[str, str]]:
    """The system and user messages: rules first, then the facts as compact JSON.

    The schema is repeated in the system message for servers that ignore `response_format`
    or tools (plain JSON text is still parsed). Lists keep the caller's order (the diagnosis
    and insights come ranked); keys are sorted so equal inputs give an identical prompt.
    """
    schema = SUGGESTION_SCHEMA if schema is None else schema
    system = "\n".join(
        [
            "You are the research assistant of Rankwright, an autonomous ranking engineer that tunes "
            "click/conversion ranking models within a compute budget.",
            "Propose hypotheses: each is a small, targeted change of training-config knobs that should "
            "lower the validation normalized entropy (NE) of the baseline.",
            "Rules:",
            "- Use only the knob paths listed in the knob schema, with values of the listed kind inside "
            "the listed allowed range or choices ([ ] inclusive, ( ) exclusive); anything else is rejected.",
            "- Change as few knobs as the idea needs; never repeat the baseline's current value; "
            "no two suggestions with the same changes.",
            f"- At most {max_suggestions} suggestions, best first, each with a unique short name.",
            "- expected_effect: " + _EFFECT_TEXT + ".",
            "- confidence: " + _CONFIDENCE_TEXT + ".",
            "- reason: one or two sentences tying the change to the diagnosis and insights.",
            "- If you cannot suggest anything, return no suggestions and say why in refusal.",
            "Answer with one JSON object matching this JSON schema and nothing else:",
            _compact(schema),
        ]
    )
    user = "\n".join(
        [
            "Baseline (its config and results):",
            _compact(dict(baseline)),
            "Knob schema (the only knobs you may change):",
            _compact([_knob_line(k) for k in knobs]),
            "Diagnosis of the baseline (signals, most important first):",
            _compact([dict(d) for d in diagnosis]),
            "Relevant insights from earlier experiments and the literature:",
            _compact([dict(i) for i in insights]),
            f"Propose up to {max_suggestions} hypotheses.",
        ]
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# --- the outcome --------------------------------------------------------------------------
@dataclass(frozen=True)
class LLMSuggestion:
    """One accepted hypothesis; `changes` are as the target's `validate_changes` returned them."""

    name: str
    changes: dict[str, Any]
    expected_effect: float
    confidence: float
    reason: str


@dataclass(frozen=True)
class LLMOutcome:
    """What one LLM call produced.

    `fallback_reason` is set, and `suggestions` empty, when the caller should use the
    offline source instead; `rejected` holds `(name, reason)` of every suggestion that
    failed validation, so the agent can log why.
    """

    suggestions: tuple[LLMSuggestion, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()
    fallback_reason: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.fallback_reason is None


class _SchemaMismatch(ValueError):
    """The answer's shape breaks the schema (as opposed to a suggestion's content)."""


def _short(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _changes_of(raw: Any, where: str) -> list[tuple[str, Any]]:
    """(knob, value) pairs from either form: {path: value} or [{"knob", "value"}]."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or "knob" not in item or "value" not in item:
                raise _SchemaMismatch(f"{where}.changes[{i}] is not an object with knob and value")
            pairs.append((item["knob"], item["value"]))
    else:
        raise _SchemaMismatch(f"{where}.changes is {type(raw).__name__}, not an object or array")
    for knob, _ in pairs:
        if not isinstance(knob, str):
            raise _SchemaMismatch(f"{where}.changes has a knob that is not a string: {knob!r}")
    return pairs


def _strip_fences(text: str) -> str:
    # Local models like to wrap JSON in a markdown fence even when told not to.
    text = text.strip()
    if text.startswith("```"):
        first_newline = text.find("\n")
        text = text[first_newline + 1 :] if first_newline >= 0 else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _load_json(text: str | None) -> Any:
    if text is None or not text.strip():
        raise _SchemaMismatch("the answer was empty")
    try:
        return json.loads(_strip_fences(text))
    except json.JSONDecodeError as exc:
        raise _SchemaMismatch(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


def parse_answer(
    answer: Any,
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    max_suggestions: int,
    usage: Mapping[str, Any] | None = None,
) -> LLMOutcome:
    """Check a decoded answer (either `changes` form) and validate each suggestion.

    A broken shape (wrong types, missing fields) makes the whole answer invalid, since a
    model that ignores the schema is not trusted piecemeal; bad content (unknown knob, value
    out of range, empty or duplicate changes, confidence outside 0..1, too many) rejects
    only that suggestion.
    """
    usage = dict(usage or {})

    def fallback(reason: str, rejected: Sequence[tuple[str, str]] = ()) -> LLMOutcome:
        return LLMOutcome(rejected=tuple(rejected), fallback_reason=reason, usage=usage)

    try:
        items = _shape(answer)
    except _SchemaMismatch as exc:
        return fallback(f"LLM answer was not valid JSON for the schema: {_short(exc)}")
    refusal = answer.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        return fallback(f"LLM refused: {_short(refusal)}")

    accepted: list[LLMSuggestion] = []
    rejected: list[tuple[str, str]] = []
    seen_names: set[str] = set()
    seen_changes: dict[str, str] = {}
    for name, pairs, effect, confidence, reason in items:
        problem = None
        validated: dict[str, Any] = {}
        knobs = [k for k, _ in pairs]
        repeated = sorted({k for k in knobs if knobs.count(k) > 1})
        if len(accepted) >= max_suggestions:
            problem = f"over the limit of {max_suggestions} suggestions"
        elif not name:
            problem = "no name"
        elif name in seen_names:
            problem = "duplicate name"
        elif not pairs:
            problem = "no changes"
        elif repeated:
            problem = f"knob {', '.join(repeated)} set more than once"
        elif not math.isfinite(effect):
            problem = f"expected_effect {effect!r} is not a finite number"
        elif not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            problem = f"confidence {confidence!r} is outside 0..1"
        else:
            try:
                validated = validate(dict(pairs))
            except (ValueError, TypeError) as exc:  # TargetError is a ValueError
                problem = _short(exc) or type(exc).__name__
        if problem is None:
            key = _compact(validated)
            if key in seen_changes:
                problem = f"duplicate: same changes as {seen_changes[key]!r}"
        if problem is not None:
            rejected.append((name or "(unnamed)", problem))
            continue
        seen_names.add(name)
        seen_changes[_compact(validated)] = name
        accepted.append(LLMSuggestion(name, validated, float(effect), float(confidence), reason))

    if not accepted:
        if not rejected:
            return fallback("LLM proposed no suggestions")
        return fallback(f"LLM suggestions were all rejected ({len(rejected)})", rejected)
    return LLMOutcome(suggestions=tuple(accepted), rejected=tuple(rejected), usage=usage)


def _shape(answer: Any) -> list[tuple[str, list[tuple[str, Any]], float, float, str]]:
    if not isinstance(answer, Mapping):
        raise _SchemaMismatch(f"the answer is {type(answer).__name__}, not an object")
    if "suggestions" not in answer:
        raise _SchemaMismatch("the answer has no 'suggestions'")
    refusal = answer.get("refusal")
    if refusal is not None and not isinstance(refusal, str):
        raise _SchemaMismatch("'refusal' is not a string")
    raw_items = answer["suggestions"]
    if not isinstance(raw_items, list):
        raise _SchemaMismatch("'suggestions' is not an array")
    items = []
    for i, raw in enumerate(raw_items):
        where = f"suggestions[{i}]"
        if not isinstance(raw, Mapping):
            raise _SchemaMismatch(f"{where} is not an object")
        missing = [k for k in ("name", "changes", "expected_effect", "confidence", "reason") if k not in raw]
        if missing:
            raise _SchemaMismatch(f"{where} lacks {', '.join(missing)}")
        for key in ("name", "reason"):
            if not isinstance(raw[key], str):
                raise _SchemaMismatch(f"{where}.{key} is not a string")
        for key in ("expected_effect", "confidence"):
            if not _is_number(raw[key]):
                raise _SchemaMismatch(f"{where}.{key} is not a number")
        pairs = _changes_of(raw["changes"], where)
        items.append(
            (raw["name"].strip(), pairs, float(raw["expected_effect"]), float(raw["confidence"]), raw["reason"].strip())
        )
    return items


# --- the providers ------------------------------------------------------------------------
def _key(config: LLMConfig) -> str:
    return config.api_key.get_secret_value() if config.api_key is not None else PLACEHOLDER_API_KEY


def _ask_openai(config: LLMConfig, messages: list[dict[str, str]], schema: dict[str, Any] | None = None,
                name: str = "") -> tuple[Any, dict[str, Any]]:
    """The decoded answer and the token usage; raises the client's errors or _SchemaMismatch/_Refused."""
    import openai

    # max_retries=0: the caller falls back to the offline source rather than wait on retries.
    with openai.OpenAI(
        api_key=_key(config), base_url=config.base_url, timeout=config.timeout_s, max_retries=0
    ) as client:
        response = client.chat.completions.create(
            model=config.model,
            messages=messages,  # type: ignore[arg-type]
            response_format={
                "type": "json_schema",
                "json_schema": {"name": name or _OPENAI_SCHEMA_NAME, "schema": schema or OPENAI_RESPONSE_SCHEMA,
                                "strict": True},
            },
        )
    if not hasattr(response, "choices"):  # e.g. an HTML page from a proxy, decoded as text
        raise _SchemaMismatch(f"the response is {type(response).__name__}, not a chat completion")
    usage = _usage(getattr(response, "usage", None))
    choices = response.choices or []
    if not choices:
        raise _SchemaMismatch("the response has no choices")
    choice = choices[0]
    message = choice.message
    refusal = getattr(message, "refusal", None)
    if refusal:
        raise _Refused(refusal)
    if choice.finish_reason == "content_filter":
        raise _Refused("the content filter stopped the answer")
    if choice.finish_reason == "length":
        raise _SchemaMismatch("the answer was cut off at the token limit")
    return _load_json(message.content), usage


def _ask_anthropic(config: LLMConfig, messages: list[dict[str, str]], schema: dict[str, Any] | None = None,
                   name: str = "", description: str = "") -> tuple[Any, dict[str, Any]]:
    """Forces the answer through a tool whose input schema is the answer schema."""
    tool = name or ANTHROPIC_TOOL_NAME
    import anthropic

    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    with anthropic.Anthropic(
        api_key=_key(config), base_url=config.base_url, timeout=config.timeout_s, max_retries=0
    ) as client:
        response = client.messages.create(
            model=config.model,
            max_tokens=_ANTHROPIC_MAX_TOKENS,
            system=system,
            messages=turns,  # type: ignore[arg-type]
            tools=[
                {
                    "name": tool,
                    "description": description or "Record the proposed hypotheses for Rankwright's next experiments.",
                    "input_schema": schema or SUGGESTION_SCHEMA,
                }
            ],
            tool_choice={"type": "tool", "name": tool},
        )
    if not hasattr(response, "content"):
        raise _SchemaMismatch(f"the response is {type(response).__name__}, not a message")
    usage = _usage(getattr(response, "usage", None))
    stop_reason = getattr(response, "stop_reason", None)
    if stop_reason == "refusal":
        raise _Refused("the model stopped with stop_reason 'refusal'")
    blocks = list(getattr(response, "content", None) or [])
    for block in blocks:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == tool:
            if stop_reason == "max_tokens":
                raise _SchemaMismatch("the answer was cut off at the token limit")
            return block.input, usage
    # A compatible server without tool support may still answer with plain JSON text.
    text = "".join(getattr(b, "text", "") for b in blocks if getattr(b, "type", None) == "text")
    if stop_reason == "max_tokens":
        raise _SchemaMismatch("the answer was cut off at the token limit")
    return _load_json(text), usage


class _Refused(Exception):
    """The model declined to answer."""


def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    dump = getattr(usage, "model_dump", None)
    values = dump() if callable(dump) else dict(usage) if isinstance(usage, Mapping) else {}
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _client_error(config: LLMConfig, exc: Exception) -> str | None:
    """A fallback reason for an error raised by the openai or anthropic client, else None."""
    module = type(exc).__module__.split(".")[0]
    if module not in ("openai", "anthropic"):
        return None
    name = type(exc).__name__
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "APITimeoutError" in names:
        return f"LLM timed out after {config.timeout_s:g}s"
    if "APIConnectionError" in names:
        cause = exc.__cause__ or exc.__context__
        detail = f": {_short(cause)}" if cause is not None and str(cause) else ""
        return f"LLM connection to {config.base_url or 'the default endpoint'} failed{detail}"
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"LLM endpoint returned HTTP {status}: {_short(getattr(exc, 'message', exc))}"
    return f"LLM client error ({name}): {_short(exc)}"


def ask_json(config: LLMConfig, messages: list[dict[str, str]], *, openai_schema: dict[str, Any],
             schema: dict[str, Any], name: str, description: str) -> tuple[Any, str | None]:
    """(decoded answer, None), or (None, why nothing usable came back): one structured
    question to the configured model, for any answer schema. Never raises for what the
    remote side does."""
    try:
        if config.provider == "openai":
            answer, _ = _ask_openai(config, messages, openai_schema, name)
        else:
            answer, _ = _ask_anthropic(config, messages, schema, name, description)
        return answer, None
    except ImportError as exc:
        return None, f"the {config.provider} package is not installed ({_short(exc)})"
    except _Refused as exc:
        return None, f"LLM refused: {_short(exc)}"
    except _SchemaMismatch as exc:
        return None, f"LLM answer was not valid JSON for the schema: {_short(exc)}"
    except Exception as exc:  # the remote side must never crash the agent
        return None, _client_error(config, exc) or f"LLM answer had an unexpected shape ({type(exc).__name__})"


def suggest(
    config: LLMConfig,
    *,
    baseline: Mapping[str, Any],
    knobs: Sequence[Mapping[str, Any]],
    diagnosis: Sequence[Mapping[str, Any]],
    insights: Sequence[Mapping[str, Any]],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
) -> LLMOutcome:
    """Ask the configured model for hypotheses and validate each one with `validate`.

    `validate` is the target's `validate_changes`: it returns the coerced changes or raises
    a ValueError (e.g. `TargetError`) whose message becomes the rejection reason. Never
    raises for what the remote side does; `fallback_reason` says why nothing usable came back.
    """
    schema = OPENAI_RESPONSE_SCHEMA if config.provider == "openai" else SUGGESTION_SCHEMA
    messages = build_messages(baseline, knobs, diagnosis, insights, config.max_suggestions, schema=schema)
    ask = _ask_openai if config.provider == "openai" else _ask_anthropic
    try:
        answer, usage = ask(config, messages)
    except ImportError as exc:
        package = "openai" if config.provider == "openai" else "anthropic"
        return LLMOutcome(fallback_reason=f"the {package} package is not installed ({_short(exc)}); "
                          "pip install 'rankwright[llm]'")
    except _Refused as exc:
        return LLMOutcome(fallback_reason=f"LLM refused: {_short(exc)}")
    except _SchemaMismatch as exc:
        return LLMOutcome(fallback_reason=f"LLM answer was not valid JSON for the schema: {_short(exc)}")
    except Exception as exc:  # the remote side must never crash the agent
        reason = _client_error(config, exc)
        if reason is None:
            # A response so malformed that reading it failed (missing fields, wrong types).
            reason = f"LLM answer had an unexpected shape ({type(exc).__name__}: {_short(exc)})"
        return LLMOutcome(fallback_reason=reason)
    return parse_answer(answer, validate, config.max_suggestions, usage)
