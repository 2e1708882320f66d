import json
import sys
import time

import pytest

from rankwright.ranking.knobs import Knob
from rankwright.targets import KnobSpec, MetricsSpec, Target, TargetError


def make_target(**overrides):
    fields = dict(
        name="toy",
        command=("{python}", "train.py", "--config", "{config}", "--out", "{run_dir}"),
        knobs=(
            KnobSpec(path="model.lr", kind="float", low=0.0, high=1.0, low_inclusive=False, log=False, default=0.1),
            KnobSpec(path="model.layers", kind="int_tuple", low=1, high=64, min_length=1, max_length=3, default=(8,)),
            KnobSpec(path="model.act", kind="choice", choices=("relu", "gelu"), default="relu"),
            KnobSpec(path="model.bn", kind="bool", choices=(False, True), default=True),
            KnobSpec(path="train.epochs", kind="int", low=1, high=10, default=2),
            KnobSpec(path="train.patience", kind="int", low=1, high=5, nullable=True, default=2),
        ),
        base_config={"model": {"lr": 0.1, "act": "relu"}, "train": {"epochs": 2}},
        metrics=MetricsSpec(objective="valid.auc", direction="maximize"),
    )
    fields.update(overrides)
    return Target(**fields)


def test_from_knob_mirrors_the_ranking_knob():
    knob = Knob(path="train.lr", kind="float", default=0.001, low=0.0, high=1.0, low_inclusive=False)
    spec = KnobSpec.from_knob(knob)
    assert (spec.path, spec.kind, spec.low, spec.high, spec.low_inclusive) == ("train.lr", "float", 0.0, 1.0, False)
    assert spec.describe_range() == knob.describe_range() == "(0, 1]"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"model.lr": 1}, {"model.lr": 1.0}),
        ({"train.epochs": 3.0}, {"train.epochs": 3}),
        ({"model.layers": (4, 8)}, {"model.layers": [4, 8]}),
        ({"train.patience": None}, {"train.patience": None}),
        ({"model.bn": False, "model.act": "gelu"}, {"model.bn": False, "model.act": "gelu"}),
    ],
)
def test_good_changes_are_normalised(changes, expected):
    assert make_target().validate_changes(changes) == expected


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"model.lr": 0.0}, "knob model.lr: 0.0 is not allowed; allowed: (0, 1]"),
        ({"model.lr": float("nan")}, "model.lr"),
        ({"model.lr": True}, "model.lr"),
        ({"train.epochs": 11}, "allowed: [1, 10]"),
        ({"train.epochs": 2.5}, "train.epochs"),
        ({"train.epochs": "3"}, "train.epochs"),
        ({"train.epochs": None}, "train.epochs: None"),
        ({"model.layers": []}, "length 1..3"),
        ({"model.layers": [4, 65]}, "int_tuple of [1, 64]"),
        ({"model.act": "tanh"}, "allowed: relu | gelu"),
        ({"model.bn": 1}, "model.bn"),
    ],
)
def test_bad_values_name_knob_value_and_range(changes, fragment):
    with pytest.raises(TargetError) as err:
        make_target().validate_changes(changes)
    assert fragment in str(err.value)


def test_unknown_knob_lists_close_matches():
    with pytest.raises(TargetError, match=r"unknown knob 'model.lrr'.*did you mean model.lr"):
        make_target().validate_changes({"model.lrr": 0.1})
    with pytest.raises(TargetError, match="unknown knob 'zzz' for target 'toy'$"):
        make_target().validate_changes({"zzz": 1})


def test_render_fills_placeholders_and_applies_changes(tmp_path):
    target = make_target()
    command, config = target.render({"model.layers": [16, 8], "train.epochs": 5}, tmp_path)
    assert command == (sys.executable, "train.py", "--config", str(tmp_path / "experiment.yaml"), "--out", str(tmp_path))
    assert config == {"model": {"lr": 0.1, "act": "relu", "layers": [16, 8]}, "train": {"epochs": 5}}
    assert target.base_config["train"]["epochs"] == 2  # the base is never mutated
    path = target.write_config(tmp_path, config)
    assert path == tmp_path / "experiment.yaml" and "layers" in path.read_text()


def test_bad_descriptions_are_refused():
    with pytest.raises(ValueError, match="unknown placeholder {cfg}; did you mean {config}"):
        make_target(command=("{python}", "{cfg}"))
    with pytest.raises(ValueError, match="declared twice"):
        make_target(knobs=(KnobSpec(path="a", kind="bool"), KnobSpec(path="a", kind="bool")))
    with pytest.raises(ValueError, match="needs a non-empty 'choices'"):
        KnobSpec(path="a", kind="choice")
    with pytest.raises(ValueError, match="log range needs low > 0"):
        KnobSpec(path="a", kind="float", low=0.0, high=1.0, log=True)


def test_read_result_from_json_lines(tmp_path):
    target = make_target()
    assert target.read_result(tmp_path) is None
    log = tmp_path / "metrics.jsonl"
    log.write_text(json.dumps({"event": "epoch", "valid": {"auc": 0.6}}) + "\n")
    assert target.read_result(tmp_path) is None  # not finished yet
    with log.open("a") as handle:
        handle.write(json.dumps({"event": "result", "valid": {"auc": 0.7, "ne": 0.9}}) + "\n")
        handle.write(json.dumps({"event": "result", "valid": {"auc": 0.75, "ne": 0.8}}) + "\n")
        handle.write('{"event": "res')  # torn by a kill
    result = target.read_result(tmp_path)
    assert result["objective"] == 0.75 and result["direction"] == "maximize"
    assert result["metrics"]["valid"]["ne"] == 0.8


def test_read_result_from_a_json_file_and_missing_objective(tmp_path):
    target = make_target(metrics=MetricsSpec(file="out.json", format="json", objective="valid.ne"))
    (tmp_path / "out.json").write_text(json.dumps({"valid": {"auc": 0.7}}))
    with pytest.raises(TargetError, match=r"no 'valid.ne' \(missing 'ne'; found: auc\)"):
        target.read_result(tmp_path)
    (tmp_path / "out.json").write_text(json.dumps({"valid": {"ne": 0.81}}))
    assert target.read_result(tmp_path)["objective"] == 0.81


def test_heartbeat_age_reads_the_time_field_or_mtime(tmp_path):
    target = make_target()
    assert target.heartbeat_age(tmp_path) is None and not target.is_stale(tmp_path)
    beat = tmp_path / "heartbeat.json"
    beat.write_text(json.dumps({"time": 1000.0}))
    assert target.heartbeat_age(tmp_path, now=1030.0) == 30.0
    assert target.is_stale(tmp_path, now=1000.0 + 301)
    beat.write_text("not json")
    assert target.heartbeat_age(tmp_path) < 5.0
    assert make_target(metrics=MetricsSpec(heartbeat_file=None)).heartbeat_age(tmp_path, now=time.time()) is None


def test_targets_answer_what_the_agent_asks_of_them():
    """The agent drives targets through two small Protocols, never their concrete class."""
    from pathlib import Path

    from rankwright.agent.ports import DescribedTarget, RunnableTarget
    from rankwright.targets import builtin_target, load_target

    external = load_target(Path(__file__).resolve().parents[2] / "examples/targets/sklearn_logreg/target.yaml")
    for target in (builtin_target("dnn"), external):
        assert isinstance(target, RunnableTarget) and isinstance(target, DescribedTarget)
    assert builtin_target("dcnv2").low_fidelity() == {"data.train_fraction": 0.5}
    assert external.low_fidelity() == {} and external.smoke_changes() == {}
    assert builtin_target("dnn").model_family() == "dnn"


def test_a_command_driven_by_flags_gets_knob_values_and_its_own_environment(tmp_path):
    target = make_target(
        command=("{python}", "train.py", "--lr", "{model.lr}", "{knobs}", "--out", "{run_dir}"),
        python="venv/bin/python", root=str(tmp_path), launcher=("nice", "-n", "5"),
        env={"MODEL_OUT": "{run_dir}/model", "LR": "{model.lr}"}, knob_flag="--{leaf}={value}")
    command, config = target.render({"model.lr": 0.25, "model.layers": (16, 8)}, tmp_path / "run")
    assert command[:4] == ("nice", "-n", "5", str(tmp_path / "venv/bin/python"))
    assert command[4:7] == ("train.py", "--lr", "0.25")
    flags = command[7:-2]  # every knob with a value, spelt by knob_flag; a tuple as JSON, a bool in lower case
    assert "--lr=0.25" in flags and "--layers=[16, 8]" in flags and "--act=relu" in flags
    assert "--bn=true" not in flags and "--epochs=2" in flags  # model.bn has no value in the config
    assert command[-2:] == ("--out", str(tmp_path / "run"))
    assert target.render_env({"model.lr": 0.25}, tmp_path / "run") == {"MODEL_OUT": f"{tmp_path / 'run'}/model",
                                                                        "LR": "0.25"}
    with pytest.raises(ValueError, match=r"unknown placeholder \{model.lrr\}; did you mean \{model.lr\}"):
        make_target(command=("run", "--lr", "{model.lrr}"))
    with pytest.raises(ValueError, match=r"knob_flag .*unknown placeholder \{name\}"):
        make_target(knob_flag="--{name}={value}")


def test_a_target_says_what_kind_of_model_it_trains():
    assert make_target(family="dcnv2").model_family() == "dcnv2"  # declared: model-specific techniques apply
    assert make_target(base_config={"model": "deepfm"}).model_family() == "deepfm"  # a model named by a string
    assert make_target(base_config={"model": {"name": "dnn"}}).model_family() == "dnn"
    assert make_target(base_config={}).model_family() == "toy"  # nothing said: only its name


def test_the_seed_is_a_role_declared_or_found_by_name():
    assert make_target().role_paths().get("seed") is None  # no seed knob: repeats could not differ
    seeded = make_target(knobs=(KnobSpec(path="train.random_seed", kind="int", low=0, high=99, default=0),))
    assert seeded.role_paths()["seed"] == "train.random_seed"
    two = (KnobSpec(path="data.seed", kind="int", low=0, high=9, default=0),
           KnobSpec(path="train.seed", kind="int", low=0, high=9, default=0))
    assert make_target(knobs=two).role_paths().get("seed") is None  # ambiguous: it must be declared
    assert make_target(knobs=two, roles={"seed": "train.seed"}).role_paths()["seed"] == "train.seed"
    with pytest.raises(ValueError, match="roles: seed names 'train.sed', which is not a declared knob"):
        make_target(knobs=two, roles={"seed": "train.sed"})


def test_an_external_target_s_data_is_identified_by_its_files(tmp_path):
    (tmp_path / "a.csv").write_text("label,x\n1,2\n")
    (tmp_path / "b.csv").write_text("label,x\n0,3\n")

    def on(name, **extra):
        return make_target(root=str(tmp_path), base_config={"data": {"path": name}}, data_files=("data.path",),
                           **extra)

    assert on("a.csv").data_identity() == on("a.csv").data_identity()
    assert on("a.csv").data_identity() != on("b.csv").data_identity()
    before = on("a.csv").data_identity()
    (tmp_path / "a.csv").write_text("label,x\n1,2\n0,5\n")  # the same name, other data
    assert on("a.csv").data_identity() != before
    undeclared = [make_target(base_config={"data": {"rows": n}}).data_identity() for n in (10, 20)]
    assert undeclared[0] != undeclared[1]  # without declared files, the data section tells them apart
    assert make_target(base_config={}).data_identity() == ""  # nothing said: unknown, not "the same"


def test_relative_data_files_reach_runs_absolute_and_the_smoke_run_starts_as_a_run_does(tmp_path, monkeypatch):
    """A run starts in its own folder with the target's environment; so does the smoke run."""
    import sys

    from rankwright.agent.planning import _smoke_run

    (tmp_path / "a.csv").write_text("label,x\n1,2\n")
    (tmp_path / "job.py").write_text(
        "import json, os, sys, pathlib\n"
        "data = pathlib.Path(sys.argv[1].split('=', 1)[1])\n"
        "assert data.is_absolute() and data.exists(), data\n"
        "assert os.environ['GREETING'] == 'hi', 'no env'\n"
        "(pathlib.Path(sys.argv[2]) / 'metrics.jsonl').write_text(json.dumps({'event': 'result', 'loss': 0.5}))\n")
    target = make_target(
        command=(sys.executable, "{root}/job.py", "--data={data.path}", "{run_dir}"), root=str(tmp_path),
        base_config={"data": {"path": "a.csv"}}, data_files=("data.path",),
        knobs=(KnobSpec(path="data.path", kind="str"),), env={"GREETING": "hi"},
        metrics=MetricsSpec(objective="loss"))
    command, config = target.render({}, tmp_path / "run")
    assert config["data"]["path"] == str(tmp_path / "a.csv") and f"--data={tmp_path / 'a.csv'}" in command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where `plan` is typed does not matter
    item = _smoke_run(target, elsewhere, timeout_s=60)
    assert item.ok, item.detail


def test_a_target_says_how_its_smoke_run_and_its_cheap_validation_are_made():
    target = make_target(smoke={"train.epochs": 1}, low_fidelity_changes={"train.epochs": 1})
    assert target.smoke_changes() == {"train.epochs": 1} and target.low_fidelity() == {"train.epochs": 1}
    with pytest.raises(ValueError, match="smoke: 'train.epoch' is not a declared knob"):
        make_target(smoke={"train.epoch": 1})
