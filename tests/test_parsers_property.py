"""Property tests: whatever a person writes into a campaign spec, a target file, a run
config or a runbook, the parser either accepts it or raises its own error with a message
(what the CLI turns into exit 2), never another exception (a raw traceback)."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankwright.agent.runbook import RunbookError, load_runbook
from rankwright.agent.spec import SpecError, load_campaign
from rankwright.ranking.config import load_run_config
from rankwright.ranking.errors import ConfigError
from rankwright.targets import TargetError, load_target

KEYS = st.sampled_from(["name", "budget", "amount", "unit", "target", "changes", "set", "strategy", "trials",
                        "base_config", "train", "epochs", "model", "data", "knobs", "path", "kind", "low", "high",
                        "command", "metrics", "objective", "kinds", "remedy", "action", "scale", "breaker",
                        "hypotheses", "top_k", "max_parallel", "allowed_paths", "learning_rate", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(string.printable, max_size=12))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=5)), max_leaves=20)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


LOADERS = [(load_campaign, SpecError), (load_target, TargetError), (load_run_config, ConfigError),
           (load_runbook, RunbookError)]


@pytest.mark.parametrize("loader, error", LOADERS, ids=["spec", "target", "run-config", "runbook"])
@SETTINGS
@given(document=DOCS)
def test_any_document_is_accepted_or_refused_in_words(tmp_path, loader, error, document):
    try:
        loader(_write(tmp_path, "doc.yaml", document))
    except error as exc:
        assert str(exc)


@pytest.mark.parametrize("text", ["name: [unclosed", "\x00\x01", "- a\n- b", "a: b: c", ""])
def test_malformed_text_is_refused_in_words(tmp_path, text):
    for loader, error in LOADERS:
        try:
            loader(_write(tmp_path, "f.yaml", text))
        except error as exc:
            assert str(exc)


VALID_SPEC = {"name": "p", "budget": {"amount": 1.0}, "max_parallel": 2, "baseline_seeds": 2,
              "base_config": {"data": {"synthetic": {"rows": 10000}}, "train": {"epochs": 1}},
              "changes": [{"name": "wider", "set": {"model.embedding_dim": 16}}],
              "hypotheses": {"top_k": 2, "seeds": 2},
              "strategy": {"trials": 2, "search_space": {"train.learning_rate": {"low": 0.001, "high": 0.01,
                                                                                 "log": True}}}}
PATHS = [("name",), ("budget", "amount"), ("budget", "unit"), ("max_parallel",), ("baseline_seeds",),
         ("base_config", "train", "epochs"), ("base_config", "data"), ("changes",), ("changes", 0, "set"),
         ("hypotheses", "top_k"), ("strategy", "trials"), ("strategy", "search_space"),
         ("strategy", "search_space", "train.learning_rate", "low"), ("strategy", "phases"), ("allowed_paths",),
         ("runbook",), ("target",), ("model",), ("objective",)]


@SETTINGS
@given(where=st.sampled_from(PATHS), value=DOCS)
def test_a_valid_spec_with_one_field_gone_wrong_is_refused_in_words(tmp_path, where, value):
    import copy

    document = copy.deepcopy(VALID_SPEC)
    node = document
    for part in where[:-1]:
        node = node[part] if isinstance(node, list) else node.setdefault(part, {})
    node[where[-1]] = value
    try:
        load_campaign(_write(tmp_path, "spec.yaml", document))
    except SpecError as exc:
        assert str(exc) and "Traceback" not in str(exc)
