"""A target: how the agent runs one model codebase and reads what a run produced.

A `Target` is a frozen description, not a process: a command template, a typed knob
schema, the configuration experiments start from, where metrics and heartbeats appear, and
a cost model. It never starts anything; executors run what `render` returns.

Placeholders in `command` and `env`: `{python}` (the target's own interpreter when it
names one, else Rankwright's), `{config}` (the experiment's config file, written by the
agent from `render`'s config), `{run_dir}`, `{root}` (the target's folder, for codebases
described by a YAML file), and any declared knob by its path (`--lr {train.learning_rate}`:
the experiment's value). A command part that is exactly `{knobs}` becomes one argument per
knob with a value, shaped by `knob_flag` (default `--{path}={value}`). `launcher` is put
before the command (a container or conda wrapper).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rankwright.targets.cost import CostFeatures, CostModelSpec

KnobKind = Literal["int", "float", "bool", "choice", "int_tuple", "str"]
PLACEHOLDERS = ("python", "config", "run_dir", "root")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]*)\}")


class TargetError(ValueError):
    """A target description or a requested change is wrong; the message says where."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KnobSpec(_Frozen):
    """One setting the agent may change (mirrors `rankwright.ranking.knobs.Knob`).

    For `int_tuple` the bounds apply to every element and `min_length`/`max_length` to the
    tuple. `log` marks a range best searched on a log scale.
    """

    path: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    kind: KnobKind
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    log: bool = False
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=0)
    description: str = ""
    writes: bool = Field(False, description="the knob names a place the run writes (kept inside allowed_paths)")

    @model_validator(mode="after")
    def _coherent(self) -> "KnobSpec":
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"knob {self.path}: kind 'choice' needs a non-empty 'choices' list")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"knob {self.path}: low {self.low:g} is above high {self.high:g}")
        if self.log and (self.low is None or self.low < 0 or (self.low == 0 and self.low_inclusive)):
            raise ValueError(f"knob {self.path}: a log range needs low > 0")
        return self

    @classmethod
    def from_knob(cls, knob: Any) -> "KnobSpec":
        """From a `rankwright.ranking.knobs.Knob` (or anything with its attributes)."""
        fields = ("path", "kind", "default", "low", "high", "low_inclusive", "high_inclusive",
                  "choices", "nullable", "description", "min_length", "max_length")
        values = {name: getattr(knob, name) for name in fields}
        if isinstance(values["default"], list):
            values["default"] = tuple(values["default"])
        return cls(**values)

    def describe_range(self) -> str:
        if self.choices is not None:
            text = " | ".join(str(c) for c in self.choices)
        elif self.low is not None or self.high is not None:
            left = "[" if self.low_inclusive else "("
            right = "]" if self.high_inclusive else ")"
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            text = f"{left}{low}, {high}{right}"
            if self.kind == "int_tuple":
                text = f"{self.kind} of {text}"
        else:
            text = self.kind
        if self.kind == "int_tuple" and (self.min_length is not None or self.max_length is not None):
            text += f", length {self.min_length or 0}..{'' if self.max_length is None else self.max_length}"
        return text + (" | null" if self.nullable else "")

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (x == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (x > self.high or (x == self.high and not self.high_inclusive)):
            return False
        return True

    def check(self, value: Any) -> Any:
        """The value as it goes into the config; raises TargetError naming knob, value, range."""
        bad = TargetError(f"knob {self.path}: {value!r} is not allowed; allowed: {self.describe_range()}")
        if value is None:
            if self.nullable:
                return None
            raise bad
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise bad
        if self.kind == "choice":
            for choice in self.choices or ():
                if value == choice and type(value) is type(choice):
                    return choice
            raise bad
        if self.kind == "str":
            if isinstance(value, str):
                return value
            raise bad
        if self.kind == "int_tuple":
            if not isinstance(value, (list, tuple)):
                raise bad
            items = [self._int(v, bad) for v in value]
            if (self.min_length is not None and len(items) < self.min_length) or (
                self.max_length is not None and len(items) > self.max_length
            ):
                raise bad
            return items  # a list: configs are plain JSON/YAML documents
        number = self._int(value, bad) if self.kind == "int" else self._float(value, bad)
        return number

    def _int(self, value: Any, bad: TargetError) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if isinstance(value, float) and not value.is_integer():
            raise bad
        if not self._in_range(value):
            raise bad
        return int(value)

    def _float(self, value: Any, bad: TargetError) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value) or not self._in_range(value):
            raise bad
        return float(value)


class MetricsSpec(_Frozen):
    """Where a run's results appear.

    `file` is JSON lines (the record whose `event_key` equals `result_event` is the final
    result; the last one wins) or one JSON document (its presence means finished).
    `result_file`, when set and present, is read first as the final JSON result.
    """

    file: str = "metrics.jsonl"
    format: Literal["jsonl", "json"] = "jsonl"
    event_key: str = "event"
    result_event: str = "result"
    result_file: str | None = None
    objective: str = Field("valid.ne", min_length=1, description="dotted path in the result record")
    direction: Literal["minimize", "maximize"] = "minimize"
    train_loss: str | None = Field("train_loss", description="dotted path of the training loss in an epoch record")
    valid_ne: str | None = Field("valid.ne", description="dotted path of the validation NE in the result record, "
                                 "for the runbook's collapse check (absent in the record: no check)")
    valid_auc: str | None = Field("valid.auc", description="dotted path of the validation AUC in the result record")
    heartbeat_file: str | None = "heartbeat.json"
    heartbeat_max_age_s: float = Field(300.0, gt=0.0)


# What some knobs do, whatever a codebase calls them: the runbook's remedies reach knobs by role.
# The built-in knob each role is, so that the knowledge base's techniques (written for the
# built-in codebase) reach a foreign codebase's knobs that play the same role.
BUILTIN_PATH_OF_ROLE = {
    "learning_rate": "train.learning_rate", "batch_size": "train.batch_size", "grad_clip": "train.grad_clip_norm",
    "seed": "train.seed", "embedding_dim": "model.embedding_dim", "dropout": "model.dropout",
    "embedding_l2": "model.embedding_l2", "dense_l2": "model.net_l2", "hidden_units": "model.hidden_units",
    "cross_layers": "model.num_cross_layers", "optimizer": "train.optimizer", "epochs": "train.epochs",
    "weight_decay": "train.weight_decay", "batch_norm": "model.batch_norm",
}
KNOB_ROLES = tuple(BUILTIN_PATH_OF_ROLE)
_ROLE_SUFFIXES = {"learning_rate": ("learning_rate", "lr"), "batch_size": ("batch_size",),
                  "grad_clip": ("grad_clip", "grad_clip_norm", "clip_norm", "max_grad_norm", "gradient_clip_val"),
                  "seed": ("seed", "random_seed"), "embedding_dim": ("embedding_dim", "embed_dim", "emb_dim"),
                  "dropout": ("dropout", "net_dropout", "dropout_rate", "drop_rate"),
                  "embedding_l2": ("embedding_l2", "embedding_regularizer", "emb_l2"),
                  "dense_l2": ("net_l2", "net_regularizer", "dense_l2"),
                  "hidden_units": ("hidden_units", "dnn_hidden_units", "hidden_layers"),
                  "cross_layers": ("num_cross_layers", "cross_layers"), "optimizer": ("optimizer",),
                  "epochs": ("epochs", "num_epochs", "max_epochs"), "weight_decay": ("weight_decay",),
                  "batch_norm": ("batch_norm", "use_batch_norm")}
_NUMERIC_ROLES = {"learning_rate", "batch_size", "grad_clip", "seed", "embedding_dim", "dropout", "embedding_l2",
                  "dense_l2", "cross_layers", "epochs", "weight_decay"}


class Target(_Frozen):
    """How to run one model codebase; see the module docstring for the placeholders."""

    name: str = Field(min_length=1)
    description: str = ""
    command: tuple[str, ...] = Field(min_length=1)
    knobs: tuple[KnobSpec, ...] = ()
    base_config: dict[str, Any] = Field(default_factory=dict)
    config_file: str = Field("experiment.yaml", description="name of the config file in run_dir (.yaml or .json)")
    root: str | None = Field(None, description="the codebase's folder ({root}); the runs' working folder")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    cost: CostModelSpec = Field(default_factory=CostModelSpec)
    roles: dict[str, str] = Field(default_factory=dict, description="knob role -> knob path (default: by name)")
    family: str | None = Field(None, description="what kind of model it trains (dnn, deepfm, dcnv2, dlrm, "
                                                       "...), so that model-specific techniques apply")
    python: str | None = Field(None, description="the target's own interpreter for {python} (a venv's python; "
                                                 "relative to root)")
    launcher: tuple[str, ...] = Field((), description="put before the command, e.g. [conda, run, -n, myenv]")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables of every run "
                                                                  "(placeholders allowed)")
    knob_flag: str = Field("--{path}={value}", description="how {knobs} spells one knob: {path}, {leaf}, {value}")
    data_files: tuple[str, ...] = Field((), description="config paths (dotted) whose values name the data files; "
                                                        "the data's identity is read off those files")
    smoke: dict[str, Any] = Field(default_factory=dict, description="knob changes that make the preflight's smoke "
                                                                    "run short (fewer iterations, less data)")
    low_fidelity_changes: dict[str, Any] = Field(
        default_factory=dict, description="knob changes of a cheap validation run (low fidelity); none by default")

    @model_validator(mode="after")
    def _coherent(self) -> "Target":
        paths = [k.path for k in self.knobs]
        repeated = sorted({p for p in paths if paths.count(p) > 1})
        if repeated:
            raise ValueError(f"knobs declared twice: {', '.join(repeated)}")
        for role, path in self.roles.items():
            if role not in KNOB_ROLES:
                raise ValueError(f"roles: unknown role {role!r}; known: {', '.join(KNOB_ROLES)}")
            if path not in paths:
                raise ValueError(f"roles: {role} names {path!r}, which is not a declared knob")
        known = {*PLACEHOLDERS, *paths}
        for where, part in [*(("command", p) for p in (*self.launcher, *self.command)),
                            *((f"env.{k}", v) for k, v in self.env.items())]:
            if part == "{knobs}" and where == "command":
                continue
            for name in _PLACEHOLDER.findall(part):
                if name not in known:
                    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                    raise ValueError(f"{where} part {part!r}: unknown placeholder {{{name}}}"
                                     + (f"; did you mean {{{close[0]}}}?" if close else
                                        "; known: {python}, {config}, {run_dir}, {root}, {knobs} and the knob paths"))
        for field, changes in (("smoke", self.smoke), ("low_fidelity_changes", self.low_fidelity_changes)):
            for key in changes:
                if key not in paths:
                    raise ValueError(f"{field}: {key!r} is not a declared knob")
        for name in _PLACEHOLDER.findall(self.knob_flag):
            if name not in ("path", "leaf", "value"):
                raise ValueError(f"knob_flag {self.knob_flag!r}: unknown placeholder {{{name}}}; known: "
                                 "{path}, {leaf}, {value}")
        if not self.config_file.endswith((".yaml", ".yml", ".json")):
            raise ValueError(f"config_file {self.config_file!r} must end in .yaml, .yml or .json")
        return self

    # --- data ---------------------------------------------------------------------------
    def data_identity(self) -> str:
        """Which data the runs read, so that insights know "the same data" from "data of
        the same shape": the declared data files (name, size and a hash of their first
        megabyte), else the base config's `data` section; "" when the target says nothing."""
        if self.data_files:
            prints = []
            for dotted in self.data_files:
                value = value_at(self.base_config, dotted)
                if not isinstance(value, str) or not value:
                    prints.append([dotted, None])
                    continue
                path = Path(value) if Path(value).is_absolute() or not self.root else Path(self.root) / value
                prints.append([dotted, *_fingerprint(path)])
            return hashlib.sha256(json.dumps(prints, default=str).encode()).hexdigest()[:16]
        data = self.base_config.get("data") if isinstance(self.base_config, dict) else None
        if not data:
            return ""
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # --- knobs --------------------------------------------------------------------------
    def role_paths(self) -> dict[str, str]:
        """Role -> knob path: the declared `roles`, else the numeric knob whose last name
        part says it (`train.learning_rate`, `optim.lr`, ...)."""
        found = dict(self.roles)
        taken = set(found.values())
        for role, suffixes in _ROLE_SUFFIXES.items():
            if role not in found:
                named = [k.path for k in self.knobs if k.path not in taken and k.path.split(".")[-1] in suffixes
                         and (k.kind in ("int", "float") or role not in _NUMERIC_ROLES)]
                if len(named) == 1:
                    found[role] = named[0]
                    taken.add(named[0])
        return found

    def builtin_aliases(self) -> dict[str, str]:
        """Built-in knob path -> this target's knob of the same role, where they differ:
        how the knowledge base's techniques reach this codebase's knobs."""
        return {BUILTIN_PATH_OF_ROLE[role]: path for role, path in self.role_paths().items()
                if BUILTIN_PATH_OF_ROLE[role] != path}

    def knob(self, path: str) -> KnobSpec:
        for knob in self.knobs:
            if knob.path == path:
                return knob
        close = difflib.get_close_matches(path, [k.path for k in self.knobs], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise TargetError(f"unknown knob {path!r} for target {self.name!r}{hint}")

    def validate_changes(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Checked, normalised changes; the first bad key or value raises TargetError."""
        if not isinstance(changes, Mapping):
            raise TargetError(f"changes must be a mapping of knob path to value, got {type(changes).__name__}")
        return {path: self.knob(path).check(value) for path, value in changes.items()}

    # --- running ------------------------------------------------------------------------
    def config_with(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """`base_config` with the (validated) changes set at their dotted paths."""
        document = copy.deepcopy(self.base_config)
        for path, value in self.validate_changes(changes).items():
            node = document
            parts = path.split(".")
            for part in parts[:-1]:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                if not isinstance(child, dict):
                    raise TargetError(f"knob {path}: base_config holds a value at {part!r}, not a section")
                node = child
            node[parts[-1]] = value
        return self.check_config(document)

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Hook for targets that can validate a whole config (the built-in one does)."""
        return config

    # --- what the agent asks of any target ------------------------------------------------
    def model_family(self) -> str:
        """What kind of model this is, for the knowledge base and for comparing contexts:
        the declared family, else the base config's model name, else the target's name."""
        if self.family:
            return self.family
        model = self.base_config.get("model") if isinstance(self.base_config, dict) else None
        if isinstance(model, str) and model:
            return model
        return str(model.get("name") or self.name) if isinstance(model, dict) else self.name

    def low_fidelity(self) -> dict[str, Any]:
        """Knob changes of a cheap validation run; none unless the target says how."""
        return dict(self.low_fidelity_changes)

    def inert_knobs(self) -> frozenset[str]:
        """Knobs that cannot change a run on this target's data (a numeric transform where
        there is no numeric field): a hypothesis that moves only these is not proposed,
        since its runs would repeat the baseline's. None by default."""
        return frozenset()

    def smoke_changes(self) -> dict[str, Any]:
        """Knob changes that make the preflight's smoke run short (the target's `smoke`)."""
        return dict(self.smoke)

    def data_shape(self, embedding_parameters: float | None = None) -> tuple[float, int, float | None]:
        """(training rows, feature fields, mean vocabulary size or None) of the base config,
        for judging how alike two campaigns' data are; unknown parts are 0 or None."""
        return self.cost_features(self.base_config).rows, 0, None

    # --- cost ---------------------------------------------------------------------------
    def cost_features(self, config: Mapping[str, Any]) -> CostFeatures:
        """The cost model's features of one run's config.

        Read off the config at the paths `cost` names; the built-in target measures them
        instead (the real training rows of its data and the model's per-row compute).
        """
        return self.cost.features(config)

    def predict_hours(self, changes: Mapping[str, Any], devices: float | None = None, parallel: int = 1) -> float:
        """The prior's predicted cost of one experiment with these changes, in the ledger's
        unit: the prior is wall time, and the executor charges a CPU run's CPU time, so a run
        that keeps `cost.cores` busy (by default its share of the machine when `parallel` runs
        split it) counts that many wall hours; a GPU run counts its wall hours per GPU."""
        if devices is None:
            import os

            share = max(1, (os.cpu_count() or 1) // max(parallel, 1))
            cores = share if self.cost.cores == "share" else float(self.cost.cores)
            devices = float(cores) if self.cost.unit == "cpu_hours" else 1.0
        return self.cost.model().predict_hours(self.cost_features(self.config_with(changes)), devices)

    def render(self, changes: Mapping[str, Any], run_dir: Path | str) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The command line and the config document of one experiment (nothing is written).
        Relative data files (`data_files`) are made absolute from `root`: runs start in
        their own folder, and the files are where the target's YAML says."""
        config = self._data_files_absolute(self.config_with(changes))
        values = self._values(config, run_dir)
        command: list[str] = []
        for part in (*self.launcher, *self.command):
            if part == "{knobs}":
                command += self._flags(config)
            else:
                command.append(_fill(part, values))
        return tuple(command), config

    def _data_files_absolute(self, config: dict[str, Any]) -> dict[str, Any]:
        if not self.root:
            return config
        for dotted in self.data_files:
            value = value_at(config, dotted)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                node = config
                *parents, leaf = dotted.split(".")
                for part in parents:
                    node = node[part]
                node[leaf] = str((Path(self.root) / value).resolve())
        return config

    def render_env(self, changes: Mapping[str, Any], run_dir: Path | str) -> dict[str, str]:
        """The run's own environment variables (the executor's are kept besides)."""
        if not self.env:
            return {}
        values = self._values(self.config_with(changes), run_dir)
        return {k: _fill(v, values) for k, v in self.env.items()}

    def _values(self, config: Mapping[str, Any], run_dir: Path | str) -> dict[str, str]:
        python = sys.executable
        if self.python:
            python = self.python if Path(self.python).is_absolute() or not self.root else str(Path(self.root) / self.python)
        values = {"python": python, "config": str(Path(run_dir) / self.config_file), "run_dir": str(run_dir),
                  "root": self.root or "."}
        for knob in self.knobs:
            value = value_at(config, knob.path)
            values[knob.path] = "" if value is None else _spell(value)
        return values

    def _flags(self, config: Mapping[str, Any]) -> list[str]:
        out = []
        for knob in self.knobs:
            value = value_at(config, knob.path)
            if value is not None:
                out.append(_fill(self.knob_flag, {"path": knob.path, "leaf": knob.path.split(".")[-1],
                                                  "value": _spell(value)}))
        return out

    def write_config(self, run_dir: Path | str, config: Mapping[str, Any]) -> Path:
        """Write the config where `{config}` points; returns its path."""
        path = Path(run_dir) / self.config_file
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.config_file.endswith(".json"):
            text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        else:
            text = yaml.safe_dump(dict(config), sort_keys=False)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    # --- reading ------------------------------------------------------------------------
    def read_result(self, run_dir: Path | str) -> dict[str, Any] | None:
        """`{"objective", "direction", "metrics"}` of a finished run; None while unfinished.

        A finished run whose record lacks the objective raises TargetError.
        """
        record = self._result_record(Path(run_dir))
        if record is None:
            return None
        node: Any = record
        for part in self.metrics.objective.split("."):
            if not isinstance(node, Mapping) or part not in node:
                keys = ", ".join(sorted(node)) if isinstance(node, Mapping) else type(node).__name__
                raise TargetError(
                    f"{run_dir}: the result has no {self.metrics.objective!r} (missing {part!r}; found: {keys})"
                )
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise TargetError(f"{run_dir}: objective {self.metrics.objective!r} is {node!r}, not a number")
        return {"objective": float(node), "direction": self.metrics.direction, "metrics": record}

    def _result_record(self, run_dir: Path) -> dict[str, Any] | None:
        m = self.metrics
        if m.result_file is not None:
            record = _read_json(run_dir / m.result_file)
            if record is not None:
                return record
        path = run_dir / m.file
        if m.format == "json":
            return _read_json(path)
        if not path.exists():
            return None
        found = None
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line torn by a kill is the last one
            if isinstance(record, dict) and record.get(m.event_key) == m.result_event:
                found = record
        return found

    def read_epochs(self, run_dir: Path | str, epoch_event: str = "epoch") -> list[dict[str, Any]]:
        """The per-epoch records so far (JSON-lines metrics only; [] when the codebase
        writes none or the file is unreadable)."""
        path = Path(run_dir) / self.metrics.file
        if self.metrics.format != "jsonl":
            return []
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line torn by a kill is the last one
            if isinstance(record, dict) and record.get(self.metrics.event_key) == epoch_event:
                records.append(record)
        return records

    def read_curve(self, run_dir: Path | str, epoch_event: str = "epoch") -> list[float]:
        """The objective after each epoch so far: what a pruner judges a running trial on."""
        return [v for v in (_number_at(r, self.metrics.objective) for r in self.read_epochs(run_dir, epoch_event))
                if v is not None and math.isfinite(v)]

    def result_number(self, result: Mapping[str, Any], path: str | None) -> float | None:
        """A number at a dotted path of a read result's record (None: no such number)."""
        return None if path is None else _number_at(result.get("metrics") or {}, path)

    def read_losses(self, run_dir: Path | str) -> list[float]:
        """The training loss after each epoch (NaN and infinity kept: they are the evidence)."""
        if self.metrics.train_loss is None:
            return []
        return [v for v in (_number_at(r, self.metrics.train_loss) for r in self.read_epochs(run_dir))
                if v is not None]

    def heartbeat_age(self, run_dir: Path | str, now: float | None = None) -> float | None:
        """Seconds since the last heartbeat (its `time` field, else the file's mtime); None if none."""
        if self.metrics.heartbeat_file is None:
            return None
        path = Path(run_dir) / self.metrics.heartbeat_file
        try:
            stamp = path.stat().st_mtime
        except OSError:
            return None
        beat = _read_json(path)
        if beat is not None and isinstance(beat.get("time"), (int, float)) and not isinstance(beat["time"], bool):
            stamp = float(beat["time"])
        return max(0.0, (time.time() if now is None else now) - stamp)

    def is_stale(self, run_dir: Path | str, now: float | None = None) -> bool:
        age = self.heartbeat_age(run_dir, now)
        return age is not None and age > self.metrics.heartbeat_max_age_s


def _fingerprint(path: Path) -> tuple[str, int | None, str | None]:
    """(file name, size, hash of the first megabyte): cheap, and it changes with the data."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
        return path.name, path.stat().st_size, hashlib.sha256(head).hexdigest()[:16]
    except OSError:
        return path.name, None, None


def builtin_data_identity(data: Mapping[str, Any]) -> str:
    """Names the data a built-in run reads (the files, or the generator's settings), not how
    it is processed: a related dataset of the same shape is similar, but it is not the same
    context, so what failed on one is still worth trying on the other."""
    if not isinstance(data, Mapping):
        return ""
    source = data.get("source", "synthetic")
    if source == "synthetic":
        body: Any = {"synthetic": data.get("synthetic") or {}}
    else:
        body = {"source": source, "files": [data.get(k) for k in ("train", "valid", "test")]}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _spell(value: Any) -> str:
    """A knob value on a command line: numbers and strings as they are, the rest as JSON."""
    if isinstance(value, bool) or isinstance(value, (list, tuple, dict)) or value is None:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def value_at(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path of a nested config (None when absent)."""
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _number_at(record: Mapping[str, Any], dotted: str) -> float | None:
    node: Any = record
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # absent, or caught mid-write by a non-atomic writer
    return document if isinstance(document, dict) else None
