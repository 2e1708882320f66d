"""A small codebase that is not rankwright's: scikit-learn logistic regression on a CSV.

    python train.py --config CONFIG.yaml --run-dir RUN_DIR

The config names `data.csv` (label column `data.label`, all others numeric features); with
no CSV it generates a synthetic one. Writes metrics.jsonl (start, result), heartbeat.json
and result.json into RUN_DIR.
"""

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import yaml
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def log(run_dir: Path, event: str, **fields) -> None:
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
    write_json(run_dir / "heartbeat.json", {"time": time.time(), "pid": os.getpid(), "event": event})


def main() -> None:
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args()
    cfg = yaml.safe_load(args.config.read_text()) or {}
    data, model = cfg.get("data", {}), cfg.get("model", {})
    args.run_dir.mkdir(parents=True, exist_ok=True)
    if data.get("csv"):
        table = np.genfromtxt(data["csv"], delimiter=",", names=True)
        label = data.get("label", "label")
        y = table[label].astype(int)
        x = np.column_stack([table[n] for n in table.dtype.names if n != label])
    else:
        x, y = make_classification(n_samples=data.get("rows", 2000), n_features=20, n_informative=8,
                                   random_state=data.get("seed", 0))
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=data.get("seed", 0))
    log(args.run_dir, "start", train_rows=len(y_tr), valid_rows=len(y_va))
    started = time.time()
    penalty = model.get("penalty", "l2")
    clf = LogisticRegression(C=model.get("C", 1.0), l1_ratio=0.0 if penalty == "l2" else 1.0,
                             solver="saga", max_iter=model.get("max_iter", 100), tol=1e-3)
    clf.fit(x_tr, y_tr)
    p = clf.predict_proba(x_va)[:, 1]
    result = {"valid_logloss": float(log_loss(y_va, p)), "valid_auc": float(roc_auc_score(y_va, p)),
              "fit_seconds": time.time() - started, "train_rows": len(y_tr)}
    log(args.run_dir, "result", **result)
    write_json(args.run_dir / "result.json", result)


if __name__ == "__main__":
    main()
