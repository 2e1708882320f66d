"""Debugging from first principles: for a failure the runbook cannot name, the configured
LLM reads the log tail and the run's config and proposes one of the runbook's remedies,
optionally with knob changes. The answer is checked like every other suggestion: the
action must be one the runbook knows, every knob must be in the target's schema, inside
its bounds and among the knobs the engineer approved; anything else is refused, and the
runbook's own remedy for `unknown` applies. Asked only for failures classified `unknown`."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from rankwright.agent.triage import Diagnosis, Treatment

ACTIONS = ("retry", "resume", "invalid", "quarantine")
_CHANGE = {"type": "object", "properties": {"knob": {"type": "string"},
                                            "value": {"anyOf": [{"type": "string"}, {"type": "number"},
                                                                {"type": "boolean"}, {"type": "null"}]}},
           "required": ["knob", "value"], "additionalProperties": False}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": list(ACTIONS),
                   "description": "retry: from scratch, with the changes; resume: from the last checkpoint, unchanged; "
                                  "invalid: this configuration cannot run, do not retry; quarantine: a person must look"},
        "changes": {"type": "array", "items": _CHANGE, "description": "knob moves for a retry (may be empty)"},
        "kind": {"type": "string", "description": "what went wrong, in a few words"},
        "reason": {"type": "string", "description": "the evidence in the log that says so"},
    },
    "required": ["action", "changes", "kind", "reason"],
    "additionalProperties": False,
}


def messages(diagnosis: Diagnosis, config: Mapping[str, Any], knobs: list[Mapping[str, Any]],
             allowed: list[str]) -> list[dict[str, str]]:
    system = ("You triage failed training runs of a ranking model for an autonomous ML engineer. Read the log tail and "
              "the configuration, find the cause, and answer with one remedy as JSON. Change only knobs from the list "
              "given, inside their bounds; propose no change you cannot justify from the log.")
    user = json.dumps({"evidence": diagnosis.evidence, "log_tail": diagnosis.excerpt[-4000:], "config": config,
                       "knobs_you_may_change": [k for k in knobs if k.get("path") in allowed]}, default=str)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse(answer: Any, validate: Callable[[dict[str, Any]], dict[str, Any]], allowed: set[str]) -> tuple[Treatment | None, str]:
    """(treatment, note): the model's remedy if it passes every check, else (None, why not)."""
    if not isinstance(answer, Mapping) or answer.get("action") not in ACTIONS:
        return None, f"the answer names no known action ({str(answer)[:120]!r})"
    changes = {}
    for item in answer.get("changes") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("knob"), str):
            return None, "a change is not {knob, value}"
        changes[item["knob"]] = item.get("value")
    outside = sorted(set(changes) - allowed)
    if outside:
        return None, f"it changes knobs the engineer did not approve: {', '.join(outside)}"
    try:
        changes = validate(changes)
    except Exception as exc:  # noqa: BLE001 - the target's schema says why
        return None, f"its changes are invalid: {exc}"
    action, why = answer["action"], f"LLM: {answer.get('kind', '?')}: {str(answer.get('reason', ''))[:300]}"
    if changes and action != "retry":
        return None, f"only a retry may change knobs (it proposed {action} with changes)"
    if action in ("invalid", "quarantine"):
        return Treatment("give_up", why, ends_as="invalid" if action == "invalid" else "quarantined"), why
    return Treatment(action, why, changes=changes), why


def llm_treatment(diagnosis: Diagnosis, config: Mapping[str, Any], target: Any, allowed: set[str],
                  llm: Any) -> tuple[Treatment | None, str]:
    """Ask the configured model (`llm`: an `LLMConfig`) for a remedy; (None, why) when it
    gave none that passes the checks, so the runbook's own remedy applies."""
    from rankwright.hypotheses.llm import ask_json

    knobs = [k.model_dump(mode="json") for k in target.knobs]
    answer, failed = ask_json(llm, messages(diagnosis, config, knobs, sorted(allowed)), openai_schema=SCHEMA,
                              schema=SCHEMA, name="rankwright_failure_remedy",
                              description="Record the remedy for the failed training run.")
    if failed:
        return None, failed
    return parse(answer, target.validate_changes, allowed)
