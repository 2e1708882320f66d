"""The offline knowledge base: it loads, and every technique moves real knobs to allowed values."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import pytest
import yaml

from rankwright.hypotheses import (
    CATEGORIES,
    MODEL_FAMILIES,
    KnobChange,
    KnowledgeError,
    Technique,
    knob_values,
    load_knowledge_base,
)
from rankwright.targets.builtin import builtin_target

KB = load_knowledge_base()


@functools.lru_cache(maxsize=None)
def _target(model: str):
    return builtin_target(model)


def _families(technique: Technique) -> list[str]:
    """The families a technique is meant for: those it names, or for `any` those exposing all its knobs."""
    if "any" in technique.applies_to:
        return [m for m in MODEL_FAMILIES if technique.applicable({k.path for k in _target(m).knobs})]
    return list(technique.applies_to)


def test_loads_with_enough_techniques_in_every_category():
    assert len(KB.techniques) >= 30
    assert {t.category for t in KB.techniques} == set(CATEGORIES)
    assert len(set(KB.ids)) == len(KB.ids)


def test_model_families_match_the_registry():
    from rankwright.ranking.models import REGISTRY

    assert set(MODEL_FAMILIES) == set(REGISTRY)


def test_every_family_gets_techniques():
    for family in MODEL_FAMILIES:
        paths = {k.path for k in _target(family).knobs}
        usable = [t for t in KB.for_model(family) if t.applicable(paths)]
        assert len(usable) >= 10, family


@pytest.mark.parametrize("technique", KB.techniques, ids=lambda t: t.id)
def test_changes_are_valid_for_every_family_it_names(technique: Technique):
    families = _families(technique)
    assert families, f"{technique.id}: no model family exposes all of its knobs"
    for family in families:
        target = _target(family)
        paths = {k.path for k in target.knobs}
        assert technique.applicable(paths), f"{technique.id} names {family} but {family} lacks some of its knobs"
        changes = technique.apply(knob_values(target.base_config, paths))
        assert set(changes) == technique.knob_paths
        target.validate_changes(changes)  # each knob exists and each value is in range
        target.config_with(changes)  # and the whole config is still valid (e.g. heads divide widths)


@pytest.mark.parametrize("technique", KB.techniques, ids=lambda t: t.id)
def test_prior_and_text_are_filled(technique: Technique):
    assert technique.prior.sd > 0
    assert technique.cost_factor > 0
    assert technique.description.count(".") >= 2, f"{technique.id}: description should be 2-3 sentences"
    assert any(ch.isdigit() for ch in technique.citation), f"{technique.id}: citation lacks a year"


def test_conflicts_are_symmetric():
    for technique in KB.techniques:
        for other in technique.conflicts_with:
            assert technique.id in KB.get(other).conflicts_with, f"{technique.id} -> {other} is one-sided"
            assert KB.conflicts(technique.id, other) and KB.conflicts(other, technique.id)


def test_techniques_moving_a_knob_in_opposite_ways_conflict():
    """Two techniques on one knob combine only if both move it the same way (or set the same value)."""
    for a, b in itertools.combinations(KB.techniques, 2):
        for knob in a.knob_paths & b.knob_paths:
            ca = next(c for c in a.changes if c.knob == knob)
            cb = next(c for c in b.changes if c.knob == knob)
            if ca.op == "set" and cb.op == "set":
                compatible = ca.value == cb.value
            elif ca.op != "set" and cb.op != "set":
                compatible = ca.direction == cb.direction
            else:
                compatible = False
            if not compatible:
                assert KB.conflicts(a.id, b.id), f"{a.id} and {b.id} move {knob} incompatibly but do not conflict"


def test_for_model_and_signals():
    dcn = {t.id for t in KB.for_model("dcnv2")}
    assert "dcnv2_more_cross_layers" in dcn and "learning_rate_up" in dcn
    assert "finalmlp_wider_streams" not in dcn
    assert all("overfitting" in t.signals for t in KB.with_signal("overfitting"))
    with pytest.raises(KnowledgeError, match="unknown signal"):
        KB.with_signal("sleepy")


# --- apply semantics --------------------------------------------------------------------


def _tech(*changes: dict) -> Technique:
    return Technique.model_validate(
        {
            "id": "t",
            "name": "t",
            "category": "optimization",
            "description": "x. y.",
            "citation": "A, B, C 2020",
            "applies_to": ["any"],
            "changes": list(changes),
            "prior": {"effect": 0.0, "sd": 0.001, "evidence": "none"},
            "cost_factor": 1.0,
        }
    )


def test_apply_resolves_ops_against_current_values():
    t = _tech(
        {"knob": "train.learning_rate", "op": "scale", "value": 3},
        {"knob": "train.batch_size", "op": "scale", "value": 0.25},
        {"knob": "model.num_heads", "op": "scale", "value": 0.1},
        {"knob": "model.dropout", "op": "add", "value": 0.1},
        {"knob": "model.attention_layers", "op": "add", "value": 1},
        {"knob": "model.hidden_units", "op": "scale", "value": 1.5},
        {"knob": "model.mlp1_hidden_units", "op": "add", "value": 2},
        {"knob": "model.mlp2_hidden_units", "op": "add", "value": -5},
        {"knob": "train.schedule", "op": "set", "value": "cosine"},
    )
    current = {
        "train.learning_rate": 0.001,
        "train.batch_size": 4096,
        "model.num_heads": 2,
        "model.dropout": 0.2,
        "model.attention_layers": 3,
        "model.hidden_units": (400, 400, 1),
        "model.mlp1_hidden_units": [400, 200],
        "model.mlp2_hidden_units": [100, 50],
    }
    assert t.apply(current) == {
        "train.learning_rate": 0.003,
        "train.batch_size": 1024,
        "model.num_heads": 1,  # an int scale rounds and stays >= 1
        "model.dropout": 0.3,  # no float noise
        "model.attention_layers": 4,
        "model.hidden_units": [600, 600, 2],
        "model.mlp1_hidden_units": [400, 200, 200, 200],
        "model.mlp2_hidden_units": [100],  # at least one layer stays
        "train.schedule": "cosine",
    }


def test_apply_names_the_technique_when_a_value_is_missing_or_unusable():
    t = _tech({"knob": "train.grad_clip_norm", "op": "scale", "value": 0.1})
    with pytest.raises(KnowledgeError, match=r"'t'.*no current value for knob train.grad_clip_norm"):
        t.apply({})
    with pytest.raises(KnowledgeError, match=r"'t', knob train.grad_clip_norm: scale needs a number"):
        t.apply({"train.grad_clip_norm": None})


def test_bad_ops_are_rejected():
    with pytest.raises(ValueError, match="scale needs a positive number"):
        KnobChange(knob="train.learning_rate", op="scale", value=0)
    with pytest.raises(ValueError, match="add needs a non-zero number"):
        KnobChange(knob="model.dropout", op="add", value="x")


# --- bad files --------------------------------------------------------------------------


def _entry(technique_id: str, **extra) -> dict:
    entry = {
        "id": technique_id,
        "name": technique_id,
        "category": "regularization",
        "description": "One. Two.",
        "citation": "Someone, Something, Venue 2020",
        "applies_to": ["dnn"],
        "changes": [{"knob": "model.dropout", "op": "add", "value": 0.1}],
        "prior": {"effect": -0.001, "sd": 0.002, "evidence": "made up for a test"},
        "cost_factor": 1.0,
    }
    entry.update(extra)
    return entry


def _write(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "kb.yaml"
    path.write_text(yaml.safe_dump({"techniques": list(entries)}, sort_keys=False))
    return path


def test_a_small_file_loads(tmp_path: Path):
    kb = load_knowledge_base(_write(tmp_path, _entry("a", conflicts_with=["b"]), _entry("b")))
    assert kb.ids == ("a", "b") and kb.conflicts("b", "a")


def test_duplicate_id_is_named(tmp_path: Path):
    with pytest.raises(KnowledgeError, match=r"technique 'twice' is defined more than once"):
        load_knowledge_base(_write(tmp_path, _entry("twice"), _entry("once"), _entry("twice")))


def test_unknown_signal_is_named(tmp_path: Path):
    with pytest.raises(KnowledgeError, match=r"technique 'noisy'.*unknown signal 'sleepy'"):
        load_knowledge_base(_write(tmp_path, _entry("fine"), _entry("noisy", signals=["overfitting", "sleepy"])))


def test_unknown_conflict_is_named(tmp_path: Path):
    with pytest.raises(KnowledgeError, match=r"technique 'a'.*unknown technique 'ghost'"):
        load_knowledge_base(_write(tmp_path, _entry("a", conflicts_with=["ghost"])))


def test_unknown_family_and_extra_field_are_named(tmp_path: Path):
    with pytest.raises(KnowledgeError, match=r"technique 'a'.*unknown model family 'xgboost'"):
        load_knowledge_base(_write(tmp_path, _entry("a", applies_to=["xgboost"])))
    with pytest.raises(KnowledgeError, match=r"technique 'b'.*colour"):
        load_knowledge_base(_write(tmp_path, _entry("b", colour="red")))


def test_yaml_syntax_error_is_located(tmp_path: Path):
    path = tmp_path / "kb.yaml"
    path.write_text("techniques:\n  - id: a\n    name: [unclosed\n")
    with pytest.raises(KnowledgeError, match=r"kb.yaml: not valid YAML at line \d+"):
        load_knowledge_base(path)


def test_a_technique_that_only_moves_inert_knobs_is_not_proposed(tmp_path: Path, monkeypatch):
    """Bucketizing numeric fields on data with none would re-run the baseline under a new name."""
    from rankwright.agent.learning import rank_for_campaign
    from rankwright.agent.spec import CampaignSpec
    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("label,a,b\n" + "".join(f"{i % 2},{i % 7},{i % 3}\n" for i in range(50)))
    categorical_only = builtin_target("dnn", {"data": {"source": "csv", "train": str(tmp_path / "t.csv"),
                                                       "schema": {"categorical": ["a", "b"]}}})
    with_numeric = builtin_target("dnn", {})
    assert "data.processing.numeric_transform" in categorical_only.inert_knobs()
    assert not with_numeric.inert_knobs()
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    spec = CampaignSpec(name="x", budget={"amount": 1.0})
    names = {h.technique for h in rank_for_campaign(spec, categorical_only, store).hypotheses}
    assert "bucketize_numeric" not in names and "learning_rate_up" in names
    assert "bucketize_numeric" in {h.technique for h in rank_for_campaign(spec, with_numeric, store).hypotheses}


def test_techniques_reach_a_foreign_codebase_through_knob_roles(tmp_path, monkeypatch):
    import yaml

    from rankwright.agent.learning import rank_for_campaign
    from rankwright.agent.observe import allowed_knobs
    from rankwright.agent.spec import load_campaign
    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    target = {"name": "foreign", "command": ["{python}", "-c", "pass"],
              "base_config": {"model": {"name": "dnn"}, "optim": {"step": 0.001}, "net": {"drop_rate": 0.2},
                              "emb": {"size": 10}},
              "knobs": [{"path": "optim.step", "kind": "float", "low": 1e-6, "high": 1.0, "log": True, "default": 0.001},
                        {"path": "net.drop_rate", "kind": "float", "low": 0.0, "high": 0.9, "default": 0.2},
                        {"path": "emb.size", "kind": "int", "low": 2, "high": 512, "default": 10},
                        {"path": "run.seed", "kind": "int", "low": 0, "high": 10**6, "default": 0}],
              "roles": {"learning_rate": "optim.step", "dropout": "net.drop_rate", "embedding_dim": "emb.size"},
              "metrics": {"objective": "logloss"}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(target))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "f", "target": "t.yaml", "budget": {"amount": 1.0}}))
    spec, loaded = load_campaign(tmp_path / "c.yaml")
    assert loaded.role_paths()["seed"] == "run.seed"  # found by name
    ranking = rank_for_campaign(spec, loaded, open_store())
    by_name = {h.name: h.changes for h in ranking.hypotheses}
    assert by_name["learning_rate_up"] == {"optim.step": pytest.approx(0.003)}  # the built-in x3, on its knob
    assert set(by_name["dropout_down"]) == {"net.drop_rate"}
    assert any(set(c) == {"emb.size"} for c in by_name.values())
    assert {"optim.step", "net.drop_rate", "emb.size"} <= allowed_knobs(spec, loaded)
