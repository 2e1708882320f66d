"""Insights: similarity-weighted priors shrunk toward the knowledge base, no re-proposal of
what failed in the same context, export/import; ranking by expected value per unit cost with
duplicates and conflicts removed and every rank explained."""

import json
import math

import pytest

from rankwright.hypotheses.engine import MIN_P_SUCCESS, expected_improvement, rank_hypotheses, technique_for_changes
from rankwright.hypotheses.insights import (
    Context, Insight, InsightFileError, export_jsonl, load_all, noise_threshold, prior_for, read_jsonl,
    relative_effect, save, similarity,
)
from rankwright.hypotheses.knowledge import knob_values, load_knowledge_base, parse_knowledge_base
from rankwright.store import open_store

CTX = Context("dnn", rows=100_000, fields=24, mean_cardinality=1000, baseline_ne=0.85, task="pairwise")


def insight(technique="dropout_up", effect=-0.01, se=0.001, context=CTX, campaign="c1", noise=0.002):
    return Insight(technique=technique, changes={"model.dropout": 0.5}, context=context, effect=effect,
                   effect_se=se, seeds=2, noise=noise, cost_factor=1.0, campaign=campaign).with_uid()


def test_similarity_is_one_for_the_same_context_and_falls_with_distance():
    assert similarity(CTX, CTX) == pytest.approx(1.0)
    bigger = Context("dnn", rows=10_000_000, fields=24, mean_cardinality=1000, baseline_ne=0.85)
    other_model = Context("dcnv2", rows=100_000, fields=24, mean_cardinality=1000, baseline_ne=0.85)
    assert similarity(CTX, bigger) < 0.2
    assert similarity(CTX, other_model) == pytest.approx(0.3)


def test_thin_evidence_stays_near_the_prior_and_strong_close_evidence_moves_it():
    none = prior_for("dropout_up", 0.0, 0.003, CTX, [])
    assert (none.mean, none.sd) == (0.0, 0.003)
    far = Context("dnn", rows=10_000_000, fields=60, mean_cardinality=1e6, baseline_ne=0.6)
    thin = prior_for("dropout_up", 0.0, 0.003, CTX, [insight(context=far, se=0.005)])
    strong = prior_for("dropout_up", 0.0, 0.003, CTX, [insight(se=0.0005), insight(se=0.0005, campaign="c2")])
    assert abs(thin.mean) < 0.0005  # distant, noisy: shrunk almost back to the prior
    assert strong.mean < -0.008 and strong.sd < 0.001
    assert prior_for("other", 0.0, 0.003, CTX, [insight()]).evidence == []  # other techniques do not count


def test_a_failure_in_the_same_context_is_not_proposed_again_but_a_changed_context_is_and_says_why():
    kb = load_knowledge_base()
    from rankwright.targets.builtin import builtin_target

    target = builtin_target("dnn")
    paths = {k.path for k in target.knobs}
    current = knob_values(target.base_config, paths)
    failed = insight(technique="dropout_up", effect=+0.004)
    ranking = rank_hypotheses(kb=kb, model_family="dnn", knob_paths=paths, current=current,
                              validate=target.validate_changes, context=CTX, insights=[failed], noise=0.002)
    names = [h.name for h in ranking.hypotheses]
    assert "dropout_up" not in names
    assert any(n == "dropout_up" and "same context" in why and "c1" in why for n, why in ranking.dropped)
    moved = Context("dnn", rows=10_000_000, fields=24, mean_cardinality=1000, baseline_ne=0.85)
    again = rank_hypotheses(kb=kb, model_family="dnn", knob_paths=paths, current=current,
                            validate=target.validate_changes, context=moved, insights=[failed], noise=0.002)
    proposed = {h.name: h for h in again.hypotheses}
    if "dropout_up" in proposed:  # it may still lose a declared conflict; then the drop says so
        assert "context changed" in proposed["dropout_up"].reason and "rows" in proposed["dropout_up"].reason
    else:
        assert any(n == "dropout_up" and "conflicts" in why for n, why in again.dropped)


def test_ranking_is_by_expected_gain_per_cost_with_sources_and_explanations():
    kb = load_knowledge_base()
    from rankwright.targets.builtin import builtin_target

    target = builtin_target("dnn")
    paths = {k.path for k in target.knobs}
    current = knob_values(target.base_config, paths)
    helped = insight(technique="embedding_l2_light", effect=-0.02, se=0.001)
    ranking = rank_hypotheses(kb=kb, model_family="dnn", knob_paths=paths, current=current,
                              validate=target.validate_changes, context=CTX, insights=[helped], noise=0.002)
    hs = ranking.hypotheses
    assert [h.rank for h in hs] == list(range(1, len(hs) + 1)) and len(hs) >= 10
    # those expected to help first, then those that wait; by expected gain per cost within each
    helping = [h for h in hs if h.expected_to_help]
    assert hs[:len(helping)] == helping and len(helping) >= 3
    for tier in (helping, hs[len(helping):]):
        assert all(a.score >= b.score for a, b in zip(tier, tier[1:]))
    top = hs[0]
    assert top.name == "embedding_l2_light" and top.source == "history" and "history" in top.sources
    assert top.reason.startswith(f"rank 1 of {len(hs)}") and "campaign 'c1'" in top.reason
    assert all(h.reason and h.expected_cost > 0 and 0 <= h.p_success <= 1 for h in hs)
    keys = [json.dumps(h.changes, sort_keys=True) for h in hs]
    assert len(keys) == len(set(keys))  # no duplicates
    for a in hs:  # no declared conflict survives
        for b in hs:
            assert a is b or not kb.conflicts(a.name, b.name)
    assert any("conflicts with" in why for _, why in ranking.dropped)
    assert any("already has" in why for _, why in ranking.dropped)  # no-op techniques are named, not hidden


def test_diagnosis_moves_matching_techniques_up_and_says_why():
    from dataclasses import dataclass

    from rankwright.targets.builtin import builtin_target

    @dataclass(frozen=True)
    class F:
        signal: str
        strength: float
        reason: str

    kb = load_knowledge_base()
    target = builtin_target("dnn")
    paths = {k.path for k in target.knobs}
    current = knob_values(target.base_config, paths)
    args = dict(kb=kb, model_family="dnn", knob_paths=paths, current=current, validate=target.validate_changes,
                context=CTX, noise=0.002)
    plain = {h.name: h for h in rank_hypotheses(**args).hypotheses}
    diagnosed = rank_hypotheses(**args, findings=[F("overfitting", 1.0, "validation NE rose after epoch 2")])
    matched = [h for h in diagnosed.hypotheses if "diagnosis" in h.sources]
    both = [h for h in matched if h.name in plain]  # (a conflict may keep another member of a pair)
    assert both
    for h in both:
        assert h.expected_effect < plain[h.name].expected_effect
    assert all("validation NE rose after epoch 2" in h.reason for h in matched)


def test_expected_improvement_matches_a_numeric_integral():
    mean, sd = 0.001, 0.003
    xs = [mean + sd * (i / 1000.0) for i in range(-8000, 8001)]
    dens = [math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)) for x in xs]
    numeric = sum(max(0.0, -x) * d for x, d in zip(xs, dens)) * (sd / 1000.0)
    assert expected_improvement(mean, sd) == pytest.approx(numeric, rel=1e-3)


def test_relative_effect_and_noise_threshold():
    effect, se = relative_effect([0.80, 0.80], [0.90, 0.92, 0.88, 0.90])
    assert effect == pytest.approx((0.8 - 0.9) / 0.9)
    assert se > 0
    noise = noise_threshold([0.90, 0.92, 0.88, 0.90], 2)
    assert noise == pytest.approx(2 * 0.016330 * math.sqrt(1 / 4 + 1 / 2) / 0.9, rel=1e-3)


def test_insights_round_trip_through_the_store_and_files(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    a, b = insight(), insight(technique="embedding_dim_up", effect=0.001)
    assert save(store, a) and save(store, b) and not save(store, a)  # idempotent by uid
    assert [i.technique for i in load_all(store)] == ["dropout_up", "embedding_dim_up"]
    path = tmp_path / "team.jsonl"
    assert export_jsonl(load_all(store), path) == 2
    other = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    imported = read_jsonl(path)
    assert [save(other, i) for i in imported] == [True, True]
    assert [save(other, i) for i in imported] == [False, False]  # importing twice adds nothing
    assert load_all(other) == load_all(store)


def test_a_shared_insights_database_says_who_learned_what_from_which_campaign(tmp_path, monkeypatch):
    """Two engineers' campaigns write to one store; `rankwright insights` names them, the
    author travels through export and import, and an older file without one still reads."""
    from dataclasses import replace

    from typer.testing import CliRunner

    from rankwright.cli.main import app

    url = f"sqlite:///{tmp_path / 'team.db'}"
    store = open_store(url)
    save(store, replace(insight(campaign="ctr-q4"), author="alice"))
    save(store, replace(insight(technique="embedding_dim_up", campaign="ctr-q4"), author="alice"))
    save(store, replace(insight(technique="lr_up", campaign="cvr-dcn"), author="bob"))
    monkeypatch.setenv("RANKWRIGHT_DB", url)
    shown = CliRunner().invoke(app, ["insights"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "who learned them: alice 2 from 1 campaign; bob 1 from 1 campaign" in text
    assert max(len(line) for line in shown.output.splitlines()) <= 80
    path = tmp_path / "team.jsonl"
    export_jsonl(load_all(store), path)
    assert sorted(i.author for i in read_jsonl(path)) == ["alice", "alice", "bob"]
    record = insight().to_json()
    del record["author"]  # written before authors were kept
    path.write_text(json.dumps(record) + "\n")
    assert read_jsonl(path)[0].author == ""


def test_a_bad_insights_file_names_the_line_and_imports_nothing(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(insight().to_json())
    path.write_text(good + "\n" + '{"technique": "x"}\n')
    with pytest.raises(InsightFileError, match="line 2: not an insight \\(missing field\\(s\\): changes, context"):
        read_jsonl(path)
    path.write_text(json.dumps({**insight().to_json(), "efect": 1}) + "\n")  # in words, with the one meant
    with pytest.raises(InsightFileError, match="line 1: not an insight \\(unknown field 'efect'; did you mean 'effect'"):
        read_jsonl(path)
    record = insight().to_json()
    record["context"] = {**record["context"], "colour": 1}
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(InsightFileError, match="unknown field 'context.colour'"):
        read_jsonl(path)


def test_a_failure_on_other_data_of_the_same_shape_lowers_the_prior_but_does_not_drop_it():
    from dataclasses import replace

    from rankwright.hypotheses.insights import data_identity

    here = replace(CTX, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": 2}}))
    there = replace(CTX, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": 1}}))
    assert here.data_id != there.data_id and similarity(here, there) == pytest.approx(1.0)
    failed = insight(effect=+0.004, context=there)
    prior = prior_for("dropout_up", 0.0, 0.003, here, [failed])
    assert prior.failed_here is None and prior.mean > 0.002  # moved toward the evidence, not removed
    assert prior.failed_elsewhere and "other data" in prior.failed_elsewhere[0][1][0]
    assert prior_for("dropout_up", 0.0, 0.003, there, [failed]).failed_here is failed  # same data: dropped


# --- what waits, and what was already measured under another name ------------------------


def _technique(technique_id: str, knob: str, effect: float, sd: float, cost: float) -> dict:
    return {"id": technique_id, "name": technique_id, "category": "optimization", "description": "One. Two.",
            "citation": "Someone, Something, Venue 2020", "applies_to": ["dnn"],
            "changes": [{"knob": knob, "op": "scale", "value": 2}],
            "prior": {"effect": effect, "sd": sd, "evidence": "made up for a test"}, "cost_factor": cost}


def test_a_cheap_hypothesis_not_expected_to_help_waits_behind_an_expensive_one_that_is():
    kb = parse_knowledge_base({"techniques": [
        _technique("cheap_loss", "a", +0.001, 0.004, 0.15),  # cheap, expected to lose
        _technique("long_shot", "b", -0.0001, 0.0005, 0.15),  # cheap, a gain on average but P(beats noise) ~ 0
        _technique("dear_gain", "c", -0.0005, 0.001, 3.0),  # twenty times dearer, expected to help
    ]})
    ranking = rank_hypotheses(kb=kb, model_family="dnn", knob_paths={"a", "b", "c"},
                              current={"a": 1.0, "b": 1.0, "c": 1.0}, validate=dict, context=CTX, noise=0.002)
    by_name = {h.name: h for h in ranking.hypotheses}
    cheap, shot, dear = by_name["cheap_loss"], by_name["long_shot"], by_name["dear_gain"]
    assert cheap.score > dear.score and shot.score > dear.score  # per unit cost alone, the cheap ones would lead
    assert [h.name for h in ranking.hypotheses] == ["dear_gain", "cheap_loss", "long_shot"]
    assert dear.expected_to_help and "waits" not in dear.reason
    assert not cheap.expected_to_help and cheap.expected_effect > 0
    assert "waits: not expected to help" in cheap.reason and "+0.10% NE is not a gain" in cheap.reason
    assert shot.expected_effect < 0 and shot.p_success < MIN_P_SUCCESS
    assert "waits" in shot.reason and f"below {MIN_P_SUCCESS:.2f}" in shot.reason


def _dnn():
    from rankwright.targets.builtin import builtin_target

    target = builtin_target("dnn")
    paths = {k.path for k in target.knobs}
    return target, paths, knob_values(target.base_config, paths)


def test_technique_for_changes_names_the_technique_with_exactly_these_changes():
    kb = load_knowledge_base()
    target, paths, current = _dnn()
    assert current["train.learning_rate"] == pytest.approx(0.001) and current["model.dropout"] == pytest.approx(0.2)

    def name(changes):
        return technique_for_changes(kb, "dnn", paths, current, target.validate_changes, changes)

    assert name({"train.learning_rate": 0.003}) == "learning_rate_up"
    assert name({"model.dropout": 0.1}) == "dropout_down"
    assert name({"model.hidden_units": (800, 800, 800)}) == "dnn_wider_layers"  # a tuple is the list it validates to
    assert name({"train.learning_rate": 0.002}) is None  # no technique makes this move
    assert name({"train.learning_rate": 0.003, "model.dropout": 0.1}) is None  # two moves are not one technique
    assert name({"model.dropout": 0.2}) is None  # the baseline's own value changes nothing


def test_changes_already_measured_in_the_same_context_under_another_name_are_not_proposed_again():
    from dataclasses import replace

    from rankwright.hypotheses.insights import data_identity

    kb = load_knowledge_base()
    target, paths, current = _dnn()
    here = replace(CTX, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": 1}}))
    spec_change = Insight(technique="lr-0.003", changes={"train.learning_rate": 0.003}, context=here,
                          effect=-0.004, effect_se=0.001, seeds=2, noise=0.002, cost_factor=1.0,
                          campaign="c7").with_uid()

    def rank(context, insights):
        return rank_hypotheses(kb=kb, model_family="dnn", knob_paths=paths, current=current,
                               validate=target.validate_changes, context=context, insights=insights, noise=0.002)

    assert "learning_rate_up" in {h.name for h in rank(here, []).hypotheses}
    ranking = rank(here, [spec_change])  # it helped, and is still not measured twice
    assert "learning_rate_up" not in {h.name for h in ranking.hypotheses}
    why = dict(ranking.dropped)["learning_rate_up"]
    assert why.startswith("already measured") and "'lr-0.003'" in why and "'c7'" in why
    other_data = replace(here, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": 2}}))
    assert "learning_rate_up" in {h.name for h in rank(other_data, [spec_change]).hypotheses}
    bigger = replace(here, rows=CTX.rows * 100)
    assert "learning_rate_up" in {h.name for h in rank(bigger, [spec_change]).hypotheses}


def test_an_unstable_technique_is_not_proposed_again_here_and_shapes_no_prior(tmp_path, monkeypatch):
    from dataclasses import replace

    from rankwright.hypotheses.insights import data_identity

    kb = load_knowledge_base()
    target, paths, current = _dnn()
    here = replace(CTX, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": 1}}))
    diverged = Insight(technique="learning_rate_up", changes={"train.learning_rate": 0.003}, context=here,
                       effect=0.0, effect_se=0.0, seeds=2, noise=0.0, cost_factor=1.0, campaign="c9",
                       outcome="unstable").with_uid()

    def rank(context, insights):
        return rank_hypotheses(kb=kb, model_family="dnn", knob_paths=paths, current=current,
                               validate=target.validate_changes, context=context, insights=insights, noise=0.002)

    ranking = rank(here, [diverged])
    why = dict(ranking.dropped)["learning_rate_up"]
    assert "not proposed again: it was unstable" in why and "'c9'" in why
    other_data = replace(here, data_id=data_identity({"source": "synthetic", "synthetic": {"seed": 2}}))
    elsewhere = {h.name: h for h in rank(other_data, [diverged]).hypotheses}["learning_rate_up"]
    fresh = {h.name: h for h in rank(other_data, []).hypotheses}["learning_rate_up"]
    assert elsewhere.expected_effect == fresh.expected_effect  # no measured effect: the prior is unchanged
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    store = open_store()
    save(store, diverged)
    assert [i.outcome for i in load_all(store)] == ["unstable"]  # through the store, and files
    export_jsonl(load_all(store), tmp_path / "i.jsonl")
    assert [i.outcome for i in read_jsonl(tmp_path / "i.jsonl")] == ["unstable"]
