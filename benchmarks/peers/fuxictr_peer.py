"""FuxiCTR (pip ``fuxictr==2.3.10``) as the trainer peer of the ranking benchmark.

Runs one model of {"dnn", "deepfm", "dcnv2", "finalmlp"} with FuxiCTR's own pipeline:

* data: ``FeatureProcessor`` -> ``build_dataset`` (polars + Ray Data, written as parquet)
  -> ``RankDataLoader`` (``ParquetDataLoader``, Ray Data, ``random_shuffle`` every epoch);
  the columns are Frappe's ten categorical fields unless ``params`` names ``categorical``
  / ``numeric`` ones (numeric: FuxiCTR ``StandardScaler``); other CSV columns are ignored;
* training: ``fuxictr.pytorch.models.BaseModel.fit`` (per-epoch validation on the monitor
  metric, LR x0.1 on plateau, early stopping, grad-norm clip 10, best weights restored);
* models: our own ``BaseModel`` subclasses, composed from FuxiCTR's layers
  (``FeatureEmbedding``, ``MLP_Block``, ``FactorizationMachine``, ``CrossNetV2``) and
  following the structure of FuxiCTR's model zoo (github reczoo/FuxiCTR: DNN, DeepFM,
  DCNv2, FinalMLP): same layers, parameter shapes, initialisation and forward maths, but
  written here, not copied. They are needed because the pip wheel ships no DNN/DeepFM, and
  its ``model_zoo.LongCTR.{DCNv2,FinalMLP}`` are long-sequence variants (inputs
  ``(batch_dict, item_dict, mask)``) that cannot consume a plain tabular dataset.

Run only inside the benchmark venv (``benchmarks/setup_bench_env.sh``). Smoke test::

    .venv-bench/bin/python benchmarks/peers/fuxictr_peer.py --model dnn --seed 1 --epochs 2

Known properties of the peer (see also shared/BENCHMARKS.md): the Ray shuffle is not
seeded, so runs with the same seed differ; the first dataset build costs tens of seconds
(Ray start-up + transform), which is reported as ``preprocess_seconds`` and excluded from
both throughputs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

FRAPPE_FIELDS = ["user", "item", "daytime", "weekday", "isweekend", "homework",
                 "cost", "weather", "country", "city"]
LABEL = "label"
MODELS = ("dnn", "deepfm", "dcnv2", "finalmlp")
TORCH_THREADS = 2
# FinalMLP's Frappe context fields; dropped (-> learned bias) on data without these columns.
_FRAPPE_FS_CONTEXT = {"fs1_context": ["user"], "fs2_context": ["item"]}

# BARS frappe_x1 settings (common names used by our benchmark).
_COMMON_DEFAULTS = dict(
    embedding_dim=10, hidden_units=[400, 400, 400], activation="relu", dropout=0.2,
    batch_norm=True, batch_size=4096, learning_rate=1e-3, embedding_l2=0.05, net_l2=0.0,
    epochs=30, patience=2, monitor="AUC",
)
_MODEL_DEFAULTS = {
    "dnn": {},
    "deepfm": {},
    "dcnv2": dict(dropout=0.1, num_cross_layers=4, dcn_structure="parallel"),
    # BARS FinalMLP_frappe_x1 (tuner_config_16, expid FinalMLP_frappe_x1_004_e1ab402f).
    "finalmlp": dict(mlp1_hidden_units=[400], mlp2_hidden_units=[100], mlp1_dropout=0.4,
                     mlp2_dropout=0.4, use_fs=True, fs_hidden_units=[400],
                     **_FRAPPE_FS_CONTEXT, num_heads=5),
}


def default_params(model: str) -> dict:
    """BARS frappe_x1 defaults for ``model``, in our common parameter names."""
    model = model.lower()
    if model not in MODELS:
        raise ValueError(f"model={model!r} not in {MODELS}")
    params = dict(_COMMON_DEFAULTS)
    params.update(_MODEL_DEFAULTS[model])
    return json.loads(json.dumps(params))  # deep copy


# --------------------------------------------------------------------------- models
def _build_model_classes():
    """Return {name: class} for the four peers (imports fuxictr lazily: bench venv only).

    Each model is a ``BaseModel`` whose embedding tables all live in FuxiCTR
    ``FeatureEmbedding`` layers (so ``embedding_regularizer`` covers every one of them) and
    whose weights are (re)initialised by ``BaseModel.reset_parameters``. ``_PeerModel``
    does the shared bookkeeping; a subclass declares its parts, calls ``_finish()`` and
    maps the inputs to a logit in ``logit(X)``; ``_PeerModel.forward`` applies the output
    activation.
    """
    import torch
    from torch import nn
    from fuxictr.pytorch.models import BaseModel
    from fuxictr.pytorch.layers import (FeatureEmbedding, MLP_Block, FactorizationMachine,
                                        CrossNetV2, CrossNetMix)

    class _PeerModel(BaseModel):
        def __init__(self, feature_map, embedding_dim=10, learning_rate=1e-3, **kwargs):
            super().__init__(feature_map, **kwargs)  # regularizers, monitor, task, paths
            self._compile_args = (kwargs["optimizer"], kwargs["loss"], learning_rate)
            self.emb_dim = embedding_dim
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)

        def _finish(self):
            self.compile(*self._compile_args)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            return {"y_pred": self.output_activation(self.logit(self.get_inputs(inputs)))}

    def tower(input_dim, units, activation, dropout, batch_norm, output_dim=None):
        return MLP_Block(input_dim, list(units), activation, output_dim=output_dim,
                         dropout_rates=dropout, batch_norm=batch_norm)

    class DNN(_PeerModel):
        def __init__(self, feature_map, hidden_units=(), hidden_activations="ReLU",
                     net_dropout=0.0, batch_norm=False, **kw):
            super().__init__(feature_map, **kw)
            self.mlp = tower(feature_map.sum_emb_out_dim(), hidden_units, hidden_activations,
                             net_dropout, batch_norm, output_dim=1)
            self._finish()

        def logit(self, X):
            return self.mlp(self.embedding_layer(X, flatten_emb=True))

    class DeepFM(_PeerModel):  # FuxiCTR's FM block (LR + pairwise term) + a DNN tower
        def __init__(self, feature_map, hidden_units=(), hidden_activations="ReLU",
                     net_dropout=0.0, batch_norm=False, **kw):
            super().__init__(feature_map, **kw)
            self.fm = FactorizationMachine(feature_map)
            self.mlp = tower(feature_map.sum_emb_out_dim(), hidden_units, hidden_activations,
                             net_dropout, batch_norm, output_dim=1)
            self._finish()

        def logit(self, X):
            emb = self.embedding_layer(X)  # [batch, fields, dim]
            return self.fm(X, emb) + self.mlp(emb.flatten(start_dim=1))

    class DCNv2(_PeerModel):
        """Cross network; "stacked" feeds it to a DNN, "parallel" concatenates a DNN."""
        STRUCTURES = ("crossnet_only", "stacked", "parallel", "stacked_parallel")

        def __init__(self, feature_map, model_structure="parallel", num_cross_layers=3,
                     use_low_rank_mixture=False, low_rank=32, num_experts=4,
                     stacked_dnn_hidden_units=(), parallel_dnn_hidden_units=(),
                     dnn_activations="ReLU", net_dropout=0.0, batch_norm=False, **kw):
            if model_structure not in self.STRUCTURES:
                raise ValueError(f"model_structure={model_structure!r}")
            super().__init__(feature_map, **kw)
            width = feature_map.sum_emb_out_dim()
            self.crossnet = (CrossNetMix(width, num_cross_layers, low_rank=low_rank,
                                         num_experts=num_experts)
                             if use_low_rank_mixture else CrossNetV2(width, num_cross_layers))
            self.stacked = model_structure.startswith("stacked")
            self.parallel = model_structure.endswith("parallel")
            out_dim = width
            if self.stacked:
                self.stacked_dnn = tower(width, stacked_dnn_hidden_units, dnn_activations,
                                         net_dropout, batch_norm)
                out_dim = stacked_dnn_hidden_units[-1]
            if self.parallel:
                self.parallel_dnn = tower(width, parallel_dnn_hidden_units, dnn_activations,
                                          net_dropout, batch_norm)
                out_dim += parallel_dnn_hidden_units[-1]
            self.fc = nn.Linear(out_dim, 1)
            self._finish()

        def logit(self, X):
            emb = self.embedding_layer(X, flatten_emb=True)
            h = self.crossnet(emb)
            if self.stacked:
                h = self.stacked_dnn(h)
            if self.parallel:
                h = torch.cat([h, self.parallel_dnn(emb)], dim=-1)
            return self.fc(h)

    class ContextGate(nn.Module):
        """2 * sigmoid(MLP(context)), one weight per entry of the flat embedding.

        The context is the flattened embedding of ``context`` fields (a FuxiCTR
        ``FeatureEmbedding`` of its own) or, with no field, a learned bias vector
        (zero-initialised) of size ``emb_dim`` shared by the batch.
        """

        def __init__(self, feature_map, context, emb_dim, out_dim, hidden_units):
            super().__init__()
            self.has_context = bool(context)
            if self.has_context:
                self.context_emb = FeatureEmbedding(feature_map, emb_dim,
                                                    required_feature_columns=list(context))
            else:
                self.context_bias = nn.Parameter(torch.zeros(1, emb_dim))
            self.mlp = MLP_Block(emb_dim * max(1, len(context)), list(hidden_units), "ReLU",
                                 output_dim=out_dim, output_activation="Sigmoid")

        def forward(self, X, batch_size):
            ctx = (self.context_emb(X, flatten_emb=True) if self.has_context
                   else self.context_bias.expand(batch_size, -1))
            return 2.0 * self.mlp(ctx)

    class BilinearFusion(nn.Module):
        """w_x(x) + w_y(y) + sum over heads h of x_h^T W_h y_h (one output)."""

        def __init__(self, x_dim, y_dim, num_heads=1):
            super().__init__()
            if x_dim % num_heads or y_dim % num_heads:
                raise ValueError(f"num_heads={num_heads} must divide {x_dim} and {y_dim}")
            self.num_heads = num_heads
            self.w_x, self.w_y = nn.Linear(x_dim, 1), nn.Linear(y_dim, 1)
            # xavier_normal_ on the flat (heads * dx/h * dy/h, 1) matrix, as the zoo draws
            # it (a 3-d tensor would get other fans, hence another std), then viewed per head.
            w = torch.empty(x_dim * y_dim // num_heads, 1)
            nn.init.xavier_normal_(w)
            self.w_xy = nn.Parameter(w.view(num_heads, x_dim // num_heads, -1))

        def forward(self, x, y):
            xh = x.view(x.size(0), self.num_heads, 1, -1)   # [b, h, 1, dx/h]
            yh = y.view(y.size(0), self.num_heads, -1)      # [b, h, dy/h]
            pair = (torch.matmul(xh, self.w_xy).squeeze(2) * yh).sum(dim=(1, 2))
            return self.w_x(x) + self.w_y(y) + pair.unsqueeze(1)

    class FinalMLP(_PeerModel):
        """Two MLP streams over (optionally context-gated) embeddings, bilinear fusion."""

        def __init__(self, feature_map, mlp1_hidden_units=(64,), mlp1_hidden_activations="ReLU",
                     mlp1_dropout=0.0, mlp1_batch_norm=False, mlp2_hidden_units=(64,),
                     mlp2_hidden_activations="ReLU", mlp2_dropout=0.0, mlp2_batch_norm=False,
                     use_fs=True, fs_hidden_units=(64,), fs1_context=(), fs2_context=(),
                     num_heads=1, **kw):
            super().__init__(feature_map, **kw)
            flat_dim = self.emb_dim * feature_map.num_fields
            self.mlp1 = tower(flat_dim, mlp1_hidden_units, mlp1_hidden_activations,
                              mlp1_dropout, mlp1_batch_norm)
            self.mlp2 = tower(flat_dim, mlp2_hidden_units, mlp2_hidden_activations,
                              mlp2_dropout, mlp2_batch_norm)
            self.gates = nn.ModuleList(
                ContextGate(feature_map, ctx, self.emb_dim, flat_dim, fs_hidden_units)
                for ctx in ((fs1_context, fs2_context) if use_fs else ()))
            self.fusion = BilinearFusion(mlp1_hidden_units[-1], mlp2_hidden_units[-1],
                                         num_heads)
            self._finish()

        def logit(self, X):
            flat = self.embedding_layer(X, flatten_emb=True)
            views = [flat * gate(X, flat.size(0)) for gate in self.gates] or [flat, flat]
            return self.fusion(self.mlp1(views[0]), self.mlp2(views[1]))

    return {"dnn": DNN, "deepfm": DeepFM, "dcnv2": DCNv2, "finalmlp": FinalMLP}


# --------------------------------------------------------------------------- helpers
def _regularizer(value):
    """Our float L2 weight -> FuxiCTR regularizer (float => ("l2", value); 0 => none)."""
    if value is None or float(value) == 0.0:
        return None  # like BARS' `net_regularizer: 0`: no term computed at all
    return float(value)


def _schema(p: dict) -> tuple[list[str], list[str]]:
    """(categorical, numeric) column names from ``params``; Frappe's ten fields by default."""
    categorical = list(FRAPPE_FIELDS if p.get("categorical") is None else p["categorical"])
    numeric = list(p.get("numeric") or [])
    both = set(categorical) & set(numeric)
    if both or not categorical + numeric or LABEL in categorical + numeric:
        raise ValueError(f"bad schema: categorical={categorical}, numeric={numeric}")
    return categorical, numeric


def _feature_cols(categorical: list[str], numeric: list[str]) -> list[dict]:
    """FuxiCTR ``feature_cols``: categoricals as strings; numerics standardised (the
    normalizer is fitted on train). Only these columns and the label are read."""
    cols = []
    if categorical:
        cols.append({"name": categorical, "active": True, "dtype": "str",
                     "type": "categorical"})
    if numeric:
        cols.append({"name": numeric, "active": True, "dtype": "float", "type": "numeric",
                     "normalizer": "StandardScaler"})
    return cols


def _check_columns(csv_path, needed: list[str]) -> None:
    import csv
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f), [])
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{csv_path}: missing columns {missing}")


def _fs_context(p: dict, key: str, columns: list[str]) -> list[str]:
    """FinalMLP gate context: the Frappe default falls back to [] (learned bias) when its
    column is absent; explicitly named columns must exist."""
    ctx = list(p.get(key, _FRAPPE_FS_CONTEXT[key]))
    missing = [c for c in ctx if c not in columns]
    if missing and ctx == _FRAPPE_FS_CONTEXT[key]:
        return []
    if missing:
        raise ValueError(f"{key}={ctx}: no such feature column(s) {missing}")
    return ctx


def _model_kwargs(model: str, p: dict, columns: list[str] | None = None) -> dict:
    """Map our common parameter names to the FuxiCTR model-zoo argument names
    (``columns``: the feature columns in use, by default those of :func:`_schema`)."""
    if columns is None:
        columns = sum(_schema(p), [])
    monitor = p.get("monitor", "AUC")
    kw = dict(
        embedding_dim=int(p["embedding_dim"]),
        learning_rate=float(p["learning_rate"]),
        embedding_regularizer=_regularizer(p.get("embedding_l2")),
        net_regularizer=_regularizer(p.get("net_l2")),
        # BaseModel / fit settings
        task="binary_classification", optimizer="adam", loss="binary_crossentropy",
        metrics=["logloss", "AUC"], monitor=monitor,
        monitor_mode=p.get("monitor_mode", "min" if monitor == "logloss" else "max"),
        early_stop_patience=int(p.get("patience", 2)),
        reduce_lr_on_plateau=bool(p.get("reduce_lr_on_plateau", True)),
        save_best_only=True, eval_steps=None, gpu=-1, verbose=0,
    )
    hidden = list(p.get("hidden_units", []))
    act = p.get("activation", "relu")
    if model in ("dnn", "deepfm"):
        kw.update(hidden_units=hidden, hidden_activations=act,
                  net_dropout=float(p.get("dropout", 0)), batch_norm=bool(p.get("batch_norm")))
    elif model == "dcnv2":
        structure = p.get("dcn_structure", "parallel")
        kw.update(model_structure=structure, num_cross_layers=int(p.get("num_cross_layers", 4)),
                  dnn_activations=act, net_dropout=float(p.get("dropout", 0)),
                  batch_norm=bool(p.get("batch_norm")))
        if structure in ("parallel", "stacked_parallel"):
            kw["parallel_dnn_hidden_units"] = hidden
        if structure in ("stacked", "stacked_parallel"):
            kw["stacked_dnn_hidden_units"] = list(p.get("stacked_hidden_units", hidden))
    elif model == "finalmlp":
        bn = bool(p.get("batch_norm"))
        kw.update(mlp1_hidden_units=list(p["mlp1_hidden_units"]), mlp1_hidden_activations=act,
                  mlp1_dropout=float(p.get("mlp1_dropout", 0)), mlp1_batch_norm=bn,
                  mlp2_hidden_units=list(p["mlp2_hidden_units"]), mlp2_hidden_activations=act,
                  mlp2_dropout=float(p.get("mlp2_dropout", 0)), mlp2_batch_norm=bn,
                  use_fs=bool(p.get("use_fs", True)),
                  fs_hidden_units=list(p.get("fs_hidden_units", [64])),
                  fs1_context=_fs_context(p, "fs1_context", columns),
                  fs2_context=_fs_context(p, "fs2_context", columns),
                  num_heads=int(p.get("num_heads", 1)))
    else:
        raise ValueError(f"model={model!r} not in {MODELS}")
    return kw


_QUIET_LOGGERS = ("ray", "ray.data", "ray.data._internal", "filelock")


def _quiet_logs():
    logging.getLogger().setLevel(logging.WARNING)  # FuxiCTR logs through the root logger
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def _init_ray():
    """Start Ray once per process, quietly and without progress bars.

    FuxiCTR's own ``init_ray`` (build_dataset) would otherwise turn Ray Data progress bars
    on; it and ``ParquetDataLoader`` skip their own ``ray.init`` when Ray is already up.
    """
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ENABLE_RECORD_ACTOR_TASK_LOGGING", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False,
                 logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        ctx.print_on_execution_start = False
    except Exception:
        pass
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def shutdown():
    """Stop the Ray runtime started by :func:`run_fuxictr` (call once at the very end)."""
    import ray
    if ray.is_initialized():
        ray.shutdown()


# --------------------------------------------------------------------------- main API
def run_fuxictr(model: str, params: dict, train_csv: Path, valid_csv: Path, test_csv: Path,
                seed: int, work_dir: Path, on_epoch=None) -> dict:
    """Train and evaluate one FuxiCTR model on pre-split CSVs (Frappe by default).

    ``params`` uses our common names (see :func:`default_params`, which also gives the
    defaults for missing keys); ``categorical`` / ``numeric`` list the feature columns
    (default: the ten Frappe fields, no numeric ones). Only those columns and ``label``
    are read, other CSV columns are ignored; numeric columns are standardised with
    statistics of the training file. Returns test/valid metrics, epochs run and throughputs:
    ``train_*`` counts only the time inside ``train_step`` (forward, backward, clip,
    optimizer step), ``fit_*`` the wall time of ``model.fit`` (data loading each epoch,
    validation, checkpointing, best-weights reload). Preprocessing (feature processing,
    dataset build, loader set-up) is in ``preprocess_seconds`` and in neither throughput.
    ``on_epoch``, when given, is called after each epoch's validation with a dict of the
    epoch number, the mean training loss and the validation metrics (a live metrics stream
    for callers that report progress, e.g. ``examples/targets/fuxictr/train.py``).
    """
    model = model.lower()
    if model not in MODELS:
        raise ValueError(f"model={model!r} not in {MODELS}")
    p = default_params(model)
    p.update(params or {})
    categorical, numeric = _schema(p)
    for csv_path in (train_csv, valid_csv, test_csv):
        _check_columns(csv_path, [LABEL] + categorical + numeric)

    import numpy as np
    import torch
    torch.set_num_threads(TORCH_THREADS)
    _quiet_logs()
    from fuxictr import __version__ as fuxictr_version
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything

    work_dir = Path(work_dir).absolute()
    work_dir.mkdir(parents=True, exist_ok=True)
    dataset_id = f"fuxictr_{model}_s{seed}_{os.getpid()}"
    data_dir = work_dir / dataset_id
    if data_dir.exists():  # build_dataset silently skips when feature_map.json exists
        shutil.rmtree(data_dir)
    model_root = work_dir / "checkpoints"
    (model_root / dataset_id).mkdir(parents=True, exist_ok=True)

    # Seed before anything random (FuxiCTR's run_expid seeds before building the dataset).
    seed_everything(seed=seed)

    # ---- preprocessing: feature processing + dataset build + loaders (excluded)
    t0 = time.perf_counter()
    _init_ray()
    ray_seconds = time.perf_counter() - t0
    t_pre = time.perf_counter()
    feature_cols = _feature_cols(categorical, numeric)
    label_col = {"name": LABEL, "dtype": "float"}
    encoder = FeatureProcessor(feature_cols=feature_cols, label_col=label_col,
                               dataset_id=dataset_id, data_root=str(work_dir))
    train_pq, valid_pq, test_pq = build_dataset(
        encoder, train_data=str(train_csv), valid_data=str(valid_csv),
        test_data=str(test_csv), data_format="csv", min_categr_count=1)
    feature_map = FeatureMap(dataset_id, str(data_dir))
    feature_map.load(str(data_dir / "feature_map.json"), {"embedding_dim": p["embedding_dim"]})
    batch_size = int(p["batch_size"])
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", train_data=train_pq,
                                          valid_data=valid_pq, batch_size=batch_size,
                                          shuffle=True, data_format="parquet")
    test_gen = RankDataLoader(feature_map, stage="test", test_data=test_pq,
                              batch_size=batch_size, shuffle=False, data_format="parquet")
    preprocess_seconds = time.perf_counter() - t_pre

    # ---- model
    seed_everything(seed=seed)  # model init independent of what the data build consumed
    cls = _build_model_classes()[model]
    kwargs = _model_kwargs(model, p, categorical + numeric)
    if model == "finalmlp":  # report the context fields actually used
        p["fs1_context"], p["fs2_context"] = kwargs["fs1_context"], kwargs["fs2_context"]
    net = cls(feature_map, model_id=f"{model}_s{seed}", model_root=str(model_root), **kwargs)
    num_params = sum(x.numel() for x in net.parameters() if x.requires_grad)

    # Time only the training steps: wrap the bound train_step (train_epoch calls
    # self.train_step, so an instance attribute overrides it).
    stats = {"train_seconds": 0.0, "train_samples": 0, "history": [],
             "epoch_train_seconds": 0.0, "epoch_start": None, "loss_sum": 0.0, "steps": 0}
    orig_train_step = net.train_step

    def timed_train_step(batch_data):
        t = time.perf_counter()
        loss = orig_train_step(batch_data)
        dt = time.perf_counter() - t
        stats["train_seconds"] += dt
        stats["epoch_train_seconds"] += dt
        stats["train_samples"] += int(batch_data[LABEL].shape[0])
        if on_epoch is not None:  # only then: .item() would add a sync to the timed peer
            stats["loss_sum"] += float(loss.item())
            stats["steps"] += 1
        return loss

    net.train_step = timed_train_step

    orig_ckpt = net.checkpoint_and_earlystop

    def recording_ckpt(logs, *a, **k):
        orig_ckpt(logs, *a, **k)
        now = time.perf_counter()
        stats["history"].append({
            "epoch": net._epoch_index + 1,
            "valid_" + str(p.get("monitor", "AUC")): float(net._monitor.get_value(logs)),
            "lr_after": float(net.optimizer.param_groups[0]["lr"]),
            "train_seconds": round(stats["epoch_train_seconds"], 3),
            "epoch_wall_seconds": round(now - stats["epoch_start"], 3),  # incl. validation
        })
        stats["epoch_train_seconds"] = 0.0
        stats["epoch_start"] = now
        if on_epoch is not None:
            on_epoch({"epoch": net._epoch_index + 1,
                      "train_loss": stats["loss_sum"] / max(1, stats["steps"]),
                      "valid": {k: float(v) for k, v in logs.items()},
                      "learning_rate": float(net.optimizer.param_groups[0]["lr"])})
            stats["loss_sum"], stats["steps"] = 0.0, 0

    net.checkpoint_and_earlystop = recording_ckpt

    t_fit = stats["epoch_start"] = time.perf_counter()
    net.fit(train_gen, epochs=int(p["epochs"]), validation_data=valid_gen,
            max_gradient_norm=10.0)
    fit_seconds = time.perf_counter() - t_fit
    epochs_run = net._epoch_index + 1

    # ---- evaluation with the restored best weights
    valid_logs = net.evaluate(valid_gen, metrics=["logloss", "AUC"])
    test_logs = net.evaluate(test_gen, metrics=["logloss", "AUC"])

    train_samples = stats["train_samples"]
    train_seconds = stats["train_seconds"]
    return {
        "test_auc": float(test_logs["AUC"]),
        "test_logloss": float(test_logs["logloss"]),
        "valid_auc": float(valid_logs["AUC"]),
        "valid_logloss": float(valid_logs["logloss"]),
        "epochs_run": int(epochs_run),
        "train_samples": int(train_samples),
        "train_seconds": float(train_seconds),
        "fit_seconds": float(fit_seconds),
        "train_samples_per_s": float(train_samples / train_seconds) if train_seconds else 0.0,
        "fit_samples_per_s": float(train_samples / fit_seconds) if fit_seconds else 0.0,
        "preprocess_seconds": float(preprocess_seconds),
        # extras, for the report
        "ray_init_seconds": float(ray_seconds),
        "history": stats["history"],
        "num_params": int(num_params),
        "vocab_sizes": {f: int(feature_map.features[f]["vocab_size"]) for f in categorical},
        "numeric": numeric,
        "model": model,
        "seed": int(seed),
        "params": p,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "fuxictr_version": fuxictr_version,
        "numpy_version": np.__version__,
    }


# --------------------------------------------------------------------------- smoke test
def make_frappe_split(out_dir: Path, data_dir: Path | None = None) -> tuple[Path, Path, Path]:
    """The benchmark split: frappe_x1_valid.csv permuted with RandomState(2024), first
    n - int(0.1 n) rows train, rest valid; test = frappe_x1_test.csv (not copied)."""
    import numpy as np
    import pandas as pd
    if data_dir is None:
        data_dir = Path(os.environ.get("FRAPPE_DIR") or
                        Path(__file__).resolve().parents[3] / "shared" / "data" / "frappe")
    df = pd.read_csv(data_dir / "frappe_x1_valid.csv")
    n = len(df)
    perm = np.random.RandomState(2024).permutation(n)
    n_train = n - int(n * 0.1)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_csv, valid_csv = out_dir / "train.csv", out_dir / "valid.csv"
    df.iloc[perm[:n_train]].to_csv(train_csv, index=False)
    df.iloc[perm[n_train:]].to_csv(valid_csv, index=False)
    return train_csv, valid_csv, data_dir / "frappe_x1_test.csv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="dnn", choices=MODELS)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None, help="max epochs (default: 30)")
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--params", default=None, help="JSON dict overriding default params")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="folder with frappe_x1_valid.csv / frappe_x1_test.csv")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep files here")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    params = default_params(args.model)
    if args.params:
        params.update(json.loads(args.params))
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if args.patience is not None:
        params["patience"] = args.patience
    # Ray's driver threads print some worker notices to stdout: keep stdout for the JSON.
    with tempfile.TemporaryDirectory(prefix="fuxictr_peer_") as tmp, \
            contextlib.redirect_stdout(sys.stderr):
        work = args.work_dir or Path(tmp)
        train_csv, valid_csv, test_csv = make_frappe_split(Path(tmp) / "split", args.data_dir)
        try:
            result = run_fuxictr(args.model, params, train_csv, valid_csv, test_csv,
                                 args.seed, work)
        finally:
            shutdown()
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
