"""Ranking codebase vs FuxiCTR, side by side in one run (`make bench`).

For each model and seed, ours and FuxiCTR train on the same files with the same
hyper-parameters, interleaved so that machine noise hits both alike. Reported: test AUC and
log loss, and training throughput (train-only: inside training steps; whole fit: the fit
loop's wall time incl. per-epoch data loading and validation; preprocessing excluded from
both). Results go to benchmarks/results/ as JSON and Markdown.

    python benchmarks/bench_ranking.py                 # full: 4 models x 3 seeds, Frappe + synthetic
    python benchmarks/bench_ranking.py --quick         # 1 seed, 2 epochs: a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work"
RESULTS = ROOT / "benchmarks" / "results"
FRAPPE_FIELDS = ["user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city"]

def frappe_split() -> tuple[Path, Path, Path]:
    """frappe_x1_valid.csv permuted by RandomState(2024): first 90% train, last 10% valid."""
    source = SHARED / "frappe" / "frappe_x1_valid.csv"
    test = SHARED / "frappe" / "frappe_x1_test.csv"
    if not source.exists():
        sys.exit(f"shared data absent: {source} (the Frappe benchmark needs ../shared/data)")
    out = WORK / "frappe"
    train_csv, valid_csv = out / "train.csv", out / "valid.csv"
    if not train_csv.exists():
        out.mkdir(parents=True, exist_ok=True)
        from rankwright.ranking.data import SplitConfig, split_rows

        frame = pd.read_csv(source)
        train, valid, _ = split_rows(len(frame), SplitConfig(valid_fraction=0.1, seed=2024), need_test=False)
        frame.iloc[train].to_csv(train_csv, index=False)
        frame.iloc[valid].to_csv(valid_csv, index=False)
    return train_csv, valid_csv, test


def synthetic_split(rows: int) -> tuple[Path, Path, Path, list[str], list[str]]:
    """The built-in generator written to CSV so both implementations read the same rows."""
    from rankwright.ranking.data.config import SyntheticConfig
    from rankwright.ranking.data.synthetic import generate_frame, synthetic_schema

    config = SyntheticConfig(rows=rows, seed=0)
    schema = synthetic_schema(config)
    out = WORK / f"synthetic-{rows}"
    paths = [out / f"{name}.csv" for name in ("train", "valid", "test")]
    if not paths[0].exists():
        out.mkdir(parents=True, exist_ok=True)
        from rankwright.ranking.data import SplitConfig, split_rows

        frame = generate_frame(config)
        for path, index in zip(paths, split_rows(len(frame), SplitConfig(valid_fraction=0.1, test_fraction=0.1))):
            frame.iloc[index].to_csv(path, index=False)
    return (*paths, list(schema.categorical), list(schema.numeric))


def run_ours(model: str, params: dict, train_csv: Path, valid_csv: Path, test_csv: Path, seed: int,
             categorical: list[str], numeric: list[str], prob_column: str | None = None,
             precision: str = "off") -> dict:
    from rankwright.ranking.config import validate_run_config
    from rankwright.ranking.data import load_data
    from rankwright.ranking.train.trainer import Trainer

    model_doc = {"name": model, "embedding_dim": params["embedding_dim"], "embedding_l2": params["embedding_l2"],
                 "net_l2": params["net_l2"]}
    if model in ("dnn", "deepfm", "dcnv2"):
        model_doc.update(hidden_units=params["hidden_units"], activation=params["activation"],
                         dropout=params["dropout"], batch_norm=params["batch_norm"])
    if model == "dcnv2":
        model_doc.update(structure=params["dcn_structure"], num_cross_layers=params["num_cross_layers"])
    if model == "finalmlp":
        def context(key: str) -> list[str]:  # Frappe's user/item gates; a learned vector elsewhere
            return [c for c in params.get(key, []) if c in categorical]

        model_doc.update(
            mlp1_hidden_units=params["mlp1_hidden_units"], mlp2_hidden_units=params["mlp2_hidden_units"],
            mlp1_dropout=params["mlp1_dropout"], mlp2_dropout=params["mlp2_dropout"],
            mlp1_batch_norm=params["batch_norm"], mlp2_batch_norm=params["batch_norm"],
            mlp1_activation=params["activation"], mlp2_activation=params["activation"],
            use_fs=params["use_fs"], fs_hidden_units=params["fs_hidden_units"],
            fs1_context=context("fs1_context"), fs2_context=context("fs2_context"), num_heads=params["num_heads"],
        )
    config = validate_run_config({
        "data": {"source": "csv", "train": str(train_csv), "valid": str(valid_csv), "test": str(test_csv),
                 "schema": {"label": "label", "categorical": categorical, "numeric": numeric},
                 "processing": {"numeric_transform": "standardize"}},
        "model": model_doc,
        "train": {"batch_size": params["batch_size"], "learning_rate": params["learning_rate"],
                  "epochs": params["epochs"], "early_stopping_patience": params["patience"],
                  "monitor": params["monitor"].lower(), "grad_clip_norm": 10.0, "schedule": "plateau",
                  "base_rate_offset": False, "mixed_precision": precision,
                  "seed": seed, "num_threads": 2},
    }, source="benchmark")
    started = time.perf_counter()
    data = load_data(config.data, cache_dir=WORK / "cache")
    preprocess = time.perf_counter() - started
    if prob_column is not None:
        data = _with_true_probabilities(data, test_csv, prob_column)
    result = Trainer(data, config.model, config.train).fit().to_dict()
    return {
        "test_auc": result["test"]["auc"], "test_logloss": result["test"]["logloss"],
        "valid_auc": result["valid"]["auc"], "epochs_run": result["epochs_run"],
        "train_samples": result["train_samples"], "train_seconds": result["train_seconds"],
        "fit_seconds": result["fit_seconds"], "train_samples_per_s": result["train_samples_per_s"],
        "fit_samples_per_s": result["fit_samples_per_s"], "preprocess_seconds": preprocess,
    }


def _with_true_probabilities(data, test_csv: Path, column: str):
    """Attach the generator's probabilities to the test split (CSV sources do not carry them)."""
    import dataclasses

    prob = torch.tensor(pd.read_csv(test_csv, usecols=[column])[column].to_numpy(), dtype=torch.float32)
    return dataclasses.replace(data, test=dataclasses.replace(data.test, true_probability=prob))


def summarize(runs: list[dict]) -> dict:
    keys = ("test_auc", "test_logloss", "train_samples_per_s", "fit_samples_per_s", "epochs_run")
    out = {}
    for key in keys:
        values = [r[key] for r in runs]
        out[key] = statistics.mean(values)
        out[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


OURS = {"rankwright": "off", "rankwright-bf16": "bf16"}  # fp32, and bf16 autocast on CPU


def markdown_table(title: str, rows: list[dict], bayes: dict | None = None) -> str:
    lines = [f"### {title}", "",
             "| model | implementation | seeds | test AUC mean (sd) | test logloss mean (sd) | epochs | train-only samples/s | whole-fit samples/s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for impl in (*OURS, "fuxictr"):
            s = row["summary"][impl]
            lines.append(
                f"| {row['model']} | {impl} | {row['seeds']} | {s['test_auc']:.4f} ({s['test_auc_sd']:.4f}) | "
                f"{s['test_logloss']:.4f} ({s['test_logloss_sd']:.4f}) | {s['epochs_run']:.1f} | "
                f"{s['train_samples_per_s']:,.0f} | {s['fit_samples_per_s']:,.0f} |")
        for impl in OURS:
            r = row["ratios"][impl]
            lines.append(
                f"| {row['model']} | **{impl} / fuxictr** | | ΔAUC {r['auc_delta']:+.4f} | "
                f"Δlogloss {r['logloss_delta']:+.4f} | | **{r['train_speedup']:.2f}x** | **{r['fit_speedup']:.2f}x** |")
    if bayes:
        lines.append(f"| Bayes limit | true probabilities | | {bayes['auc']:.4f} | {bayes['logloss']:.4f} | | | |")
    return "\n".join(lines) + "\n"


def compare(task: str, models: list[str], seeds: list[int], files, categorical, numeric, epochs: int | None,
            prob_column: str | None = None) -> list[dict]:
    from peers.fuxictr_peer import default_params, run_fuxictr

    rows = []
    for model in models:
        params = default_params(model)  # BARS frappe_x1 settings, used by both sides
        if epochs is not None:
            params["epochs"] = epochs
        runs: dict[str, list[dict]] = {impl: [] for impl in (*OURS, "fuxictr")}
        for seed in seeds:  # interleaved, so that machine noise hits every implementation alike
            for impl, precision in OURS.items():
                runs[impl].append(run_ours(model, params, *files, seed, categorical, numeric, prob_column, precision))
                print(f"[{task}] {model} seed {seed} {impl}: {json.dumps(runs[impl][-1])}", flush=True)
            runs["fuxictr"].append(run_fuxictr(model, {**params, "categorical": categorical, "numeric": numeric},
                                               *files, seed, WORK / "fuxictr" / task / f"{model}-{seed}"))
            print(f"[{task}] {model} seed {seed} fuxictr: {json.dumps(runs['fuxictr'][-1])}", flush=True)
        summary = {impl: summarize(r) for impl, r in runs.items()}
        peer = summary["fuxictr"]
        ratios = {
            impl: {
                "auc_delta": summary[impl]["test_auc"] - peer["test_auc"],
                "logloss_delta": summary[impl]["test_logloss"] - peer["test_logloss"],
                "train_speedup": summary[impl]["train_samples_per_s"] / peer["train_samples_per_s"],
                "fit_speedup": summary[impl]["fit_samples_per_s"] / peer["fit_samples_per_s"],
            }
            for impl in OURS
        }
        rows.append({"model": model, "seeds": len(seeds), "summary": summary, "ratios": ratios, "runs": runs})
    return rows


def write(stem: str, header: str, section: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"header": header, **payload}, indent=2))
    (RESULTS / f"{stem}.md").write_text(f"# Ranking codebase vs FuxiCTR 2.3.10\n\n{header}\n\n{section}")
    print(section, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="frappe,synthetic", help="comma-separated: frappe, synthetic")
    parser.add_argument("--models", default="dnn,deepfm,dcnv2,finalmlp")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--synthetic-rows", type=int, default=100_000)
    parser.add_argument("--synthetic-models", default="dnn,dcnv2")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, DNN only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tasks = args.tasks.split(",")
    models = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = None
    if args.quick:
        models, seeds, epochs = ["dnn"], [1], 2
    suffix = "_quick" if args.quick else ""
    from peers.fuxictr_peer import default_params, shutdown

    header = (f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}; date {time.strftime('%Y-%m-%d')}; seeds {seeds}")
    if "frappe" in tasks:
        files = frappe_split()
        rows = compare("frappe", models, seeds, files, FRAPPE_FIELDS, [], epochs)
        section = markdown_table("Frappe (train/valid: 90/10 of frappe_x1_valid.csv by RandomState(2024); "
                                 "test: frappe_x1_test.csv)", rows)
        write(f"ranking_vs_fuxictr_frappe{suffix}", header, section,
              {"settings": {m: default_params(m) for m in models}, "rows": rows})
    if "synthetic" in tasks:
        from rankwright.ranking import metrics as M

        *files, categorical, numeric = synthetic_split(args.synthetic_rows)
        syn_models = ["dnn"] if args.quick else args.synthetic_models.split(",")
        rows = compare("synthetic", syn_models, seeds, files, categorical, numeric, epochs, "prob")
        test = pd.read_csv(files[2], usecols=["label", "prob"])
        bayes = M.evaluate(test["label"].to_numpy(), test["prob"].to_numpy()).to_dict()
        section = markdown_table(f"Synthetic click log ({args.synthetic_rows:,} rows, 80/10/10 split; numeric "
                                 "fields standardized), Bayes limit from the true probabilities", rows, bayes)
        write(f"ranking_vs_fuxictr_synthetic{suffix}", header, section,
              {"settings": {m: default_params(m) for m in syn_models}, "rows": rows, "bayes": bayes})
    shutdown()


if __name__ == "__main__":
    main()
