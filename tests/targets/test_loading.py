import subprocess
from pathlib import Path

import pytest

from rankwright.targets import TargetError, load_target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "targets" / "sklearn_logreg" / "target.yaml"


def write(tmp_path, text):
    path = tmp_path / "target.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: [unclosed", "flow sequence that starts at line 1, column 7"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: t\ncommand: [run]\ncolour: red\n", "colour: unknown key"),
        ("name: t\n", "command: Field required"),
        ("name: t\ncommand: [run, '{cfg}']\n", "unknown placeholder {cfg}; did you mean {config}?"),
        ("name: t\ncommand: [run]\nknobs:\n  - {path: a.b, kind: choice}\n", "knobs[0] (a.b)"),
        ("name: t\ncommand: [run]\nknobs:\n  - {path: a.b, kind: complex}\n", "knobs[0] (a.b).kind"),
        ("name: t\ncommand: [run]\nknobs:\n  - {path: a.b, kind: int, lo: 1}\n", "knobs[0] (a.b).lo: unknown key"),
        ("name: t\ncommand: [run]\nmetrics: {direction: up}\n", "metrics.direction"),
        ("name: t\ncommand: [run]\ncost: {per_row_seconds: -1}\n", "cost.per_row_seconds"),
    ],
)
def test_bad_files_name_the_file_and_the_field(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(TargetError) as err:
        load_target(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(TargetError, match=r"cannot read the target \(No such file"):
        load_target(tmp_path / "absent.yaml")


def test_root_is_the_file_folder_unless_given(tmp_path):
    assert load_target(write(tmp_path, "name: t\ncommand: [run]\n")).root == str(tmp_path.resolve())
    (tmp_path / "code").mkdir()
    target = load_target(write(tmp_path, "name: t\ncommand: ['{root}/x']\nroot: code\n"))
    assert target.render({}, tmp_path)[0] == (f"{tmp_path.resolve() / 'code'}/x",)


def test_the_sklearn_example_runs_end_to_end(tmp_path):
    target = load_target(EXAMPLE)
    assert target.name == "sklearn-logreg" and target.knob("model.C").log
    with pytest.raises(TargetError, match=r"model.C: 0.0 is not allowed; allowed: \[0.0001, 10000\]"):
        target.validate_changes({"model.C": 0.0})
    with pytest.raises(TargetError, match="did you mean model.penalty"):
        target.validate_changes({"model.penalti": "l1"})
    with pytest.raises(TargetError, match="allowed: l1 | l2"):
        target.validate_changes({"model.penalty": "elasticnet"})

    run_dir = tmp_path / "run"
    command, config = target.render({"model.C": 0.5, "model.penalty": "l1", "model.max_iter": 50}, run_dir)
    config["data"]["rows"] = 600  # keep the test fast
    target.write_config(run_dir, config)
    assert target.read_result(run_dir) is None
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = target.read_result(run_dir)
    assert result["direction"] == "minimize"
    assert 0.0 < result["objective"] < 0.693  # better than a coin
    assert result["metrics"]["valid_auc"] > 0.7 and result["metrics"]["train_rows"] == 450
    assert target.heartbeat_age(run_dir) < 60 and not target.is_stale(run_dir)
    assert target.cost.features(config).rows == 600
