"""Diagnosis of a baseline run: what its curves say, in the knowledge base's signals.

The research agent reads the baseline run of a campaign, turns what it sees into
`Finding`s (a signal from `SIGNALS`, how clear the evidence is, and the reason in plain
words with the numbers), and `suggest_from_findings` picks the techniques of the knowledge
base that answer them, so every proposed hypothesis can say why it was proposed.

`diagnose` is a pure function of the parsed `metrics.jsonl` rows the built-in trainer
writes (events `start`, `epoch`, `resumed`, `result`), of `result.json` and of the
training budget the run's config set (its epoch cap, found by the `epochs` knob role, and
early stopping); `diagnose_run` reads them from a run folder and says what it can when
files are missing or cut short. The budget and the learning curve together say whether
the run was undertrained (its epochs ran out while validation still improved; a one-epoch
run has no curve, so its budget alone says it, even before it ran: `diagnose_budget`) or
kept a model past its best epoch, each with the effect predicted for the techniques that
answer it (evidence `predicted_effect`, `predicted_sd`), which the engine ranks them by.

The thresholds below were set on real runs of the built-in trainer on the synthetic log
(CPU, seed 0), quoted next to each constant:

- default DNN, 200k rows (160k train, 20k valid), dim 10: valid NE 0.9420, 0.9126 (best,
  epoch 2), 0.9237, 0.9417 while train loss fell 0.333 -> 0.261; early-stopped at 4;
  calibration 0.875 at the restored epoch.
- DNN [64, 64], 200k rows: NE best 0.8999 at epoch 3, 0.9628 at 4, 0.9810 at 5 (train loss
  0.294 -> 0.229); calibration 0.891 at the best epoch.
- DNN [64, 64], 20k rows, dim 64, no dropout, 10 epochs: NE best 0.9569 at epoch 6, 0.9936
  at 10, train loss 0.099 vs valid log loss 0.347 at the end; 54 embedding params per row.
- learning rate 1e-5, 2 epochs, 20k rows: train loss 0.3797 -> 0.3791 (-0.16%), NE 1.0070.
- learning rate 1e-4, 2 epochs, 200k rows: NE 1.0421 -> 0.9832 (-5.7% in the last epoch),
  calibration 0.743.
- learning rate 0.3 without clipping: train loss 13.0 in epoch 1 (the base-rate loss is
  0.35), then 0.56, 0.39, ...; AUC 0.50.
- no base-rate offset, learning rate 1e-4: calibration 4.61.
- DNN [64, 64], 200k rows, embedding_l2 1e-3: NE 0.9348 ... 0.8910 (epoch 5), 0.8947 at 6
  (+0.4%, under the overfitting threshold); train loss 6% under valid log loss at the end.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from rankwright.hypotheses.knowledge import SIGNALS, KnowledgeBase, Technique

# ------------------------------------------------------------------------------ thresholds
# A finding at or above this strength is clear enough to act on by itself; below it, it is
# a hint to weigh with others.
STRONG_FINDING = 0.5

# Overfitting, past the best: validation NE at the end above its best by more than this
# share, with train loss still falling. Epoch to epoch the validation set is the same rows,
# so NE moves only with the model; healthy runs that early-stop wobble by ~0.1-0.3% around
# their best. Calibration runs rose 1.3% (20k rows, default DNN), 3.2% (200k default DNN),
# 3.8% (dim 64, no dropout) and 9% (200k, small MLP); 3% is unambiguous.
OVERFIT_RISE = 0.005
OVERFIT_RISE_STRONG = 0.03

# Overfitting, train/validation gap: 1 - train loss / validation log loss at the last
# epoch. The train loss is the epoch's running mean in train mode (dropout on), which
# inflates it, so a gap is conservative. A 2k-row validation split's click rate is off the
# train rate by ~7% (one standard error at 10% CTR), moving its log loss by up to ~5%; 15%
# is past that noise. Calibration runs: 28% (200k rows, epoch 5 of an overfit), 71% (dim
# 64, no dropout, 10 epochs); healthy first epochs are below 0 (train loss above valid).
GAP = 0.15
GAP_STRONG = 0.5

# Underfitting, still improving: the last epoch lowered validation NE by more than this
# share below every earlier epoch. 0.2% is about the epoch-to-epoch wobble of a converged
# run; 2% in one epoch (the 1e-4 learning-rate run gained 5.7%) means much is left.
UNDERFIT_LAST_GAIN = 0.002
UNDERFIT_LAST_GAIN_STRONG = 0.02
# The run used every epoch and its monitored metric still improved in the last one: more
# epochs would have been taken. On its own a mild finding (the gain may be tiny).
UNDERFIT_AT_MAX_EPOCHS = 0.35
# Underfitting, barely learning: train loss fell by less than this share from the first
# to the last epoch and validation NE never got below NEAR_BASE_RATE_NE. The 1e-5
# learning-rate run fell 0.16%; healthy runs fall 7-10% in their second epoch alone.
STALLED_TRAIN_DROP = 0.03
NEAR_BASE_RATE_NE = 0.99  # NE 1.0 is predicting the click rate; within 1% of it is no model
STALLED_STRENGTH = 0.8

# Undertrained: the epoch budget, not convergence, ended the run. The run used every epoch
# it was allowed (it did not stop early) and its last epoch was its best on validation NE,
# or it had a single epoch: with one epoch there is no curve, the budget itself says it
# (epoch 1 always "improves", so early stopping could not have ended it). The "train
# longer" techniques triple the epochs and keep early stopping, so the longer run ends
# where validation stops improving and keeps its best epoch: little downside, a cost.
LONGER_EPOCHS_FACTOR = 3
# One epoch: strong, and the effect predicted without a curve. Evidence: the default DNN on
# 200k synthetic rows gained 3.1% NE in its second epoch (above); Rankwright's head-to-head
# (issue 23): on Frappe, one epoch at Adam 1e-3 was the weak baseline, and the tuners' best
# configurations trained 4-9 epochs for 58-62% lower test NE; the synthetic one-epoch
# baselines at 1e-3 peak at their first epoch (no gain, early stopping keeps epoch 1).
# Hence -1.5% expected with an sd of 2%: usually a gain, sometimes none, rarely a large one.
ONE_EPOCH_STRENGTH = 0.8
ONE_EPOCH_EFFECT = -0.015
ONE_EPOCH_EFFECT_SD = 0.02
# Several epochs, still improving at the last: the predicted gain extrapolates the curve.
# The per-epoch gains shrink geometrically, at the ratio of the last two (clipped to
# 0.2-0.6; 0.5 with a single gain), over the epochs the longer budget adds; its sd is the
# prediction itself (an extrapolation), at least PREDICTED_SD_FLOOR. Calibration: the 1e-4
# learning-rate run (NE 1.0421 -> 0.9832, -5.7% in its last epoch) predicts -5.5%; a run
# that gained 0.3% in its last epoch predicts about -0.3%.
UNDERTRAINED_MIN_STRENGTH = 0.35
CURVE_DECAY = (0.2, 0.6)
CURVE_DECAY_DEFAULT = 0.5
PREDICTED_SD_FLOOR = 0.002
PREDICTED_GAIN_CAP = 0.2
# Overtrained: the model the run kept is worse on validation NE than its best epoch by more
# than this share (the weights were kept by another metric, such as AUC, or not restored at
# all): stopping, or keeping the weights, at the best epoch gains that share. 0.2% is the
# epoch-to-epoch wobble of a converged run (above).
OVERTRAINED_GAP = 0.002
OVERTRAINED_GAP_STRONG = 0.02
# The epoch budget's knob, where a config does not say it by role: these names anywhere in
# it (a unique match), after `train.epochs` (the built-in trainer's); early stopping by the
# patience knob's names (null: off).
EPOCHS_NAMES = ("epochs", "num_epochs", "max_epochs")
PATIENCE_NAMES = ("early_stopping_patience", "early_stop_patience", "patience")

# Unstable, spike: an epoch's mean train loss above the lowest earlier epoch's by more than
# this share. Epoch means fall monotonically in every healthy and overfitting calibration
# run (overfitting drives train loss down faster), so a 10% rise is not noise.
SPIKE_RISE = 0.10
SPIKE_RISE_STRONG = 0.5
# Unstable, blow-up: an epoch's mean train loss above this multiple of the worst sensible
# starting loss, max(base-rate entropy, ln 2) (ln 2 is predicting p = 0.5, where a model
# without the base-rate offset starts). Above it, predictions were confidently wrong for
# much of the epoch. The learning-rate-0.3 run had 13.0 against 0.69 (19x); the run
# starting at p = 0.5 with a low rate had 0.96 (1.4x) and is not unstable.
BLOWUP_FACTOR = 2.0
BLOWUP_FACTOR_STRONG = 4.0
# Unstable, gradient norm (only when a target logs `grad_norm` per epoch): above this
# multiple of the median of earlier epochs.
GRAD_SPIKE_FACTOR = 5.0
GRAD_SPIKE_FACTOR_STRONG = 20.0

# Miscalibrated: |mean prediction / observed click rate - 1| on validation above
# max(MISCALIBRATION, CALIBRATION_SIGMAS x the observed rate's relative standard error),
# so a small validation split's own noise is not blamed on the model (2k rows at 10% CTR:
# 3 sigma = 19%; 20k rows: 6.3%); strength is the error beyond that threshold over 25%.
# Calibration runs: 0.875 and 0.891 at the best epochs of overfitting 200k runs, 0.874 at
# the AUC-best epoch of a healthy one (0.95 one epoch later: monitoring AUC picks epochs
# blind to calibration), 0.743 after a too-low learning rate, 4.61 without the offset.
MISCALIBRATION = 0.05
CALIBRATION_SIGMAS = 3.0
MISCALIBRATION_STRONG = 0.25

# Embeddings too large: embedding parameters per training row. A row carries one binary
# label, at most 0.33 nats of information at a 10% click rate; a table with several free
# parameters per label learns rare ids from a handful of clicks, i.e. memorizes. Public
# CTR benchmarks at tuned settings (Criteo, Avazu: dims 10-16 with a min-count filter)
# sit at about one parameter per row or below. Calibration: 3.5 per row (200k rows, dim
# 10) overfit after epoch 2-3; 8.5 (20k rows) after epoch 1-2; 54 (dim 64) overfit hard;
# the same 3.5 per row with embedding_l2 0.01 did not overfit in 8 epochs and reached the
# best NE (0.8866 vs 0.9126 unregularized). 1.45 per row (1M rows) still overfit after
# epoch 1 (NE 0.8899 -> 0.9276), the one-epoch overfitting of CTR embeddings (Zhang et al.,
# CIKM 2022) that the overfitting check reports; the threshold stays at 2 so that table
# size is blamed only when the table is clearly large. Strength rises on a log scale from
# the threshold to EMBEDDING_PARAMS_PER_ROW_STRONG, and with overfitting.
EMBEDDING_PARAMS_PER_ROW = 2.0
EMBEDDING_PARAMS_PER_ROW_STRONG = 16.0

# Embeddings too small: a field embedding this narrow or narrower while the model
# underfits. Published CTR models use 10-16; the synthetic log's pairwise factors have
# rank 8, which 4 dimensions cannot represent.
TINY_EMBEDDING_DIM = 4

# Slow training (only when the campaign's budget is known): one baseline run takes more
# than this share of the budget, so fewer than 20 experiments fit; a quarter (4 runs) is
# as slow as it gets.
SLOW_RUN_SHARE = 0.05
SLOW_RUN_SHARE_STRONG = 0.25

# The message the built-in trainer raises when the train loss turns non-finite (it stops
# before writing that epoch's row), as it lands in the executor's output.log.
_DIVERGED = re.compile(r"training loss is (nan|-?inf) in epoch (\d+)", re.IGNORECASE)
OUTPUT_LOG = "output.log"


@dataclass(frozen=True)
class Finding:
    """One thing the run shows: a signal of the knowledge base, how clear, and why."""

    signal: str
    strength: float
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown signal {self.signal!r}; known: {', '.join(SIGNALS)}")
        if not (isinstance(self.strength, (int, float)) and 0.0 <= self.strength <= 1.0):
            raise ValueError(f"strength must be within [0, 1], got {self.strength!r}")

    @property
    def strong(self) -> bool:
        return self.strength >= STRONG_FINDING


# ---------------------------------------------------------------------------- parsing
def _num(value: Any) -> float | None:
    """A float (NaN and infinities kept, they are evidence), or None when there is no number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class _Epoch:
    epoch: int
    train_loss: float | None
    ne: float | None
    logloss: float | None
    calibration: float | None
    rows: int | None
    improved: bool | None
    grad_norm: float | None


def _valid_of(row: Mapping[str, Any]) -> Mapping[str, Any]:
    valid = row.get("valid")
    return valid if isinstance(valid, Mapping) else {}


def _epoch_of(row: Mapping[str, Any], fallback: int) -> _Epoch:
    valid = _valid_of(row)
    improved = row.get("improved")
    return _Epoch(
        epoch=_int(row.get("epoch")) or fallback,
        train_loss=_num(row.get("train_loss")),
        ne=_num(valid.get("ne")),
        logloss=_num(valid.get("logloss")),
        calibration=_num(valid.get("calibration")),
        rows=_int(valid.get("rows")),
        improved=improved if isinstance(improved, bool) else None,
        grad_norm=_num(row.get("grad_norm")),
    )


@dataclass
class _Run:
    epochs: list[_Epoch]
    result: Mapping[str, Any] | None
    start: Mapping[str, Any]
    diverged: tuple[int | None, str] | None  # (epoch, value) of a non-finite loss that ended the run


def _parse(metrics: Sequence[Mapping[str, Any]], result: Mapping[str, Any] | None) -> _Run:
    by_epoch: dict[int, _Epoch] = {}
    start: Mapping[str, Any] = {}
    logged_result: Mapping[str, Any] | None = None
    diverged: tuple[int | None, str] | None = None
    for row in metrics:
        if not isinstance(row, Mapping):
            continue
        event = row.get("event")
        if event == "start" and not start:
            start = row
        elif event == "epoch":
            parsed = _epoch_of(row, len(by_epoch) + 1)
            by_epoch[parsed.epoch] = parsed  # a resumed run may repeat an epoch: the last one counts
        elif event == "result":
            logged_result = row
        elif event == "diverged":
            diverged = (_int(row.get("epoch")), str(row.get("value", "nan")))
    final = result if isinstance(result, Mapping) else logged_result
    return _Run([by_epoch[k] for k in sorted(by_epoch)], final, start, diverged)


def _base_rate_entropy(run: _Run) -> float | None:
    """The validation split's base-rate log loss, H = logloss / NE (NE is logloss over H)."""
    rows = [(e.logloss, e.ne) for e in run.epochs]
    if run.result is not None:
        valid = _valid_of(run.result)
        rows.append((_num(valid.get("logloss")), _num(valid.get("ne"))))
    for logloss, ne in rows:
        if _finite(logloss) and _finite(ne) and ne > 0 and logloss > 0:
            return logloss / ne
    return None


def _rate_from_entropy(entropy: float) -> float | None:
    """The click rate p <= 0.5 whose binary entropy (nats) is `entropy`, by bisection."""
    if not 0.0 < entropy < math.log(2):
        return None
    low, high = 1e-9, 0.5
    for _ in range(60):
        mid = (low + high) / 2
        h = -(mid * math.log(mid) + (1 - mid) * math.log(1 - mid))
        low, high = (mid, high) if h < entropy else (low, mid)
    return (low + high) / 2


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _scaled(value: float, strong: float) -> float:
    """Strength of a finding whose measure is `value`, full at `strong`."""
    return max(0.0, min(1.0, value / strong))


# ----------------------------------------------------------------------------- checks
def _check_nonfinite(run: _Run) -> list[Finding]:
    for e in run.epochs:
        for name, value in (("train loss", e.train_loss), ("validation log loss", e.logloss), ("validation NE", e.ne)):
            if value is not None and not math.isfinite(value):
                return [Finding(
                    "unstable", 1.0,
                    f"{name} became {value} at epoch {e.epoch}: training diverged.",
                    {"epoch": e.epoch, "metric": name, "value": str(value)},
                )]
    if run.diverged is not None:
        epoch, value = run.diverged
        where = f" in epoch {epoch}" if epoch is not None else ""
        return [Finding(
            "unstable", 1.0,
            f"the train loss became {value}{where} and the trainer stopped: training diverged.",
            {"epoch": epoch, "metric": "train loss", "value": value},
        )]
    return []


def _check_train_loss(run: _Run, entropy: float | None) -> list[Finding]:
    findings: list[Finding] = []
    ceiling = max(entropy or 0.0, math.log(2))
    losses = [(e.epoch, e.train_loss) for e in run.epochs if _finite(e.train_loss)]
    worst = max(losses, key=lambda item: item[1], default=None)
    if worst is not None and worst[1] > BLOWUP_FACTOR * ceiling:
        epoch, loss = worst
        ratio = loss / ceiling
        findings.append(Finding(
            "unstable", _scaled(ratio, BLOWUP_FACTOR_STRONG),
            f"the mean train loss of epoch {epoch} was {loss:.4g}, {ratio:.1f}x the {ceiling:.3f} that even a "
            f"constant prediction costs at worst: training blew up during that epoch.",
            {"epoch": epoch, "train_loss": loss, "starting_loss_bound": ceiling, "ratio": ratio},
        ))
    spike: tuple[float, int, float, float] | None = None
    for index in range(1, len(losses)):
        lowest = min(loss for _, loss in losses[:index])
        epoch, loss = losses[index]
        if lowest > 0:
            rise = loss / lowest - 1
            if rise > SPIKE_RISE and (spike is None or rise > spike[0]):
                spike = (rise, epoch, loss, lowest)
    if spike is not None:
        rise, epoch, loss, lowest = spike
        findings.append(Finding(
            "unstable", _scaled(rise, SPIKE_RISE_STRONG),
            f"the train loss jumped to {loss:.4f} at epoch {epoch}, {_pct(rise)} above its earlier low of "
            f"{lowest:.4f}, where it should only fall: training is unstable.",
            {"epoch": epoch, "train_loss": loss, "earlier_low": lowest, "rise": rise},
        ))
    norms = [(e.epoch, e.grad_norm) for e in run.epochs if _finite(e.grad_norm)]
    grad_spike: tuple[float, int, float, float] | None = None
    for index in range(1, len(norms)):
        median = statistics.median(n for _, n in norms[:index])
        epoch, norm = norms[index]
        if median > 0 and norm / median > GRAD_SPIKE_FACTOR and (grad_spike is None or norm / median > grad_spike[0]):
            grad_spike = (norm / median, epoch, norm, median)
    if grad_spike is not None:
        ratio, epoch, norm, median = grad_spike
        findings.append(Finding(
            "unstable", _scaled(ratio, GRAD_SPIKE_FACTOR_STRONG),
            f"the gradient norm reached {norm:.4g} at epoch {epoch}, {ratio:.1f}x the median {median:.4g} of "
            f"earlier epochs: training is unstable.",
            {"epoch": epoch, "grad_norm": norm, "earlier_median": median, "ratio": ratio},
        ))
    return findings


def _ne_series(run: _Run) -> tuple[str, list[tuple[int, float, float | None]]]:
    """(metric name, [(epoch, value, train loss)]) of validation NE, or log loss without NE."""
    ne = [(e.epoch, e.ne, e.train_loss) for e in run.epochs if _finite(e.ne)]
    if ne:
        return "validation NE", ne
    return "validation log loss", [(e.epoch, e.logloss, e.train_loss) for e in run.epochs if _finite(e.logloss)]


def _check_overfitting(run: _Run) -> list[Finding]:
    findings: list[Finding] = []
    name, series = _ne_series(run)
    if len(series) >= 2:
        best_epoch, best, best_train = min(series, key=lambda item: item[1])
        last_epoch, last, last_train = series[-1]
        rise = last / best - 1 if best > 0 else 0.0
        train_fell = _finite(best_train) and _finite(last_train) and last_train < best_train
        if last_epoch != best_epoch and rise > OVERFIT_RISE and train_fell:
            findings.append(Finding(
                "overfitting", _scaled(rise, OVERFIT_RISE_STRONG),
                f"{name} was best at epoch {best_epoch} of {last_epoch} ({best:.4f}) and rose to {last:.4f} "
                f"(+{_pct(rise)}) by the end while train loss kept falling ({best_train:.4f} -> "
                f"{last_train:.4f}): the model overfits.",
                {"metric": name, "best_epoch": best_epoch, "epochs": last_epoch, "best": best, "last": last,
                 "rise": rise, "train_loss_at_best": best_train, "train_loss_last": last_train},
            ))
    last_pair = next(((e.epoch, e.train_loss, e.logloss) for e in reversed(run.epochs)
                      if _finite(e.train_loss) and _finite(e.logloss) and e.logloss > 0), None)
    if last_pair is not None:
        epoch, train_loss, valid_loss = last_pair
        gap = 1 - train_loss / valid_loss
        if gap > GAP:
            findings.append(Finding(
                "overfitting", _scaled(gap, GAP_STRONG),
                f"at epoch {epoch} the train loss ({train_loss:.4f}) was {_pct(gap)} below the validation log "
                f"loss ({valid_loss:.4f}): the model fits its training rows far better than new ones.",
                {"epoch": epoch, "train_loss": train_loss, "valid_logloss": valid_loss, "gap": gap},
            ))
    return findings


def _check_underfitting(run: _Run) -> list[Finding]:
    findings: list[Finding] = []
    finished = run.result is not None
    stopped_early = bool(run.result.get("stopped_early")) if finished else False
    name, series = _ne_series(run)
    if len(series) >= 2:
        last_epoch, last, _ = series[-1]
        earlier = min(value for _, value, _ in series[:-1])
        gain = 1 - last / earlier if earlier > 0 else 0.0
        if gain > UNDERFIT_LAST_GAIN:
            strength = _scaled(gain, UNDERFIT_LAST_GAIN_STRONG)
            ending = "when the run ended" if finished else "when the log ends (the run did not finish)"
            if not finished:
                strength /= 2  # it may simply not be done yet
            findings.append(Finding(
                "underfitting", strength,
                f"{name} was still improving {ending}: the last epoch ({last_epoch}) lowered it by {_pct(gain)} "
                f"({earlier:.4f} -> {last:.4f}): the model underfits; more epochs or capacity should help.",
                {"metric": name, "epoch": last_epoch, "previous_best": earlier, "last": last, "gain": gain,
                 "finished": finished},
            ))
    if run.epochs and finished and not stopped_early and run.epochs[-1].improved:
        epochs = run.epochs[-1].epoch
        findings.append(Finding(
            "underfitting", UNDERFIT_AT_MAX_EPOCHS,
            f"the run used all {epochs} epochs and its monitored metric still improved in the last one, so "
            f"early stopping never triggered: it stopped before it converged.",
            {"epochs": epochs, "stopped_early": False, "improved_at_last_epoch": True},
        ))
    losses = [(e.epoch, e.train_loss) for e in run.epochs if _finite(e.train_loss)]
    if len(losses) >= 2 and series and losses[0][1] > 0:
        (first_epoch, first), (last_epoch, last) = losses[0], losses[-1]
        drop = 1 - last / first
        best = min(value for _, value, _ in series)
        if drop < STALLED_TRAIN_DROP and name == "validation NE" and best >= NEAR_BASE_RATE_NE:
            findings.append(Finding(
                "underfitting", STALLED_STRENGTH,
                f"the train loss fell only {_pct(max(drop, 0.0))} from epoch {first_epoch} to {last_epoch} "
                f"({first:.4f} -> {last:.4f}) and validation NE never got below {best:.4f}, no better than "
                f"predicting the click rate: the model is barely learning (learning rate too low or too few epochs).",
                {"train_loss_first": first, "train_loss_last": last, "drop": drop, "best_ne": best},
            ))
    return findings


@dataclass(frozen=True)
class TrainingBudget:
    """What the run's config allowed: its epoch cap, and whether early stopping could end it
    sooner (None: unknown)."""

    epochs: int | None = None
    early_stopping: bool | None = None


def _geometric_rest(values: Sequence[float], extra_epochs: int) -> float:
    """The relative gain still ahead of a curve that improved at its last epoch: its last
    per-epoch gain, shrinking geometrically over `extra_epochs` more epochs."""
    gains = [earlier - later for earlier, later in zip(values, values[1:])]
    last = gains[-1]
    ratio = CURVE_DECAY_DEFAULT
    if len(gains) >= 2 and gains[-2] > 0:
        ratio = min(max(last / gains[-2], CURVE_DECAY[0]), CURVE_DECAY[1])
    rest = last * ratio * (1 - ratio**extra_epochs) / (1 - ratio)
    return min(rest / values[-1], PREDICTED_GAIN_CAP) if values[-1] > 0 else 0.0


def _one_epoch(budget: TrainingBudget, who: str) -> Finding:
    stop_words = {True: ", with early stopping on", False: " and no early stopping", None: ""}
    return Finding(
        "undertrained", ONE_EPOCH_STRENGTH,
        f"{who} a single epoch (its budget: epochs = 1{stop_words[budget.early_stopping]}), so no learning "
        f"curve can show it converged, and one pass rarely does: training longer (with early stopping keeping "
        f"the best epoch) is expected to lower NE by about {_pct(-ONE_EPOCH_EFFECT)} (sd {_pct(ONE_EPOCH_EFFECT_SD)}).",
        {"epochs": 1, "epoch_budget": budget.epochs, "early_stopping": budget.early_stopping,
         "predicted_effect": ONE_EPOCH_EFFECT, "predicted_sd": ONE_EPOCH_EFFECT_SD,
         "predicted_for": f"{LONGER_EPOCHS_FACTOR}x the epochs"},
    )


def diagnose_budget(budget: TrainingBudget) -> list[Finding]:
    """What the training budget alone says, before the baseline has run: a budget of one
    epoch is undertrained (a one-epoch run has no curve that could say otherwise), so the
    first round, planned before any run, can already train longer."""
    return [_one_epoch(budget, "the baseline's config trains")] if budget.epochs == 1 else []


def _check_training_budget(run: _Run, budget: TrainingBudget) -> list[Finding]:
    """Undertrained (the epoch budget ended a run still improving, a one-epoch run
    included) and overtrained (the kept model is past the best epoch), each with the
    effect predicted for the techniques that answer it (`predicted_effect`, `predicted_sd`
    in its evidence: relative NE, negative = better)."""
    findings: list[Finding] = []
    finished = run.result is not None
    stopped = run.result.get("stopped_early") if finished else None
    name, series = _ne_series(run)
    epochs_run = len(series) or ((_int(run.result.get("epochs_run")) or 0) if finished else 0)
    cap = budget.epochs
    longer = f"{LONGER_EPOCHS_FACTOR}x the epochs"
    if finished and stopped is not True and (cap == 1 or (cap is None and epochs_run == 1)):
        findings.append(_one_epoch(budget, "the run trained"))
    elif len(series) >= 2 and stopped is not True and (cap is None or epochs_run >= cap):
        values = [value for _, value, _ in series]
        last_epoch, last = series[-1][0], values[-1]
        earlier = min(values[:-1])
        gain = 1 - last / earlier if earlier > 0 else 0.0
        if gain > UNDERFIT_LAST_GAIN:
            strength = max(UNDERTRAINED_MIN_STRENGTH, _scaled(gain, UNDERFIT_LAST_GAIN_STRONG))
            if not finished:
                strength /= 2  # it may simply not be done yet
            rest = _geometric_rest(values, (LONGER_EPOCHS_FACTOR - 1) * epochs_run)
            budget_words = f"all {cap} epochs of its budget" if cap is not None else f"all {epochs_run} epochs"
            findings.append(Finding(
                "undertrained", strength,
                f"the run used {budget_words} without stopping early and {name} was still improving at the "
                f"last one ({earlier:.4f} -> {last:.4f}, -{_pct(gain)} at epoch {last_epoch}): the epoch budget, "
                f"not convergence, ended it; the curve predicts about -{_pct(rest)} more from {longer}.",
                {"metric": name, "epochs": epochs_run, "epoch_budget": cap, "last_gain": gain,
                 "predicted_effect": -rest, "predicted_sd": max(rest, PREDICTED_SD_FLOOR), "predicted_for": longer,
                 "finished": finished},
            ))
    if finished and name == "validation NE" and series:
        reported = _num(_valid_of(run.result).get("ne"))
        best_epoch, best, _ = min(series, key=lambda item: item[1])
        if _finite(reported) and best > 0 and reported > best * (1 + OVERTRAINED_GAP):
            gap = reported / best - 1
            findings.append(Finding(
                "overtrained", _scaled(gap, OVERTRAINED_GAP_STRONG),
                f"the run reported validation NE {reported:.4f}, but epoch {best_epoch} of {epochs_run} reached "
                f"{best:.4f} ({_pct(gap)} lower): it kept a model past its best epoch (its weights kept by another "
                f"metric, or not restored); stopping or keeping the weights at the best epoch gains that.",
                {"reported": reported, "best": best, "best_epoch": best_epoch, "epochs": epochs_run,
                 "predicted_effect": best / reported - 1, "predicted_sd": max((1 - best / reported) / 2, 0.001),
                 "predicted_for": "the best epoch's model"},
            ))
    return findings


def _check_calibration(run: _Run, entropy: float | None) -> list[Finding]:
    valid: Mapping[str, Any] = _valid_of(run.result) if run.result is not None else {}
    where = "the final model"
    if not _finite(_num(valid.get("calibration"))) and run.epochs:
        last = run.epochs[-1]
        valid = {"calibration": last.calibration, "rows": last.rows}
        where = f"epoch {last.epoch}"
    ratio = _num(valid.get("calibration"))
    if not _finite(ratio) or ratio <= 0:
        return []
    rows = _int(valid.get("rows"))
    rate = _rate_from_entropy(entropy) if entropy is not None else None
    noise = math.sqrt((1 - rate) / (rows * rate)) if rows and rate else None
    threshold = max(MISCALIBRATION, CALIBRATION_SIGMAS * noise) if noise is not None else MISCALIBRATION
    error = abs(ratio - 1)
    if error <= threshold:
        return []
    noise_words = (f", more than the {_pct(threshold)} that sampling noise of {rows:,} validation rows could explain"
                   if noise is not None and threshold > MISCALIBRATION else "")
    return [Finding(
        # what counts is the error beyond what noise explains
        "miscalibrated", max(0.05, _scaled(error - threshold, MISCALIBRATION_STRONG)),
        f"on validation, {where}'s mean prediction is {ratio:.3f}x the observed click rate (off by "
        f"{_pct(error)}{noise_words}): its predictions are miscalibrated.",
        {"calibration": ratio, "error": error, "threshold": threshold, "valid_rows": rows, "valid_click_rate": rate},
    )]


def _check_embeddings_large(
    train_rows: int | None, embedding_params: int | None, overfit: float, underfit: float
) -> list[Finding]:
    if not train_rows or not embedding_params or train_rows <= 0:
        return []
    per_row = embedding_params / train_rows
    if per_row <= EMBEDDING_PARAMS_PER_ROW:
        return []
    strength = max(0.1, min(1.0, math.log(per_row / EMBEDDING_PARAMS_PER_ROW)
                            / math.log(EMBEDDING_PARAMS_PER_ROW_STRONG / EMBEDDING_PARAMS_PER_ROW)))
    if overfit > 0:
        strength = 1 - (1 - strength) * (1 - overfit / 2)  # the overfitting is what a large table would cause
        tail = ", and the model overfits"
    elif underfit > 0:
        strength /= 2  # the table is large but not hurting yet
        tail = ", though the model does not overfit yet"
    else:
        tail = ""
    return [Finding(
        "embeddings_too_large", strength,
        f"the embedding tables hold {embedding_params:,} parameters for {train_rows:,} training rows "
        f"({per_row:.1f} per row, above {EMBEDDING_PARAMS_PER_ROW:g}){tail}: rare ids get their own vectors "
        f"from a handful of clicks, which the model can memorize.",
        {"embedding_parameters": embedding_params, "train_rows": train_rows, "per_row": per_row},
    )]


def _check_embeddings_small(embedding_dim: int | None, underfit: float) -> list[Finding]:
    if embedding_dim is None or embedding_dim > TINY_EMBEDDING_DIM or underfit <= 0:
        return []
    return [Finding(
        "embeddings_too_small", underfit * 0.8,
        f"field embeddings are only {embedding_dim} wide (CTR models usually use 10-16) and the model "
        f"underfits: the embeddings may be too narrow to hold the feature interactions.",
        {"embedding_dim": embedding_dim, "underfitting_strength": underfit},
    )]


def _run_seconds(run: _Run, metrics: Sequence[Mapping[str, Any]]) -> float | None:
    if run.result is not None:
        seconds = _num(run.result.get("fit_seconds"))
        if _finite(seconds) and seconds > 0:
            return seconds
    times = [_num(r.get("time")) for r in metrics if isinstance(r, Mapping)]
    times = [t for t in times if _finite(t)]
    return max(times) - min(times) if len(times) >= 2 and max(times) > min(times) else None


def _check_slow(seconds: float | None, budget_seconds: float | None) -> list[Finding]:
    if seconds is None or not budget_seconds or budget_seconds <= 0:
        return []
    share = seconds / budget_seconds
    if share <= SLOW_RUN_SHARE:
        return []
    return [Finding(
        "slow_training", _scaled(share, SLOW_RUN_SHARE_STRONG),
        f"one baseline run took {seconds / 60:.1f} min, {_pct(share)} of the {budget_seconds / 3600:.3g} h budget, "
        f"so only about {int(1 / share)} runs of this size fit.",
        {"run_seconds": seconds, "budget_seconds": budget_seconds, "share": share},
    )]


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per signal: the strongest reason first, strengths combined as independent evidence."""
    by_signal: dict[str, list[Finding]] = {}
    for finding in findings:
        by_signal.setdefault(finding.signal, []).append(finding)
    merged = []
    for signal, group in by_signal.items():
        group.sort(key=lambda f: -f.strength)
        if len(group) == 1:
            merged.append(group[0])
            continue
        missing = 1.0
        for finding in group:
            missing *= 1 - finding.strength
        first, second = group[0], group[1]
        second_reason = second.reason[0].upper() + second.reason[1:]
        evidence = dict(first.evidence)
        evidence["also"] = [f.evidence for f in group[1:]]
        merged.append(Finding(signal, min(1.0, 1 - missing), f"{first.reason} {second_reason}", evidence))
    merged.sort(key=lambda f: -f.strength)
    return merged


def _strength_of(findings: Iterable[Finding], signal: str) -> float:
    return max((f.strength for f in findings if f.signal == signal), default=0.0)


# --------------------------------------------------------------------------------- API
def diagnose(
    metrics: Sequence[Mapping[str, Any]],
    result: Mapping[str, Any] | None,
    *,
    train_rows: int | None = None,
    embedding_params: int | None = None,
    embedding_dim: int | None = None,
    budget_seconds: float | None = None,
    training: TrainingBudget | None = None,
) -> list[Finding]:
    """What a run's metric rows show, strongest finding first; one finding per signal.

    `metrics` are the parsed `metrics.jsonl` rows and `result` the parsed `result.json`
    (None when absent: the log's `result` row is used if there is one). `train_rows` and
    `embedding_params` default to the `start` row's (and the result's) counts;
    `embedding_dim` (the model's field-embedding width) enables the too-small check and
    `budget_seconds` (the campaign's budget) the slow-training one. `training` is what the
    run's config allowed (its epoch cap, early stopping): with it a one-epoch run, which has
    no curve, is read as undertrained from its budget alone; without it the result's
    `stopped_early` and the epochs it ran stand in. A `diverged` row
    (`{"event": "diverged", "epoch": N, "value": "nan"}`) records a non-finite loss that
    ended the run before its epoch row was written.
    """
    run = _parse(metrics, result)
    entropy = _base_rate_entropy(run)
    findings: list[Finding] = []
    findings += _check_nonfinite(run)
    findings += _check_train_loss(run, entropy)
    findings += _check_overfitting(run)
    findings += _check_underfitting(run)
    findings += _check_training_budget(run, training or TrainingBudget())
    findings += _check_calibration(run, entropy)
    findings = _merge(findings)
    rows = train_rows if train_rows is not None else _int(run.start.get("train_rows"))
    params = embedding_params
    for source in (run.start, run.result or {}):
        if params is None:
            params = _int(source.get("embedding_parameters"))
    findings += _check_embeddings_large(
        rows, params, _strength_of(findings, "overfitting"), _strength_of(findings, "underfitting")
    )
    findings += _check_embeddings_small(embedding_dim, _strength_of(findings, "underfitting"))
    findings += _check_slow(_run_seconds(run, metrics), budget_seconds)
    findings.sort(key=lambda f: -f.strength)
    return findings


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _embedding_dim(run_dir: Path) -> int | None:
    try:
        document = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    model = document.get("model") if isinstance(document, dict) else None
    dim = model.get("embedding_dim") if isinstance(model, dict) else None
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None


def _divergence(run_dir: Path) -> dict[str, Any] | None:
    """A `diverged` row from the trainer's error in the executor's output.log, if it is there."""
    try:
        with open(run_dir / OUTPUT_LOG, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 65536))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return None
    match = None
    for match in _DIVERGED.finditer(tail):
        pass
    if match is None:
        return None
    return {"event": "diverged", "epoch": int(match.group(2)), "value": match.group(1).lower()}


def _configs(run_dir: Path, config_file: str | None) -> list[dict[str, Any]]:
    """The run's config documents, most complete first: the built-in trainer's resolved
    `config.yaml` (every default filled in), then the config the target was given."""
    documents = []
    for name in dict.fromkeys(["config.yaml", *([config_file] if config_file else []), "experiment.yaml",
                               "experiment.json"]):
        try:
            text = (run_dir / name).read_text()
            document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(document, dict):
            documents.append(document)
    return documents


def _at(document: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _named(document: Any, names: tuple[str, ...]) -> list[Any]:
    """Values of the keys called one of `names`, anywhere in the document."""
    found: list[Any] = []
    if isinstance(document, Mapping):
        for key, value in document.items():
            if key in names and not isinstance(value, Mapping):
                found.append(value)
            else:
                found += _named(value, names)
    return found


def budget_of_config(document: Mapping[str, Any], *, epochs_path: str | None = None,
                     epochs_default: Any = None) -> TrainingBudget:
    """The epoch cap and early stopping a run config sets: the epochs knob at `epochs_path`
    (the target's knob of the `epochs` role), else `train.epochs`, else the one key named
    like an epoch budget, else `epochs_default` (the knob's default, where the config is
    silent); early stopping from the patience knob (null: off). Unknown parts stay None."""
    found, epochs = False, None
    for path in (*([epochs_path] if epochs_path else []), "train.epochs"):
        found, epochs = _at(document, path)
        if found:
            break
    if not found:
        named = _named(document, EPOCHS_NAMES)
        found, epochs = (True, named[0]) if len(named) == 1 else (epochs_default is not None, epochs_default)
    if not found or isinstance(epochs, bool) or _int(epochs) is None:
        return TrainingBudget()
    has_patience, patience = _at(document, "train.early_stopping_patience")
    if not has_patience:
        named = _named(document, PATIENCE_NAMES)
        has_patience, patience = (True, named[0]) if len(named) == 1 else (False, None)
    early = (patience is not None and patience is not False) if has_patience else None
    return TrainingBudget(epochs=_int(epochs), early_stopping=early)


def training_budget(run_dir: Path | str, *, config_file: str | None = None,
                    epochs_path: str | None = None) -> TrainingBudget:
    """`budget_of_config` of the run's config: the built-in trainer's resolved `config.yaml`,
    else `config_file` (the target's) or `experiment.yaml`/`.json`; the first that says."""
    for document in _configs(Path(run_dir), config_file):
        budget = budget_of_config(document, epochs_path=epochs_path)
        if budget.epochs is not None:
            return budget
    return TrainingBudget()


def diagnose_run(run_dir: Path | str, *, budget_seconds: float | None = None, config_file: str | None = None,
                 epochs_path: str | None = None) -> list[Finding]:
    """`diagnose` on a run folder: `metrics.jsonl`, `result.json`, the embedding width from
    `config.yaml`, the training budget from the run's config (`training_budget`; pass the
    target's `config_file` and the path of its `epochs`-role knob where they are not the
    built-in ones) and a divergence reported in `output.log`, each used when present."""
    run_dir = Path(run_dir)
    metrics = _read_jsonl(run_dir / "metrics.jsonl")
    diverged = _divergence(run_dir)
    if diverged is not None:
        metrics.append(diverged)
    result = _read_json(run_dir / "result.json")
    return diagnose(metrics, result, embedding_dim=_embedding_dim(run_dir), budget_seconds=budget_seconds,
                    training=training_budget(run_dir, config_file=config_file, epochs_path=epochs_path))


def suggest_from_findings(
    findings: Iterable[Finding],
    kb: KnowledgeBase,
    model_family: str,
    knob_paths: Iterable[Any],
) -> list[tuple[Technique, Finding]]:
    """Techniques that answer the findings, each with the finding it answers.

    A technique qualifies when one of its `signals` is a finding's signal, it names
    `model_family` (or `any`) and the target exposes every knob it moves (`knob_paths`:
    dotted paths, or knob specs with a `.path`). Strongest finding first; within one
    finding, the best prior effect first (then the cheaper). A technique answering several
    findings appears once, with the strongest of them.
    """
    paths = {k if isinstance(k, str) else getattr(k, "path") for k in knob_paths}
    ordered = sorted(findings, key=lambda f: -f.strength)
    chosen: list[tuple[Technique, Finding]] = []
    seen: set[str] = set()
    for finding in ordered:
        candidates = [
            t for t in kb.with_signal(finding.signal)
            if t.id not in seen and t.names_model(model_family) and t.applicable(paths)
        ]
        candidates.sort(key=lambda t: (t.prior.effect, t.cost_factor))
        for technique in candidates:
            seen.add(technique.id)
            chosen.append((technique, finding))
    return chosen
