"""Ranking metrics, computed exactly over a whole split (no binned approximations).

NE (normalized entropy) is the log loss divided by the entropy of the split's own click
rate, so 1.0 means "no better than predicting the base rate" and lower is better.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

_EPS = 1e-15


def _as_arrays(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length: {y.shape[0]} vs {p.shape[0]}")
    if y.size == 0:
        raise ValueError("cannot compute metrics of an empty split")
    return y, p


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve via average ranks (ties count one half, as in scikit-learn)."""
    y, s = _as_arrays(labels, scores)
    n_pos = float(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_scores)) + 1))
    ends = np.concatenate((starts[1:], [s.size]))
    average_rank = (starts + ends + 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat(average_rank, ends - starts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels, probabilities) -> float:
    y, p = _as_arrays(labels, probabilities)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def base_rate_entropy(labels) -> float:
    """Log loss of always predicting the split's click rate."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    rate = float(y.mean())
    if rate <= 0.0 or rate >= 1.0:
        return 0.0
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def normalized_entropy(labels, probabilities) -> float:
    entropy = base_rate_entropy(labels)
    if entropy == 0.0:
        return float("nan")
    return log_loss(labels, probabilities) / entropy


def calibration(labels, probabilities) -> float:
    """Mean predicted probability over the observed click rate (1.0 is calibrated)."""
    y, p = _as_arrays(labels, probabilities)
    observed = float(y.mean())
    return float(p.mean() / observed) if observed > 0 else float("nan")


@dataclass(frozen=True)
class Metrics:
    auc: float
    logloss: float
    ne: float
    calibration: float
    rows: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate(labels, probabilities) -> Metrics:
    """All metrics of one split at once."""
    y, p = _as_arrays(labels, probabilities)
    return Metrics(
        auc=roc_auc(y, p),
        logloss=log_loss(y, p),
        ne=normalized_entropy(y, p),
        calibration=calibration(y, p),
        rows=int(y.size),
    )
