"""What the preflight can see of the shift between the splits: per categorical field, the
share of validation and test rows whose value never occurs in training; the label rate
and size of each split. When validation and test disagree, a campaign optimising the
validation objective optimises something the test set does not reward: the preflight
says so before any budget is spent. PyTorch-free (the preflight runs in the agent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rankwright.ranking.data.config import DataConfig
from rankwright.ranking.data.files import resolve_files
from rankwright.ranking.data.sources import LABEL
from rankwright.ranking.data.splitting import frames_of

UNSEEN_GAP = 0.10  # validation and test unseen-value rates further apart than this disagree
LABEL_RATIO = 1.25  # label rates further apart than this factor disagree


@dataclass(frozen=True)
class SplitShift:
    rows: dict[str, int]
    label_rate: dict[str, float]
    unseen: dict[str, dict[str, float]]  # field -> {"valid": share, "test": share}
    warnings: list[str] = field(default_factory=list)


def _unseen(train: pd.Series, other: pd.Series) -> float:
    present = other.dropna()
    if present.empty:
        return 0.0
    seen = set(train.dropna().astype(str))
    return float((~present.astype(str).isin(seen)).mean())


def shift_report(config: DataConfig, base_dir: Path = Path(".")) -> SplitShift:
    frames, schema, _ = frames_of(config, resolve_files(config, Path(base_dir)))
    train = frames["train"]
    rows = {role: len(frame) for role, frame in frames.items()}
    label_rate = {role: float(frame[LABEL].mean()) if len(frame) else float("nan") for role, frame in frames.items()}
    unseen = {name: {role: _unseen(train[name], frames[role][name]) for role in ("valid", "test")}
              for name in schema.categorical if name in train}
    warnings = []
    for name, rates in unseen.items():
        if abs(rates["valid"] - rates["test"]) > UNSEEN_GAP:
            warnings.append(f"field {name}: {rates['test']:.0%} of test rows have a value never seen in training, "
                            f"against {rates['valid']:.0%} of validation rows")
    v, t = label_rate.get("valid", 0.0), label_rate.get("test", 0.0)
    if v > 0 and t > 0 and max(v, t) / min(v, t) > LABEL_RATIO:
        warnings.append(f"label rate {v:.3f} in validation against {t:.3f} in test")
    return SplitShift(rows, label_rate, unseen, warnings)
