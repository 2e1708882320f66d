"""The built-in ranking codebase as a target: `rankwright train` with its own knob schema.

Its cost features are measured rather than read off config paths: `rows` is the real
number of training rows (the train share of the synthetic log, or of the train file, whose
data lines are counted), and `model_size` is the model's per-row compute, taken from the
model itself built on a stand-in of the run's field list (see `model_compute`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

from rankwright.targets._base import KnobSpec, MetricsSpec, Target, TargetError, builtin_data_identity
from rankwright.targets.cost import CostFeatures, CostModelSpec


class BuiltinTarget(Target):
    """Rendered configs are validated by the ranking codebase's own `validate_run_config`."""

    def data_identity(self) -> str:
        return builtin_data_identity(self.base_config.get("data") or {})

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        self.run_config(config)
        return config

    def cost_features(self, config: Mapping[str, Any]) -> CostFeatures:
        """Measured features of one run: real training rows and per-row model compute.

        Relative data paths start at the working folder (as the preflight reads them); a data
        file that cannot be read raises `DataError` naming it.
        """
        run = self.run_config(config)
        categorical, numeric = field_names(run.data, Path.cwd())
        return CostFeatures(
            rows=float(train_rows(run.data, Path.cwd())),
            model_size=model_compute(run.model, categorical, numeric),
            fidelity=run.data.train_fraction,
            epochs=float(run.train.epochs),
        )

    def predict_hours(self, changes: Mapping[str, Any], devices: float | None = None, parallel: int = 1) -> float:
        """In the ledger's unit: the executor charges CPU time, and a CPU run keeps its
        threads busy (`train.num_threads`, else its share of the cores when `parallel` runs
        split them, as the agent's runs do), so wall hours count that many times."""
        if devices is None:
            import os

            config = self.config_with(changes)
            threads = ((config.get("train") or {}).get("num_threads")
                       or max(1, (os.cpu_count() or 1) // max(parallel, 1)))
            devices = float(threads) if self.cost.unit == "cpu_hours" else 1.0
        return super().predict_hours(changes, devices)

    def model_family(self) -> str:
        return str(self.base_config["model"]["name"])

    def low_fidelity(self) -> dict[str, Any]:
        return {"data.train_fraction": 0.5}  # half the training rows, the same epochs and model

    def smoke_changes(self) -> dict[str, Any]:
        return {"train.epochs": 1}

    def inert_knobs(self) -> frozenset[str]:
        data = self.run_config(self.base_config).data
        schema = data.schema_
        if not schema.features and data.source == "synthetic":
            from rankwright.ranking.data.synthetic import synthetic_schema

            schema = synthetic_schema(data.synthetic)
        elif not schema.features:
            return frozenset()  # Criteo and libsvm name their columns themselves
        if schema.numeric:
            return frozenset()
        return frozenset({"data.processing.numeric_transform", "data.processing.numeric_overrides",
                          "data.processing.buckets"})

    def data_shape(self, embedding_parameters: float | None = None) -> tuple[float, int, float | None]:
        run = self.run_config(self.base_config)
        categorical, numeric = field_names(run.data, Path.cwd())
        dim = run.model.embedding_dim if hasattr(run.model, "embedding_dim") else 1
        mean_cardinality = embedding_parameters / dim / len(categorical) if embedding_parameters and categorical \
            else None
        return float(train_rows(run.data, Path.cwd())), len(categorical) + len(numeric), mean_cardinality

    def run_config(self, config: Mapping[str, Any]) -> Any:
        """`config` as the ranking codebase's validated `RunConfig` (TargetError if invalid)."""
        from rankwright.ranking.config import ConfigError, validate_run_config

        try:
            return validate_run_config(dict(config), source=f"target {self.name}")
        except ConfigError as exc:
            raise TargetError(str(exc)) from None


def builtin_target(model: str = "dnn", base_config: dict[str, Any] | None = None) -> Target:
    """The default target: our ranking codebase training `model` from `base_config`.

    `base_config` is a run config document (data/model/train); it is validated and
    completed with every default, and its model name must be `model` (or absent).
    """
    from rankwright.ranking.config import ConfigError, validate_run_config
    from rankwright.ranking.knobs import knob_schema

    try:
        knobs = [KnobSpec.from_knob(k) for k in knob_schema(model)]
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    for knob in knobs:  # a learning rate or an L2 spans decades: search it on a log scale
        if knob.path in ("train.learning_rate", "train.weight_decay", "model.embedding_l2", "model.net_l2"):
            if knob.low is not None and knob.low >= 0:
                knobs[knobs.index(knob)] = knob.model_copy(update={"log": True, "low_inclusive": False})
    document = dict(base_config or {})
    section = dict(document.get("model") or {})
    if section.setdefault("name", model) != model:
        raise TargetError(f"base_config.model.name is {section['name']!r} but the target is for {model!r}")
    document["model"] = section
    try:
        full = validate_run_config(document, source="builtin target base_config").to_yaml_dict()
    except ConfigError as exc:
        raise TargetError(str(exc)) from None
    return BuiltinTarget(
        name=f"rankwright-{model}",
        description=f"the built-in ranking codebase, model {model}",
        command=("{python}", "-m", "rankwright", "train", "{config}", "--run-dir", "{run_dir}", "--quiet"),
        knobs=tuple(knobs),
        base_config=full,
        config_file="experiment.yaml",
        # the split's and the generator's seeds are the data's: only the training seed makes repeats
        roles={"seed": "train.seed", "learning_rate": "train.learning_rate", "batch_size": "train.batch_size",
               "grad_clip": "train.grad_clip_norm"},
        metrics=MetricsSpec(
            file="metrics.jsonl",
            format="jsonl",
            result_file="result.json",
            objective="valid.ne",
            direction="minimize",
            heartbeat_file="heartbeat.json",
            heartbeat_max_age_s=600.0,
        ),
        # rows and model_size are measured by BuiltinTarget.cost_features, not read off paths.
        # The prior: seconds = 3.8 + rows x fidelity x epochs x 1.7e-5 x model_compute / 1e6,
        # fitted on `rankwright train` runs on this project's 2-core CPU (processed data cached,
        # 3 epochs, no early stopping; wall seconds, mean of the two fastest of 2-5 runs, since
        # runs that shared the CPU were up to 10x slower; synthetic 50k rows = 40k train rows):
        #   model         data             dim  hidden    compute  measured s  predicted s
        #   dnn           synthetic 50k     10  400x3       1.72M         6.1          7.3
        #   dnn           synthetic 50k     16  400x3       1.79M         6.2          7.4
        #   dnn           synthetic 50k     64  400x3       2.29M         9.5          8.5
        #   dnn           synthetic 50k     10  1024x3      5.51M        17.9         15.0
        #   dnn           synthetic 50k     10  128,64      0.34M         4.9          4.5
        #   dnn           synthetic 200k    10  400x3       1.72M        14.6         17.9
        #   dcnv2         synthetic 50k     10  400x3       1.99M         7.1          7.9
        #   dcnv2         synthetic 50k     16  400x3       2.27M         7.7          8.4
        #   dcnv2         synthetic 200k    16  400x3       2.27M        20.1         22.3
        #   deepfm        synthetic 50k     10  400x3       1.75M         6.6          7.4
        #   dlrm          synthetic 50k     10  400x3       1.80M         6.5          7.5
        #   autoint_plus  synthetic 50k     10  400x3       8.26M        20.9         20.7
        #   finalmlp      synthetic 50k     10  400|100     0.86M         5.3          5.6
        #   fm            synthetic 50k     10  -           0.12M         4.7          4.0
        #   lr            synthetic 50k     10  -           0.07M         3.6          3.9
        #   dcnv2         frappe csv 52k    10  400x3       1.85M         8.5          8.7
        #   dlrm          criteo tsv 7.2k   16  400x3       2.19M         5.2          4.6
        # A run that early stopping ends sooner costs less: train.epochs is the most it may take.
        # Runs sharing the CPU (max_parallel above 1 on 2 cores) take longer than this.
        cost=CostModelSpec(
            unit="cpu_hours",
            overhead_seconds=3.8,  # start-up, cached data loading and the final test evaluation
            per_row_seconds=1.7e-5,  # per training row and epoch at 1M multiply-add equivalents
            size_exponent=1.0,
            reference_size=1e6,
            epochs="train.epochs",
            fidelity="data.train_fraction",
        ),
    )


# --------------------------------------------------------------------------- cost features
# In-process caches: row counts and libsvm field lists by (path, size, mtime), model compute
# by (model section, field names). A file rewritten in place gets a new size or mtime.
_LOCK = threading.Lock()
_FILE_FACTS: dict[tuple[str, str, int, int], Any] = {}
_COMPUTE: dict[tuple[str, tuple[str, ...], tuple[str, ...]], float] = {}
_HEADER_SOURCES = ("csv", "tsv")  # text formats whose first line names the columns
_LIBSVM_SCAN_BYTES = 1 << 22  # the implied libsvm fields are read off the file's first 4 MiB
# Weights of `model_compute`, fitted on `rankwright train` runs on a 2-core CPU (see the
# prior in `builtin_target`): a tensor element written costs about 100 multiply-adds, and the
# trainer's own work per row about as much as 65k multiply-adds.
ELEMENT_MACS = 100.0
ROW_FLOOR_MACS = 65_000.0


def _file_fact(path: Path, kind: str, compute: Any) -> Any:
    """`compute(path)`, cached by (path, size, mtime) of the file."""
    stat = path.stat()
    key = (str(path.resolve()), kind, stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key in _FILE_FACTS:
            return _FILE_FACTS[key]
    value = compute(path)
    with _LOCK:
        _FILE_FACTS[key] = value
    return value


def _count_lines(path: Path) -> int:
    """Physical lines of a text file (a last line without a newline counts), in 16 MiB reads."""
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def file_rows(source: str, path: Path) -> int:
    """Data rows of one data file: parquet metadata, else lines less the csv/tsv header line.

    Cheap by design: one counting pass over the bytes (or none, for parquet), cached by
    (path, size, mtime); blank lines and quoted multi-line csv values are not special-cased.
    """
    if source == "parquet":
        return _file_fact(path, "parquet_rows", _parquet_rows)
    lines = _file_fact(path, "lines", _count_lines)
    return max(0, lines - (1 if source in _HEADER_SOURCES else 0))


def _train_share(n: int, data: Any) -> int:
    """Rows left for training when the split carves valid/test out of `n` rows.

    The arithmetic of `rankwright.ranking.data.split_rows`, without its permutation.
    """
    n_valid = int(n * data.split.valid_fraction) if not data.valid else 0
    n_test = int(n * data.split.test_fraction) if not data.test else 0
    return n - n_valid - n_test


def train_rows(data: Any, base_dir: Path) -> int:
    """Rows of the train split of a `DataConfig` (before `train_fraction`).

    Synthetic: the train share of `synthetic.rows`. Files: the train file's data rows, less
    the valid/test shares the split carves out of it when those files are not given.
    """
    if data.source == "synthetic":
        return _train_share(data.synthetic.rows, data)
    from rankwright.ranking.data.files import resolve_files

    files = resolve_files(data, base_dir)  # DataError naming a missing file
    return _train_share(file_rows(data.source, files["train"]), data)


def _libsvm_fields(path: Path) -> tuple[str, ...]:
    """The categorical columns `read_libsvm` would make of this file, from its first lines.

    libffm (`label field:feature:value`): `f<field>` per distinct field id; libfm
    (`label feature:value`): `f<position>` per token position.
    """
    with open(path, "rb") as handle:
        head = handle.read(_LIBSVM_SCAN_BYTES)
    if len(head) == _LIBSVM_SCAN_BYTES and b"\n" in head:
        head = head[: head.rfind(b"\n")]  # whole lines only
    fields: set[int] = set()
    ffm: bool | None = None
    for line in head.decode("utf-8", errors="replace").splitlines():
        tokens = line.split()[1:]
        if not tokens:
            continue
        if ffm is None:
            ffm = tokens[0].count(":") == 2
        if ffm:
            for token in tokens:
                field = token.split(":", 1)[0]
                if field.isdigit():
                    fields.add(int(field))
        else:
            fields.update(range(len(tokens)))
    return tuple(f"f{f}" for f in sorted(fields))


def field_names(data: Any, base_dir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(categorical, numeric) feature names a run's model sees, as the data processing makes them.

    The declared schema when it names features (required for csv/tsv/parquet, a subset for
    the other sources); otherwise the columns the source implies: the synthetic log's, Criteo's
    I1..I13 and C1..C26, or libsvm's `f<field>`. Bucketized numeric fields become
    categorical ones, after the others, as `FeatureProcessor.meta` orders them.
    """
    from rankwright.ranking.data.sources import criteo_schema
    from rankwright.ranking.data.synthetic import synthetic_schema

    schema = data.schema_
    if not schema.features:
        if data.source == "synthetic":
            schema = synthetic_schema(data.synthetic)
        elif data.source == "criteo":
            schema = criteo_schema()
        elif data.source == "libsvm":
            from rankwright.ranking.data.files import resolve_files

            train = resolve_files(data, base_dir)["train"]
            return _file_fact(train, "libsvm_fields", _libsvm_fields), ()
    bucketized = tuple(n for n in schema.numeric if data.processing.transform_of(n) == "bucketize")
    numeric = tuple(n for n in schema.numeric if n not in bucketized)
    return (*schema.categorical, *bucketized), numeric


def _element_counter() -> Any:
    """A torch function mode that adds up the elements of every tensor a torch function returns.

    Functions called inside a handled one are not seen again (the mode is off while it runs).
    """
    from torch import Tensor
    from torch.overrides import TorchFunctionMode

    class ElementCounter(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            for item in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(item, Tensor):
                    self.count += item.numel()
            return out

    return ElementCounter()


def model_compute(model: Any, categorical: tuple[str, ...], numeric: tuple[str, ...]) -> float:
    """Per-row training compute of a model config, in multiply-add equivalents.

    The model is built for real on a stand-in feature space with the run's field names and
    two ids per field (tiny embedding tables: milliseconds), then run forward in training
    mode on 32 and on 64 rows of zeros; the difference per row is

        MACs (matrix products, counted by torch's FlopCounterMode)
        + ELEMENT_MACS x tensor elements every torch function writes (gathers, BatchNorm,
          activations, dropout, softmax: memory-bound work that dominates small widths)
        + ROW_FLOOR_MACS (the trainer's own per-row work: batch gather, loss, step).

    Per-batch work (a gate computed once per batch, the optimizer step) cancels out in the
    difference. The vocabulary size is left out on purpose; the global torch RNG is left alone.
    """
    key = (model.model_dump_json(), tuple(categorical), tuple(numeric))
    with _LOCK:
        if key in _COMPUTE:
            return _COMPUTE[key]
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rankwright.ranking.data.types import FeatureMeta
    from rankwright.ranking.models import build_model

    meta = FeatureMeta(tuple(categorical), (2,) * len(categorical), tuple(numeric))
    counts = []
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            built = build_model(meta, model)
            built.train()
            for rows in (32, 64):
                ids = torch.zeros(rows, len(categorical), dtype=torch.long)
                values = torch.zeros(rows, len(numeric))
                with FlopCounterMode(display=False) as flops, _element_counter() as elements:
                    built.logits(ids, values)
                counts.append((flops.get_total_flops() / 2.0, elements.count))
    except (ValueError, RuntimeError, IndexError) as exc:
        raise TargetError(f"model {model.name} cannot run on fields {[*categorical, *numeric]}: {exc}") from None
    (macs_32, elements_32), (macs_64, elements_64) = counts
    value = (macs_64 - macs_32) / 32 + ELEMENT_MACS * (elements_64 - elements_32) / 32 + ROW_FLOOR_MACS
    with _LOCK:
        _COMPUTE[key] = value
    return value
