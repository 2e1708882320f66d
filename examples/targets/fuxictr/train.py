"""Train one FuxiCTR model on Frappe, configured by command-line flags in FuxiCTR's names.

This is the codebase Rankwright is pointed at in this example: it knows nothing of
Rankwright. It runs in its own virtual environment (``setup_env.sh``: PyTorch, FuxiCTR
2.3.10 and what FuxiCTR needs), trains with FuxiCTR's data pipeline, layers and fit loop
(the models are the benchmark peer's, ``benchmarks/peers/fuxictr_peer.py``, on
``PYTHONPATH``), and leaves in ``--run_dir`` what any codebase can leave:

- ``metrics.jsonl``: one ``epoch`` record per epoch (training loss, validation metrics), then
  one ``result`` record with validation and test AUC, log loss and NE;
- ``heartbeat.json``: rewritten every few seconds while the process lives.

    python train.py --run_dir out --model dcnv2 --learning_rate 0.001 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path


def _flag_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run_dir", type=Path, required=True)
    ap.add_argument("--train_file", type=Path, required=True,
                    help="CSV split 90/10 into training and validation rows (Frappe: frappe_x1_valid.csv)")
    ap.add_argument("--test_file", type=Path, required=True, help="CSV of test rows (Frappe: frappe_x1_test.csv)")
    ap.add_argument("--model", default="dcnv2", choices=("dnn", "deepfm", "dcnv2"))
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--learning_rate", type=float, default=1e-3)
    ap.add_argument("--batch_size", type=int, default=4096)
    ap.add_argument("--embedding_dim", type=int, default=10)
    ap.add_argument("--dnn_hidden_units", type=json.loads, default=[400, 400, 400], help="JSON list")
    ap.add_argument("--net_dropout", type=float, default=0.1)
    ap.add_argument("--batch_norm", type=_flag_bool, default=True)
    ap.add_argument("--embedding_regularizer", type=float, default=0.05)
    ap.add_argument("--net_regularizer", type=float, default=0.0)
    ap.add_argument("--num_cross_layers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--early_stop_patience", type=int, default=2)
    return ap.parse_args(argv)


def entropy(rate: float) -> float:
    rate = min(max(rate, 1e-12), 1 - 1e-12)
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from fuxictr_peer import run_fuxictr, shutdown  # the peer, on PYTHONPATH

    run_dir = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = run_dir / "metrics.jsonl"

    def emit(**record) -> None:
        with open(metrics, "a") as f:
            f.write(json.dumps({"time": time.time(), **record}) + "\n")

    alive = threading.Event()

    def beat() -> None:  # the heartbeat says "alive" even while one long epoch runs
        while not alive.wait(5.0):
            (run_dir / "heartbeat.json").write_text(json.dumps({"time": time.time()}))

    (run_dir / "heartbeat.json").write_text(json.dumps({"time": time.time()}))
    threading.Thread(target=beat, daemon=True).start()
    params = {"learning_rate": args.learning_rate, "batch_size": args.batch_size,
              "embedding_dim": args.embedding_dim, "hidden_units": list(args.dnn_hidden_units),
              "dropout": args.net_dropout, "batch_norm": args.batch_norm,
              "embedding_l2": args.embedding_regularizer, "net_l2": args.net_regularizer,
              "num_cross_layers": args.num_cross_layers, "epochs": args.epochs,
              "patience": args.early_stop_patience}
    emit(event="start", model=args.model, seed=args.seed, params=params)
    with tempfile.TemporaryDirectory(prefix="fuxictr_run_") as tmp:
        import numpy as np
        import pandas as pd

        # the split of shared/BENCHMARKS.md: rows permuted by RandomState(2024), the last 10% validate
        frame = pd.read_csv(args.train_file)
        order = np.random.RandomState(2024).permutation(len(frame))
        cut = len(frame) - int(0.1 * len(frame))
        train_csv, valid_csv, test_csv = Path(tmp) / "train.csv", Path(tmp) / "valid.csv", args.test_file
        frame.iloc[order[:cut]].to_csv(train_csv, index=False)
        frame.iloc[order[cut:]].to_csv(valid_csv, index=False)

        rates = {name: float(pd.read_csv(path, usecols=["label"])["label"].mean())
                 for name, path in (("valid", valid_csv), ("test", test_csv))}

        def on_epoch(record: dict) -> None:
            valid = {k.lower(): v for k, v in record["valid"].items()}
            emit(event="epoch", epoch=record["epoch"], train_loss=record["train_loss"],
                 learning_rate=record["learning_rate"], valid=valid)

        try:
            out = run_fuxictr(args.model, params, train_csv, valid_csv, test_csv, args.seed, Path(tmp) / "work",
                              on_epoch=on_epoch)
        finally:
            shutdown()
    result = {split: {"auc": out[f"{split}_auc"], "logloss": out[f"{split}_logloss"],
                      "ne": out[f"{split}_logloss"] / entropy(rates[split])} for split in ("valid", "test")}
    emit(event="result", **result, epochs_run=out["epochs_run"], fit_seconds=out["fit_seconds"],
         fuxictr_version=out["fuxictr_version"])
    alive.set()
    (run_dir / "heartbeat.json").write_text(json.dumps({"time": time.time(), "finished": True}))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    sys.exit(main())
