"""The proposal report: value types, config diff, and the three files write_report writes."""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rankwright.report import (
    ABSENT,
    Curve,
    HypothesisEvidence,
    MetricComparison,
    PhaseCost,
    Proposal,
    Revision,
    SpendPoint,
    config_diff,
    render_markdown,
    write_report,
)

BASELINE = {
    "data": {
        "source": "synthetic",
        "synthetic": {"rows": 200000, "structure": "pairwise", "base_rate": 0.05, "seed": 7},
        "train_fraction": 1.0,
    },
    "model": {"name": "dcnv2", "embedding_dim": 10, "hidden_units": [400, 400, 400], "dropout": 0.4,
              "num_cross_layers": 4},
    "train": {"optimizer": "adam", "learning_rate": 0.001, "epochs": 10, "grad_clip_norm": 10.0,
              "monitor": "ne"},
}


def _proposal_config() -> dict:
    config = copy.deepcopy(BASELINE)
    config["model"]["embedding_dim"] = 16
    config["model"]["num_cross_layers"] = 6
    config["train"]["optimizer"] = "adamw"
    config["train"]["weight_decay"] = 0.01
    return config


def _hypothesis(name, verdict, *, source="knowledge", phase="validation", fidelity="low (train_fraction 0.5)",
                effect=-0.004, ci=(-0.006, -0.002), p=0.01, promoted=False, changes=None, why="", seeds=3):
    return HypothesisEvidence(
        name=name, source=source, changes=changes or {"model.embedding_dim": 16}, phase=phase,
        fidelity=fidelity, seeds=seeds, effect=effect, ci_low=None if ci is None else ci[0],
        ci_high=None if ci is None else ci[1], p_adjusted=p, verdict=verdict, promoted=promoted,
        why=why or f"{name} was judged {verdict} from a paired test on shared seeds.",
    )


HYPOTHESES = (
    _hypothesis("wider_embeddings", "helped", effect=-0.0042, ci=(-0.0061, -0.0023), p=0.004, promoted=True,
                why="Wider embeddings cut NE on every seed."),
    _hypothesis("deeper_cross_net", "helped", source="history", effect=-0.0031, ci=(-0.0050, -0.0012), p=0.02,
                promoted=True, changes={"model": {"num_cross_layers": 6}}),
    _hypothesis("adamw_decay", "helped", source="diagnosis", effect=-0.0012, ci=(-0.0022, -0.0002), p=0.08,
                promoted=True, changes={"train.optimizer": "adamw", "train.weight_decay": 0.01}),
    _hypothesis("dropout_0.1", "hurt", effect=0.0055, ci=(0.0031, 0.0079), p=0.003,
                changes={"model.dropout": 0.1}),
    _hypothesis("batch_16k", "inconclusive", source="llm", effect=-0.0004, ci=(-0.0021, 0.0013), p=0.61,
                changes={"train.batch_size": 16384}),
    _hypothesis("lr_warmup", "no gain", source="spec", effect=0.0001, ci=(-0.0003, 0.0005), p=1.0,
                changes={"train.warmup_steps": 500}),
    _hypothesis("mixture_of_experts", "failed", effect=None, ci=None, p=None,
                changes={"model.use_low_rank_mixture": True}, why="Every seed ran out of memory."),
    _hypothesis("cosine_schedule", "pruned", source="exploitation", phase="exploitation", fidelity="full",
                effect=None, ci=None, p=None, seeds=1, changes={"train.schedule": "cosine"}),
    _hypothesis("wide+deep+adamw", "helped", source="combination", phase="combination",
                fidelity="low (train_fraction 0.5)", effect=-0.0071, ci=(-0.0093, -0.0049), p=0.001,
                promoted=True, changes={"model.embedding_dim": 16, "model.num_cross_layers": 6,
                                        "train.optimizer": "adamw", "train.weight_decay": 0.01}),
    _hypothesis("wide+deep+adamw", "helped", source="combination", phase="confirmation", fidelity="full",
                effect=-0.0064, ci=(-0.0088, -0.0040), p=None, seeds=5),
)


def _curve(label, start, slope):
    epochs = tuple(range(1, 9))
    return Curve(label, epochs, tuple(start - slope * (1 - 0.7 ** e) for e in epochs))


def make_proposal(**changes) -> Proposal:
    proposal_config = _proposal_config()
    proposal = Proposal(
        campaign="dcnv2-synthetic-nov",
        objective="valid.ne",
        unit="cpu_hours",
        approved_budget=40.0,
        spent=31.4159,
        found_better=True,
        headline="Wider embeddings, a deeper cross network and AdamW together cut test NE by 0.64% "
                 "on 5 seeds; launch it.",
        baseline_config=BASELINE,
        proposal_config=proposal_config,
        config_diff=config_diff(BASELINE, proposal_config),
        metrics=(
            MetricComparison("ne", True, 0.83121, 0.82589, -0.00532, -0.00731, -0.00333, 5),
            MetricComparison("auc", False, 0.76012, 0.76455, 0.00443, 0.00201, 0.00685, 5),
            MetricComparison("logloss", True, 0.16502, 0.16397, -0.00105, -0.00145, -0.00065, 5),
            MetricComparison("calibration", True, 0.0121, 0.0117, -0.0004, -0.0021, 0.0013, 5),
        ),
        hypotheses=HYPOTHESES,
        curves=(_curve("baseline seed 1", 0.86, 0.03), _curve("baseline seed 2", 0.861, 0.031),
                _curve("proposal seed 1", 0.86, 0.036), _curve("proposal seed 2", 0.859, 0.037)),
        spend=(SpendPoint(1.0, "validation", 3.2), SpendPoint(5.5, "validation", 12.8),
               SpendPoint(9.0, "combination", 18.1), SpendPoint(14.0, "exploitation", 26.0),
               SpendPoint(20.0, "confirmation", 31.4159)),
        phase_costs=(PhaseCost("validation", 10.0, 12.8, 14.0), PhaseCost("combination", 6.0, 5.3, 8.0),
                     PhaseCost("exploitation", 9.0, 7.9, 12.0), PhaseCost("confirmation", 5.0, 5.4159, 6.0)),
        revisions=(Revision(1, "validation", "The plan as approved.", 24),
                   Revision(2, "combination", "Three hypotheses helped at low fidelity; combine them.", 6),
                   Revision(3, "confirmation", "The combination beat every single change; confirm at full "
                                               "fidelity on 5 seeds.", 10)),
        correction="Holm over the 8 hypotheses of validation, alpha 0.10",
        rank_agreement=("Spearman", 0.83, 7),
        bayes_ne=0.7912,
        gap_closed=0.133,
        ruled_out=("Lower dropout (0.1) hurt NE by 0.55%.", "Warm-up gave no gain worth having"),
        notes=("Calibration moved within noise.",),
    )
    return replace(proposal, **changes)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Proposal, dict[str, Path]]:
    proposal = make_proposal()
    return proposal, write_report(proposal, tmp_path_factory.mktemp("report"))


def test_the_three_files_are_written(written):
    proposal, paths = written
    assert set(paths) == {"md", "html", "yaml"}
    assert [p.name for p in paths.values()] == ["report.md", "report.html", "proposal.yaml"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())


def test_proposal_yaml_is_exactly_the_proposal_config(written):
    proposal, paths = written
    text = paths["yaml"].read_text()
    assert text.startswith("# Proposal of campaign dcnv2-synthetic-nov")
    assert yaml.safe_load(text) == proposal.proposal_config


def test_proposal_yaml_is_a_valid_run_config(written):
    from rankwright.ranking.config import load_run_config

    config = load_run_config(written[1]["yaml"])
    assert config.model.num_cross_layers == 6
    assert config.train.optimizer == "adamw"


def test_markdown_has_the_command_the_diff_the_evidence_and_the_costs(written):
    proposal, paths = written
    md = paths["md"].read_text()
    assert "rankwright train proposal.yaml" in md
    assert str(paths["yaml"].resolve()) in md
    for title in ("## Reproduce", "## Baseline against proposal (test split)", "## What changed", "## Evidence",
                  "## Cost", "## Decisions", "## Ruled out", "## Notes"):
        assert title in md
    assert md.index("## Reproduce") < md.index("## Ruled out")
    # config diff rows
    assert re.search(r"\| model\.embedding_dim +\| +10 +\| +16 +\|", md)
    assert re.search(r"\| train\.weight_decay +\| +\(absent\) +\| +0\.01 +\|", md)
    assert re.search(r"\| train\.optimizer +\| +adam +\| +adamw +\|", md)
    for h in proposal.hypotheses:
        assert h.name in md and h.verdict in md
    assert "-0.42%" in md and "[-0.61%, -0.23%]" in md
    assert re.search(r"\| wider_embeddings +\| 3 \| +-0\.42% \| +\[-0\.61%, -0\.23%\] \| 0\.004 \| helped \* +\|", md)
    assert re.search(r"\| dropout_0\.1 +\| 3 \| +\+0\.55% \| .* \| hurt +\|", md)
    assert "marks a hypothesis promoted" in md
    flat = " ".join(md.split())
    assert "Multiple-testing correction: Holm over the 8 hypotheses of validation, alpha 0.10." in flat
    assert "Spearman 0.83 over 7 points" in flat
    # cost: validation estimated 10, actual 12.8 -> +28%; total 30 -> 31.4 -> +5%
    assert re.search(r"\| validation +\| +10 \| +12\.8 \| +\+28% \|", md)
    assert re.search(r"\| total +\| +30 \| +31\.4 \| +\+4\.7% \|", md)
    assert "Spent 31.4 of 40 CPU-hours approved (79%)" in flat
    assert "NE 0.7912" in flat and "13% of the baseline's gap" in flat
    assert "Revision 3 (confirmation, 10 experiments)" in flat
    assert "Warm-up gave no gain worth having." in md


def test_markdown_tables_read_at_80_columns(written):
    paths = written[1]
    yaml_path = str(paths["yaml"].resolve())  # a long temporary path cannot be wrapped
    long = [line for line in paths["md"].read_text().splitlines() if len(line) > 80 and yaml_path not in line]
    assert long == []


def test_html_is_self_contained_with_four_charts(written):
    proposal, paths = written
    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page
    assert "Wider embeddings, a deeper cross network and AdamW together cut test NE by 0.64%" in page
    assert "rankwright train proposal.yaml" in page
    for h in proposal.hypotheses:
        assert f"<td>{h.name}</td>" in page


def test_html_escapes_text(tmp_path):
    proposal = make_proposal(headline="NE <b>dropped</b> & AUC rose", notes=("<script>alert(1)</script>",))
    page = write_report(proposal, tmp_path)["html"].read_text()
    assert "NE &lt;b&gt;dropped&lt;/b&gt; &amp; AUC rose" in page
    assert "<script>" not in page


def test_a_chart_without_data_is_skipped_with_a_reason(tmp_path):
    proposal = make_proposal(curves=(), spend=())
    page = write_report(proposal, tmp_path)["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert "No learning curves were recorded" in page
    assert "No spend was recorded over time" in page


def test_nothing_better_says_so_first_and_lists_what_was_ruled_out(tmp_path):
    proposal = make_proposal(
        found_better=False,
        headline="After 24 experiments the baseline stands.",
        proposal_config=BASELINE,
        config_diff=(),
        ruled_out=("Wider embeddings did not help at full fidelity.", "AdamW gave no gain worth having."),
    )
    paths = write_report(proposal, tmp_path)
    md = paths["md"].read_text()
    assert "The proposal is the baseline: no change ships." in md
    assert md.index("The proposal is the baseline: no change ships.") < md.index("## ")
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    assert sections[0] == "Ruled out"
    assert "- Wider embeddings did not help at full fidelity." in md
    assert "- AdamW gave no gain worth having." in md
    assert "Nothing: the proposal is the baseline configuration." in md
    assert yaml.safe_load(paths["yaml"].read_text()) == BASELINE
    assert "The proposal is the baseline: no change ships." in paths["html"].read_text()
    # the proposal is the baseline: no arm's test numbers are shown as the proposal's, no gap is closed
    assert "## The baseline on the test split" in md and "0.8259" not in md and "closes" not in md
    assert re.search(r"\| ne +\| +0\.8312 \| +5 \|", md)


def test_empty_proposal_still_renders(tmp_path):
    proposal = make_proposal(metrics=(), hypotheses=(), curves=(), spend=(), phase_costs=(), revisions=(),
                             rank_agreement=None, bayes_ne=None, gap_closed=None, ruled_out=(), notes=(),
                             correction="")
    paths = write_report(proposal, tmp_path)
    md = paths["md"].read_text()
    assert "No hypothesis was tried." in md and "Multiple-testing correction" not in md
    assert "The plan was never revised." in md and "Nothing was ruled out." in md
    assert "Bayes" not in md
    assert "data:image/png" not in paths["html"].read_text()


def test_config_diff_on_nested_documents():
    baseline = {"a": {"b": 1, "c": [1, 2], "gone": "x", "deep": {"k": None}}, "same": {"v": 3}, "flag": 1}
    proposal = {"a": {"b": 2, "c": [1, 2], "new": [4], "deep": {"k": 0}}, "same": {"v": 3}, "flag": True,
                "extra": {"e": 1.5}}
    assert config_diff(baseline, proposal) == (
        ("a.b", 1, 2),
        ("a.deep.k", None, 0),
        ("a.gone", "x", ABSENT),
        ("a.new", ABSENT, [4]),
        ("extra.e", ABSENT, 1.5),
        ("flag", 1, True),
    )
    assert config_diff({"c": [1, 2]}, {"c": [2, 1]}) == (("c", [1, 2], [2, 1]),)
    assert config_diff({"c": [1, 2]}, {"c": (1, 2)}) == ()
    assert config_diff(BASELINE, BASELINE) == ()


def test_values_are_immutable_and_checked():
    curve = Curve("proposal seed 1", [1, 2], [0.9, 0.8])
    assert curve.epochs == (1, 2) and curve.group == "proposal"
    with pytest.raises(ValueError, match="2 epochs but 1 values"):
        Curve("x", (1, 2), (0.9,))
    with pytest.raises(ValueError, match="low end"):
        MetricComparison("ne", True, 0.8, 0.79, -0.01, 0.0, -0.02, 3)
    proposal = make_proposal(notes=["a list becomes a tuple"])
    assert proposal.notes == ("a list becomes a tuple",)
    assert proposal.metrics[0].outcome == "better" and proposal.metrics[1].outcome == "better"
    assert proposal.metrics[3].outcome == "unclear"
    assert PhaseCost("v", 10.0, 12.8, 14.0).error == pytest.approx(0.28)


def test_importing_the_report_leaves_matplotlib_and_torch_alone():
    import subprocess

    code = ("import sys, rankwright.report; "
            "print(sorted(m for m in ('matplotlib', 'torch', 'rankwright.agent') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_render_markdown_without_a_file(written):
    md = render_markdown(written[0])
    assert md.startswith("# Proposal: dcnv2-synthetic-nov\n")
    assert "proposal.yaml is at" not in md


def test_a_run_on_real_data_has_no_bayes_limit_and_the_proposal_says_none():
    from rankwright.report.build import _bayes_ne

    # the trainer writes "bayes_test": null off synthetic data (Frappe): the report crashed on it
    assert _bayes_ne({"metrics": {"test": {"ne": 0.4}, "bayes_test": None}}) is None
    assert _bayes_ne({"metrics": {"bayes_test": {"ne": 0.8}}}) == 0.8
    assert _bayes_ne(None) is None


def test_a_foreign_target_s_proposal_is_reproduced_with_its_own_command():
    """`rankwright train` is the built-in trainer's: a codebase of one's own is started its own way."""
    from rankwright.report.build import reproduce_command
    from rankwright.targets import load_target

    examples = Path(__file__).resolve().parents[2] / "examples" / "targets"
    fuxictr = load_target(examples / "fuxictr" / "target.yaml")
    line = reproduce_command(fuxictr, {"learning_rate": 0.003})
    assert line.startswith("mkdir -p run && cd run && PYTHONPATH=") and "OMP_NUM_THREADS=2 " in line
    assert f"{examples / 'fuxictr' / '.venv' / 'bin' / 'python'} {examples / 'fuxictr' / 'train.py'}" in line
    assert "--learning_rate=0.003" in line and "'--dnn_hidden_units=[400, 400, 400]'" in line  # quoted for a shell
    sklearn = load_target(examples / "sklearn_logreg" / "target.yaml")
    assert "cp ../proposal.yaml experiment.yaml && " in reproduce_command(sklearn, {})  # it reads a config file
