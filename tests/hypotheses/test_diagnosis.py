"""Diagnosis of a baseline run: each signal from a curve that shows it, nothing from a healthy one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rankwright.hypotheses.diagnosis import (
    STRONG_FINDING,
    Finding,
    diagnose,
    diagnose_run,
    suggest_from_findings,
)
from rankwright.hypotheses.knowledge import load_knowledge_base
from rankwright.targets.builtin import builtin_target

ENTROPY = 0.325  # base-rate log loss of a 10% click rate (nats)


def _valid(ne: float, calibration: float = 1.0, rows: int = 200_000) -> dict:
    return {"auc": 0.75, "logloss": ne * ENTROPY, "ne": ne, "calibration": calibration, "rows": rows}


def _log(
    train_losses,
    nes,
    *,
    calibration: float = 1.0,
    rows: int = 200_000,
    train_rows: int = 1_000_000,
    embedding_parameters: int = 500_000,
    stopped_early: bool | None = None,
    finished: bool = True,
):
    """metrics.jsonl rows and result.json of a run with these per-epoch train losses and valid NEs."""
    metrics: list[dict] = [{
        "event": "start", "time": 0.0, "model": "dnn", "parameters": embedding_parameters + 100_000,
        "embedding_parameters": embedding_parameters, "device": "cpu", "train_rows": train_rows, "valid_rows": rows,
    }]
    best = math.inf
    best_epoch = 0
    for epoch, (loss, ne) in enumerate(zip(train_losses, nes), start=1):
        improved = ne < best
        if improved:
            best, best_epoch = ne, epoch
        metrics.append({
            "event": "epoch", "time": 10.0 * epoch, "epoch": epoch, "train_loss": loss,
            "valid": _valid(ne, calibration, rows), "learning_rate": 1e-3, "improved": improved,
            "train_samples": epoch * train_rows, "train_seconds": 9.0 * epoch,
        })
    if not finished:
        return metrics, None
    epochs = len(nes)
    if stopped_early is None:
        stopped_early = best_epoch < epochs
    result = {
        "valid": _valid(best, calibration, rows), "best_epoch": best_epoch, "epochs_run": epochs,
        "stopped_early": stopped_early, "train_samples": epochs * train_rows, "train_seconds": 9.0 * epochs,
        "fit_seconds": 10.0 * epochs, "parameters": embedding_parameters + 100_000,
        "embedding_parameters": embedding_parameters, "device": "cpu",
    }
    metrics.append({"event": "result", "time": 10.0 * epochs + 1, **result})
    return metrics, result


def _by_signal(findings: list[Finding]) -> dict[str, Finding]:
    signals = [f.signal for f in findings]
    assert len(signals) == len(set(signals)), "one finding per signal"
    return {f.signal: f for f in findings}


HEALTHY = dict(
    train_losses=[0.300, 0.285, 0.280, 0.277, 0.275],
    nes=[0.850, 0.830, 0.825, 0.8245, 0.8252],
)


def test_healthy_run_has_no_findings():
    findings = diagnose(*_log(**HEALTHY))
    assert findings == []


def test_clear_overfit():
    metrics, result = _log([0.30, 0.27, 0.24, 0.21, 0.18, 0.15], [0.85, 0.82, 0.825, 0.835, 0.85, 0.87])
    findings = diagnose(metrics, result)
    found = _by_signal(findings)
    overfit = found["overfitting"]
    assert findings[0] is overfit and overfit.strength == 1.0
    assert overfit.evidence["best_epoch"] == 2 and overfit.evidence["epochs"] == 6
    assert "epoch 2 of 6 (0.8200)" in overfit.reason and "0.8700" in overfit.reason
    assert "overfits" in overfit.reason
    assert "underfitting" not in found and "unstable" not in found


def test_train_valid_gap_alone_is_overfitting():
    # validation still at its best, but train loss far below validation log loss (0.82 * 0.325 = 0.267)
    found = _by_signal(diagnose(*_log([0.25, 0.18, 0.12], [0.84, 0.83, 0.82], stopped_early=False)))
    assert found["overfitting"].evidence["gap"] > 0.5
    assert found["overfitting"].strength >= STRONG_FINDING


def test_clear_underfit_still_improving_at_max_epochs():
    metrics, result = _log([0.34, 0.32, 0.30], [0.95, 0.90, 0.86])
    assert result["stopped_early"] is False
    found = _by_signal(diagnose(metrics, result))
    underfit = found["underfitting"]
    assert underfit.strong
    assert "still improving" in underfit.reason and "0.9000 -> 0.8600" in underfit.reason
    assert "overfitting" not in found


def test_barely_learning_is_underfitting():
    found = _by_signal(diagnose(*_log([0.3797, 0.3791], [1.0032, 1.0070])))
    assert found["underfitting"].strong
    assert "barely learning" in found["underfitting"].reason


def test_unfinished_run_still_improving_is_a_weaker_underfit():
    finished = _by_signal(diagnose(*_log([0.34, 0.33], [0.95, 0.94])))["underfitting"]
    partial = _by_signal(diagnose(*_log([0.34, 0.33], [0.95, 0.94], finished=False)))["underfitting"]
    assert partial.strength < finished.strength
    assert "did not finish" in partial.reason


def test_train_loss_spike_is_unstable():
    found = _by_signal(diagnose(*_log([0.30, 0.28, 0.42, 0.29], [0.85, 0.83, 0.90, 0.84])))
    unstable = found["unstable"]
    assert unstable.evidence["epoch"] == 3 and unstable.strong
    assert "0.4200" in unstable.reason and "0.2800" in unstable.reason


def test_blow_up_in_first_epoch_is_unstable():
    found = _by_signal(diagnose(*_log([13.0, 0.56, 0.39], [2.26, 1.10, 1.08])))
    assert found["unstable"].strength == 1.0 and "blew up" in found["unstable"].reason


def test_grad_norm_spike_is_unstable_when_logged():
    metrics, result = _log(**HEALTHY)
    for row, norm in zip([r for r in metrics if r["event"] == "epoch"], [1.0, 1.2, 0.9, 40.0, 1.1]):
        row["grad_norm"] = norm
    assert _by_signal(diagnose(metrics, result))["unstable"].evidence["epoch"] == 4


def test_nan_loss_is_unstable_at_full_strength():
    metrics, _ = _log([0.30, 0.28, float("nan")], [0.85, 0.83, float("nan")], finished=False)
    found = diagnose(metrics, None)
    assert found[0].signal == "unstable" and found[0].strength == 1.0
    assert "nan" in found[0].reason and "epoch 3" in found[0].reason
    # what the trainer leaves when it stops on a non-finite loss: no epoch row, a `diverged` row
    metrics, _ = _log([0.30, 0.28], [0.85, 0.83], finished=False)
    metrics.append({"event": "diverged", "epoch": 3, "value": "inf"})
    assert _by_signal(diagnose(metrics, None))["unstable"].strength == 1.0


def test_miscalibration_is_judged_against_sampling_noise():
    found = _by_signal(diagnose(*_log(**HEALTHY, calibration=1.30)))
    assert found["miscalibrated"].strong and "1.300x" in found["miscalibrated"].reason
    # 8% off on 1,000 validation rows is within noise, on 1M rows it is not
    assert "miscalibrated" not in _by_signal(diagnose(*_log(**HEALTHY, calibration=1.08, rows=1_000)))
    assert "miscalibrated" in _by_signal(diagnose(*_log(**HEALTHY, calibration=1.08, rows=1_000_000)))


def test_embeddings_too_large():
    found = _by_signal(diagnose(*_log(**HEALTHY, train_rows=100_000, embedding_parameters=5_000_000)))
    large = found["embeddings_too_large"]
    assert large.strong and large.evidence["per_row"] == 50.0 and "50.0 per row" in large.reason
    assert "embeddings_too_large" not in _by_signal(diagnose(*_log(**HEALTHY, train_rows=100_000,
                                                                 embedding_parameters=50_000)))
    # explicit counts win over the log's
    overridden = diagnose(*_log(**HEALTHY), train_rows=10_000, embedding_params=1_000_000)
    assert _by_signal(overridden)["embeddings_too_large"].evidence["train_rows"] == 10_000


def test_large_embeddings_are_stronger_with_overfitting():
    overfit = _log([0.30, 0.27, 0.24, 0.21], [0.85, 0.82, 0.83, 0.85], train_rows=100_000, embedding_parameters=400_000)
    healthy = _log(**HEALTHY, train_rows=100_000, embedding_parameters=400_000)
    with_overfit = _by_signal(diagnose(*overfit))["embeddings_too_large"]
    alone = _by_signal(diagnose(*healthy))["embeddings_too_large"]
    assert with_overfit.strength > alone.strength and "overfits" in with_overfit.reason


def test_tiny_embeddings_with_underfitting():
    metrics, result = _log([0.34, 0.32, 0.30], [0.95, 0.90, 0.86])
    assert "embeddings_too_small" in _by_signal(diagnose(metrics, result, embedding_dim=2))
    assert "embeddings_too_small" not in _by_signal(diagnose(metrics, result, embedding_dim=16))
    assert "embeddings_too_small" not in _by_signal(diagnose(*_log(**HEALTHY), embedding_dim=2))


def test_slow_training_only_against_a_budget():
    metrics, result = _log(**HEALTHY)  # fit_seconds 50
    assert "slow_training" not in _by_signal(diagnose(metrics, result))
    assert "slow_training" not in _by_signal(diagnose(metrics, result, budget_seconds=10_000))
    slow = _by_signal(diagnose(metrics, result, budget_seconds=200))["slow_training"]
    assert slow.strength == 1.0 and "4 runs" in slow.reason


def test_findings_are_sorted_and_checked():
    metrics, result = _log([0.30, 0.27, 0.24, 0.21], [0.85, 0.82, 0.83, 0.85], calibration=1.07)
    strengths = [f.strength for f in diagnose(metrics, result)]
    assert strengths == sorted(strengths, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in strengths)
    with pytest.raises(ValueError, match="unknown signal"):
        Finding("sad", 0.5, "x")
    with pytest.raises(ValueError, match="strength"):
        Finding("overfitting", 1.5, "x")


def test_empty_and_junk_input_say_nothing():
    assert diagnose([], None) == []
    assert diagnose([{"event": "epoch"}, "junk", {"event": "epoch", "valid": "x"}], {"valid": None}) == []


# ----------------------------------------------------------------------- run folders
def _write(run: Path, metrics: list[dict], result: dict | None = None) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    if result is not None:
        (run / "result.json").write_text(json.dumps(result))


def test_diagnose_run_on_missing_and_partial_folders(tmp_path):
    assert diagnose_run(tmp_path / "nowhere") == []
    assert diagnose_run(tmp_path) == []

    # killed mid-run: no result.json, the last line torn
    metrics, _ = _log([0.30, 0.27, 0.24, 0.21], [0.85, 0.82, 0.83, 0.85], finished=False)
    partial = tmp_path / "partial"
    _write(partial, metrics)
    with open(partial / "metrics.jsonl", "a") as handle:
        handle.write('{"event": "epoch", "epoch": 5, "train_lo')
    assert "overfitting" in _by_signal(diagnose_run(partial))

    # only result.json survives
    _, result = _log(**HEALTHY, calibration=1.5)
    only_result = tmp_path / "only_result"
    only_result.mkdir()
    (only_result / "result.json").write_text(json.dumps(result))
    (only_result / "config.yaml").write_text("model: [not, a, mapping\n")  # unreadable: ignored
    assert [f.signal for f in diagnose_run(only_result)] == ["miscalibrated"]

    # a broken result.json is ignored, the log's result row is used
    metrics, result = _log(**HEALTHY, calibration=1.5)
    broken = tmp_path / "broken"
    _write(broken, metrics)
    (broken / "result.json").write_text("{not json")
    assert "miscalibrated" in _by_signal(diagnose_run(broken))


def test_diagnose_run_reads_config_and_output_log(tmp_path):
    metrics, result = _log([0.34, 0.32, 0.30], [0.95, 0.90, 0.86])
    _write(tmp_path, metrics, result)
    (tmp_path / "config.yaml").write_text("model:\n  name: dnn\n  embedding_dim: 2\n")
    assert "embeddings_too_small" in _by_signal(diagnose_run(tmp_path))

    diverged = tmp_path / "diverged"
    metrics, _ = _log([0.30, 0.28], [0.85, 0.83], finished=False)
    _write(diverged, metrics)
    (diverged / "output.log").write_text(
        "Traceback (most recent call last):\nFloatingPointError: training loss is nan in epoch 3\n"
    )
    unstable = _by_signal(diagnose_run(diverged))["unstable"]
    assert unstable.strength == 1.0 and unstable.evidence["epoch"] == 3


# ---------------------------------------------------------------------- suggestions
KB = load_knowledge_base()
DNN_KNOBS = {k.path for k in builtin_target("dnn").knobs}


def test_overfitting_on_dnn_suggests_regularization():
    overfit = Finding("overfitting", 0.9, "validation NE rose past its best.")
    pairs = suggest_from_findings([overfit], KB, "dnn", DNN_KNOBS)
    ids = [t.id for t, _ in pairs]
    assert {"dropout_up", "embedding_l2_light", "net_l2", "adamw_weight_decay"} <= set(ids)
    assert all("overfitting" in t.signals and f is overfit for t, f in pairs)
    assert all(t.names_model("dnn") and t.applicable(DNN_KNOBS) for t, _ in pairs)
    assert "finalmlp_more_fusion_heads" not in ids and "dcnv2_low_rank_mixture" not in ids
    assert len(ids) == len(set(ids))
    effects = [t.prior.effect for t, _ in pairs]
    assert effects == sorted(effects)
    # knob specs work as well as their paths
    assert suggest_from_findings([overfit], KB, "dnn", builtin_target("dnn").knobs) == pairs


def test_suggestions_follow_the_strongest_finding_once_each():
    weak = Finding("embeddings_too_large", 0.3, "3.5 embedding parameters per row.")
    strong = Finding("overfitting", 0.9, "validation NE rose past its best.")
    pairs = suggest_from_findings([weak, strong], KB, "dnn", DNN_KNOBS)
    first_weak = next(i for i, (_, f) in enumerate(pairs) if f is weak)
    assert all(f is strong for _, f in pairs[:first_weak])
    by_id = {t.id: f for t, f in pairs}
    assert by_id["embedding_dim_down"] is strong  # answers both: paired with the stronger
    assert by_id["hash_fewer_buckets"] is weak
    assert [t.id for t, _ in pairs].count("embedding_dim_down") == 1
    assert suggest_from_findings([], KB, "dnn", DNN_KNOBS) == []


def test_real_run_diagnosis_feeds_suggestions():
    metrics, result = _log([0.30, 0.27, 0.24, 0.21], [0.85, 0.82, 0.83, 0.85])
    pairs = suggest_from_findings(diagnose(metrics, result), KB, "dnn", DNN_KNOBS)
    technique, finding = pairs[0]
    assert finding.signal == "overfitting" and "overfitting" in technique.signals


# ------------------------------------------------------------------------ a real run
@pytest.mark.slow
def test_real_overfitting_run_is_diagnosed(tmp_path):
    import torch
    from typer.testing import CliRunner

    from rankwright.cli.main import app

    run = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        outcome = CliRunner().invoke(app, [
            "train", "--run-dir", str(run), "--cache-dir", str(tmp_path / "cache"), "--quiet",
            # 8k training rows, 64-wide embeddings (~70 parameters per row), no dropout, no early
            # stop: validation NE is best at epoch 2 and rises from there. One thread: on a busy
            # two-core machine two threads ran 6x slower.
            "--set", "data.synthetic.rows=10000", "--set", "model.embedding_dim=64",
            "--set", "model.dropout=0", "--set", "model.hidden_units=[64]",
            "--set", "train.learning_rate=0.003", "--set", "train.batch_size=1024", "--set", "train.epochs=6",
            "--set", "train.schedule=constant", "--set", "train.early_stopping_patience=null",
            "--set", "train.num_threads=1",
        ])
    finally:
        torch.set_num_threads(threads)  # the trainer sets it process-wide
    assert outcome.exit_code == 0, outcome.output
    assert json.loads((run / "result.json").read_text())["embedding_parameters"] > 0
    found = _by_signal(diagnose_run(run))
    assert found["overfitting"].strong, found
    assert found["embeddings_too_large"].strong
    assert "overfits" in found["overfitting"].reason


# ------------------------------------------------------ the training budget and the curve
LONGER = {"more_epochs", "more_epochs_cosine", "more_epochs_plateau"}  # "train longer"
REGULARISATION = {"dropout_up", "embedding_l2_light", "net_l2", "adamw_weight_decay", "embedding_l2_strong"}
EARLIER = {"one_epoch_with_decay", "early_stopping_sooner", "fewer_epochs", "monitor_ne"}  # stop earlier


def _rank(findings, train=None, target=None):
    from rankwright.hypotheses.engine import rank_hypotheses
    from rankwright.hypotheses.insights import Context
    from rankwright.hypotheses.knowledge import knob_values

    target = target or builtin_target("dnn", {"train": dict(train or {})})
    paths = {k.path for k in target.knobs}
    return rank_hypotheses(kb=KB, model_family="dnn", knob_paths=paths, current=knob_values(target.base_config, paths),
                           validate=target.validate_changes, context=Context("dnn", rows=100_000, fields=10,
                                                                              mean_cardinality=1000,
                                                                              baseline_ne=0.85),
                           findings=findings, noise=0.003)


def test_a_one_epoch_baseline_is_undertrained_by_its_budget_and_train_longer_ranks_first_or_second(tmp_path):
    # one epoch, no curve: the run's config says the budget was one epoch without early stopping
    metrics, result = _log([0.34], [0.90])
    _write(tmp_path, metrics, result)
    (tmp_path / "config.yaml").write_text("model: {name: dnn}\ntrain: {epochs: 1, early_stopping_patience: null}\n")
    found = _by_signal(diagnose_run(tmp_path))
    short = found["undertrained"]
    assert short.strong and "single epoch" in short.reason and "no early stopping" in short.reason
    assert short.evidence["epoch_budget"] == 1 and short.evidence["early_stopping"] is False
    assert short.evidence["predicted_effect"] < 0 < short.evidence["predicted_sd"]
    # the result alone (one epoch run, not stopped early) says the same without the config
    assert "undertrained" in _by_signal(diagnose(metrics, result))

    ranking = _rank(list(found.values()), train={"epochs": 1, "early_stopping_patience": None})
    top = ranking.hypotheses[:2]
    longer = [h for h in top if h.name in LONGER]
    assert longer, [h.name for h in ranking.hypotheses[:5]]
    h = longer[0]
    assert h.changes["train.epochs"] == 3 and h.expected_to_help and "diagnosis" in h.sources
    assert h.expected_effect == pytest.approx(short.evidence["predicted_effect"])  # the predicted effect size
    assert "predicts -1.50% NE" in h.reason


def test_a_curve_still_improving_at_its_last_epoch_yields_train_longer_with_a_predicted_gain():
    metrics, result = _log([0.34, 0.32, 0.30], [0.95, 0.90, 0.86])  # -4.4% in the last epoch, budget 3
    from rankwright.hypotheses.diagnosis import TrainingBudget

    found = _by_signal(diagnose(metrics, result, training=TrainingBudget(epochs=3, early_stopping=True)))
    short = found["undertrained"]
    assert short.strong and short.evidence["epoch_budget"] == 3 and "0.9000 -> 0.8600" in short.reason
    # the gains shrink 0.05 -> 0.04 (ratio 0.8, clipped to 0.6): 0.04 x (0.6 + ... + 0.6^6) / 0.86
    assert short.evidence["predicted_effect"] == pytest.approx(-0.04 * 0.6 * (1 - 0.6**6) / 0.4 / 0.86)
    ranking = _rank(list(found.values()), train={"epochs": 3})
    assert ranking.hypotheses[0].name in LONGER and ranking.hypotheses[0].changes["train.epochs"] == 9
    # a smaller last gain predicts less, and a run that early stopping ended is not undertrained
    gentle = _by_signal(diagnose(*_log([0.30, 0.29, 0.285], [0.850, 0.840, 0.837])))["undertrained"]
    assert short.evidence["predicted_effect"] / 5 < gentle.evidence["predicted_effect"] < 0
    capped = diagnose(metrics, result, training=TrainingBudget(epochs=10, early_stopping=True))
    assert "undertrained" not in _by_signal(capped)  # 3 of 10 epochs: not the budget (the run was cut)


def test_a_converged_or_overfitting_curve_yields_regularisation_and_earlier_stopping_not_train_longer():
    for curve in (HEALTHY, dict(train_losses=[0.30, 0.27, 0.24, 0.21, 0.18, 0.15],
                                nes=[0.85, 0.82, 0.825, 0.835, 0.85, 0.87])):
        found = _by_signal(diagnose(*_log(**curve)))
        assert "undertrained" not in found and "overtrained" not in found  # the best epoch was kept
    overfit = diagnose(*_log([0.30, 0.27, 0.24, 0.21, 0.18, 0.15], [0.85, 0.82, 0.825, 0.835, 0.85, 0.87]))
    answers = {t.id for t, _ in suggest_from_findings(overfit, KB, "dnn", DNN_KNOBS)}
    assert REGULARISATION <= answers and "early_stopping_sooner" in answers and not answers & LONGER
    ranking = _rank(overfit)
    helping = [h.name for h in ranking.hypotheses if h.expected_to_help]
    assert set(helping[:3]) <= REGULARISATION | EARLIER and set(helping[:3]) & REGULARISATION, helping
    assert not set(helping) & LONGER  # more epochs for a run that stopped early: not expected to help
    longer_ranks = [h.rank for h in ranking.hypotheses if h.name in LONGER]
    assert all(rank > len(helping) for rank in longer_ranks)


def test_a_model_kept_past_its_best_epoch_is_overtrained_and_earlier_stopping_is_predicted_to_help():
    # the weights kept by AUC (the trainer's default monitor) or not restored: the run reports
    # its last epoch's NE, 6.1% above its best
    metrics, result = _log([0.30, 0.27, 0.24, 0.21], [0.85, 0.82, 0.83, 0.87])
    result["valid"]["ne"] = 0.87
    found = _by_signal(diagnose(metrics, result))
    over = found["overtrained"]
    assert over.strong and over.evidence["predicted_effect"] == pytest.approx(0.82 / 0.87 - 1)
    assert "overfitting" in found and "undertrained" not in found
    ranking = _rank(list(found.values()))  # the built-in defaults: 30 epochs, weights kept by AUC
    by_name = {h.name: h for h in ranking.hypotheses}
    assert by_name["fewer_epochs"].changes == {"train.epochs": 15} and by_name["fewer_epochs"].expected_to_help
    assert by_name["monitor_ne"].expected_to_help and by_name["monitor_ne"].rank <= 3


def test_train_longer_reaches_a_foreign_codebase_through_its_epochs_role(tmp_path, monkeypatch):
    import yaml

    from rankwright.agent.learning import rank_for_campaign
    from rankwright.agent.spec import load_campaign
    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    target = {"name": "foreign", "command": ["{python}", "-c", "pass"],
              "base_config": {"model": {"name": "dnn"}, "fit": {"passes": 1, "lr": 0.001}},
              "knobs": [{"path": "fit.passes", "kind": "int", "low": 1, "high": 100, "default": 1},
                        {"path": "fit.lr", "kind": "float", "low": 1e-6, "high": 1.0, "log": True, "default": 0.001}],
              "roles": {"epochs": "fit.passes", "learning_rate": "fit.lr"}, "metrics": {"objective": "logloss"}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(target))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "f", "target": "t.yaml", "budget": {"amount": 1.0}}))
    spec, loaded = load_campaign(tmp_path / "c.yaml")
    run = tmp_path / "run"
    metrics, result = _log([0.34], [0.90])
    result.pop("stopped_early")  # a foreign trainer need not say: its config's budget does
    _write(run, metrics, result)
    (run / loaded.config_file).write_text(yaml.safe_dump(target["base_config"]))
    findings = diagnose_run(run, config_file=loaded.config_file, epochs_path=loaded.role_paths()["epochs"])
    assert _by_signal(findings)["undertrained"].evidence["epoch_budget"] == 1
    ranking = rank_for_campaign(spec, loaded, open_store(), findings=findings)
    assert ranking.hypotheses[0].name == "more_epochs" and ranking.hypotheses[0].changes == {"fit.passes": 3}


def test_the_first_round_planned_before_any_run_already_trains_a_one_epoch_baseline_longer(tmp_path, monkeypatch):
    import yaml

    from rankwright.agent.learning import research
    from rankwright.agent.spec import load_campaign
    from rankwright.hypotheses.diagnosis import TrainingBudget, budget_of_config, diagnose_budget
    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    base = {"data": {"source": "synthetic", "synthetic": {"rows": 10_000}}, "train": {"epochs": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "one", "budget": {"amount": 1.0}, "base_config": base}))
    spec, target = load_campaign(tmp_path / "c.yaml")
    ranking, notes = research(spec, target, open_store(), tmp_path, use_llm=False)
    assert any("training budget alone: undertrained" in n for n in notes), notes
    assert {h.name for h in ranking.hypotheses[:2]} & LONGER, [h.name for h in ranking.hypotheses[:5]]
    # the budget read from a config: by the epochs role, by name, or the knob's default
    assert budget_of_config({"train": {"epochs": 1, "early_stopping_patience": None}}) == TrainingBudget(1, False)
    assert budget_of_config({"fit": {"passes": 2}}, epochs_path="fit.passes") == TrainingBudget(2, None)
    assert budget_of_config({"solver": {"num_epochs": 5, "patience": 3}}) == TrainingBudget(5, True)
    assert budget_of_config({}, epochs_path="fit.passes", epochs_default=1) == TrainingBudget(1, None)
    assert diagnose_budget(TrainingBudget(4, True)) == [] and diagnose_budget(TrainingBudget()) == []
