"""Names shared by the wake, the learn step, the phases and the report: an experiment is
one arm (a configuration at one fidelity) run with one seed, and its idempotency key says
which, so the same decision taken twice can never launch a run twice."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from rankwright.store.records import experiment_key  # noqa: F401  (the key format lives beside the store's index of it)

BASELINE = "baseline"
LOW = "@low"  # suffix of an arm run at the strategy's low fidelity


def split_key(campaign: str, key: str) -> tuple[str, int] | None:
    """(arm, seed) of a key of this campaign, or None."""
    prefix = f"{campaign}/"
    if not key.startswith(prefix) or "/seed" not in key:
        return None
    arm, _, seed = key[len(prefix):].rpartition("/seed")
    return (arm, int(seed)) if seed.isdigit() else None


def arm_name(name: str, low: bool) -> str:
    return f"{name}{LOW}" if low else name


def base_name(arm: str) -> str:
    """The hypothesis (or combination, trial) an arm measures, without its fidelity."""
    return arm[: -len(LOW)] if arm.endswith(LOW) else arm


def is_baseline(arm: str) -> bool:
    return base_name(arm) == BASELINE


def is_low(arm: str) -> bool:
    return arm.endswith(LOW)


def fidelity_share(changes: dict) -> float:
    """The share of the training rows a run with these knob changes uses (1 unless it says)."""
    share = changes.get("data.train_fraction", 1.0)
    return float(share) if isinstance(share, (int, float)) else 1.0


def work_dir(root: Path, key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", key)[:80]
    return (root / "experiments" / f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}").resolve()
