"""The historical insights database: what every finished comparison taught, and the prior it
gives a technique in a new campaign.

An insight is one technique against its baseline in one context (model family, data size,
fields and their cardinality, baseline NE, fidelity), with the effect on the objective as a
relative change of NE (negative = better), its standard error and its cost. For a new
context, a technique's prior is the knowledge base's prior updated by the insights of that
technique, each weighted by how similar its context is (normal-normal shrinkage: thin or
distant evidence leaves the knowledge-base prior nearly as it was).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

# How far apart two contexts may be before their evidence stops counting: one unit of each
# scale below is "clearly a different setting" (distance 1 -> weight exp(-1/2) = 0.61).
_SCALES = {
    "log10_rows": 1.0,  # a factor 10 in training rows
    "fields": 20.0,  # 20 more or fewer feature fields
    "log10_cardinality": 1.5,  # a factor ~30 in mean vocabulary size
    "baseline_ne": 0.15,  # a baseline NE 0.15 apart (e.g. 0.80 vs 0.95)
    "log10_fidelity": 1.0,  # a factor 10 in the share of data and epochs
}
OTHER_FAMILY_WEIGHT = 0.3  # a DCNv2 insight says something, not much, about a DNN
SAME_CONTEXT = 0.9  # similarity above which a context counts as "the same" (no re-proposal)
# A technique's true effect differs between datasets even when the contexts look alike and
# the effects are measured exactly. On the same data it differs only by how it was measured:
SAME_DATA_SPREAD = 0.0005  # relative NE
# No seed spread is taken as smaller than this share of the baseline's NE: a few seeds that
# happen to agree never read as certainty.
SEED_SD_FLOOR = 0.0005
# On other data the spread is a share of the knowledge base's prior sd for the technique
# (which is its spread over the published datasets). This default holds until the insights
# themselves contain enough pairs to estimate it (`estimate_spread`).
DEFAULT_SPREAD_FRACTION = 0.5
SPREAD_PSEUDO_PAIRS = 10  # how many pairs the default counts for when an estimate is pooled with it
SPREAD_PAIR_SIMILARITY = 0.5  # contexts at least this similar (on other data) form a pair


# The smallest relative NE gain worth having; a technique is retired in a context only when
# its measured gain is confidently below it (the campaign strategy's default margin).
NO_GAIN_MARGIN = 0.002


def _t90(seeds: int) -> float:
    """One-sided 90% t quantile for a comparison over `seeds` paired seeds."""
    from rankwright.analysis import t_quantile

    return t_quantile(max(seeds - 1, 1), 0.9)


@dataclass(frozen=True)
class Context:
    """Where a comparison was made; what similarity is measured on."""

    model_family: str
    rows: float
    fields: int
    mean_cardinality: float | None  # None: unknown (e.g. an external target)
    baseline_ne: float | None  # None: the baseline has not run yet
    fidelity: float = 1.0
    task: str = ""  # free text, e.g. the data source or the synthetic structure; shown, not compared
    data_id: str = ""  # which data (see `data_identity`); "" when unknown

    def features(self) -> dict[str, float]:
        """What is known; an unknown feature is left out of the similarity, not guessed."""
        out = {"log10_rows": math.log10(max(self.rows, 1.0)), "log10_fidelity": math.log10(max(self.fidelity, 1e-6))}
        if self.fields:
            out["fields"] = float(self.fields)
        if self.mean_cardinality is not None:
            out["log10_cardinality"] = math.log10(max(self.mean_cardinality, 1.0))
        if self.baseline_ne is not None:
            out["baseline_ne"] = self.baseline_ne
        return out

    def differences(self, other: "Context") -> list[str]:
        """What changed between two contexts, in words (for "proposed again because ...")."""
        out = []
        if self.model_family != other.model_family:
            out.append(f"model {other.model_family} -> {self.model_family}")
        if self.data_id and other.data_id and self.data_id != other.data_id:
            out.append(f"other data ({other.task or other.data_id} -> {self.task or self.data_id})")
        a, b = other.features(), self.features()
        for key, scale in _SCALES.items():
            if key in a and key in b and abs(a[key] - b[key]) > 0.25 * scale:
                name = {"log10_cardinality": "mean_cardinality"}.get(key, key.replace("log10_", ""))
                out.append(f"{name} {getattr(other, name):.4g} -> {getattr(self, name):.4g}")
        return out


def data_identity(data: Mapping[str, Any]) -> str:
    """The built-in target's data identity of a `data` section (see `Target.data_identity`)."""
    from rankwright.targets._base import builtin_data_identity

    return builtin_data_identity(data)


def similarity(a: Context, b: Context) -> float:
    """1 for the same context, falling toward 0 as contexts differ (Gaussian kernel)."""
    fa, fb = a.features(), b.features()
    d2 = sum(((fa[k] - fb[k]) / s) ** 2 for k, s in _SCALES.items() if k in fa and k in fb)
    w = math.exp(-0.5 * d2)
    return w if a.model_family == b.model_family else w * OTHER_FAMILY_WEIGHT


@dataclass(frozen=True)
class Insight:
    technique: str
    changes: dict[str, Any]
    context: Context
    effect: float  # mean relative NE change vs the baseline, negative = better
    effect_se: float  # its standard error (seeds of both arms)
    seeds: int
    noise: float  # the baseline's noise threshold at the time (relative NE)
    cost_factor: float  # run cost relative to the baseline's
    campaign: str
    uid: str = ""
    # "measured", or why no effect could be measured: "unstable" (it diverged, also after the
    # runbook's remedy) or "invalid" (it could not run); such an insight carries no effect
    # (0, se 0) and only keeps the technique from being proposed again in the same context
    outcome: str = "measured"
    author: str = ""  # who learned it: the engineer who approved its campaign ("" when unknown)

    @property
    def measured(self) -> bool:
        return self.outcome == "measured"

    @property
    def helped(self) -> bool:
        """The one-sided 90% bound on the effect is below zero (t on the seeds' df)."""
        return self.effect + _t90(self.seeds) * self.effect_se < 0

    @property
    def conclusive_failure(self) -> bool:
        """Confidently no gain worth having: even the optimistic end of the one-sided 90%
        interval improves by less than `NO_GAIN_MARGIN`. "Not significant" is not this: an
        inconclusive comparison leaves the technique in play."""
        return self.effect - _t90(self.seeds) * self.effect_se > -NO_GAIN_MARGIN

    def with_uid(self) -> "Insight":
        body = json.dumps([self.technique, self.changes, asdict(self.context), self.campaign], sort_keys=True,
                          default=str)
        return Insight(**{**self.__dict__, "uid": hashlib.sha256(body.encode()).hexdigest()[:24]})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["context"] = asdict(self.context)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Insight":
        fields_ = dict(data)
        fields_["context"] = Context(**fields_["context"])
        return cls(**fields_)


@dataclass(frozen=True)
class Spread:
    """How far a technique's effect moves between similar contexts on different data, as a
    fraction of its knowledge-base prior sd, and where that figure comes from."""

    fraction: float = DEFAULT_SPREAD_FRACTION
    pairs: int = 0  # insight pairs it was estimated from (0: the default)
    estimate: float | None = None  # the pairs' own estimate, before pooling with the default

    def describe(self) -> str:
        if not self.pairs:
            return f"between-data spread {self.fraction:.2f} x the knowledge prior sd (default; no pairs yet)"
        return (f"between-data spread {self.fraction:.2f} x the knowledge prior sd (estimated {self.estimate:.2f} "
                f"from {self.pairs} pair(s) of insights on other data, pooled with the default "
                f"{DEFAULT_SPREAD_FRACTION:.2f})")


def estimate_spread(insights: Iterable[Insight], kb_sd: Mapping[str, float]) -> Spread:
    """The between-data spread, by the method of moments on pairs of insights of one
    technique in similar contexts on different data: E[(e1 - e2)^2] = se1^2 + se2^2 + 2 tau^2,
    with tau in units of the technique's prior sd so that techniques of different reach pool.
    The estimate is pooled with the default as if the default were `SPREAD_PSEUDO_PAIRS`
    pairs, so a handful of pairs moves it only part of the way."""
    by_technique: dict[str, list[Insight]] = {}
    for insight in insights:
        if insight.technique in kb_sd and insight.context.data_id:
            by_technique.setdefault(insight.technique, []).append(insight)
    terms: list[tuple[float, float]] = []  # (unbiased estimate of the fraction squared, weight)
    for technique, group in by_technique.items():
        sd2 = kb_sd[technique] ** 2
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if a.context.data_id == b.context.data_id or similarity(a.context, b.context) < SPREAD_PAIR_SIMILARITY:
                    continue
                noise = (a.effect_se**2 + b.effect_se**2) / (2 * sd2)
                # a term's variance grows as (fraction^2 + noise)^2: noisy pairs count less
                terms.append((((a.effect - b.effect) ** 2) / (2 * sd2) - noise, 1.0 / (1.0 + noise) ** 2))
    if not terms:
        return Spread()
    estimate = math.sqrt(max(sum(t * w for t, w in terms) / sum(w for _, w in terms), 0.0))
    n, n0 = len(terms), SPREAD_PSEUDO_PAIRS
    pooled = math.sqrt((n * estimate**2 + n0 * DEFAULT_SPREAD_FRACTION**2) / (n + n0))
    return Spread(pooled, n, estimate)


@dataclass(frozen=True)
class ContextPrior:
    """A technique's expected effect in one context and where the number comes from."""

    mean: float
    sd: float
    evidence: list[tuple[Insight, float]] = field(default_factory=list)  # (insight, weight)
    failed_here: Insight | None = None  # a conclusive failure in (nearly) the same context
    failed_elsewhere: list[tuple[Insight, list[str]]] = field(default_factory=list)

    @property
    def evidence_weight(self) -> float:
        return sum(w for _, w in self.evidence)


def prior_for(technique: str, kb_mean: float, kb_sd: float, context: Context, insights: Iterable[Insight],
              spread: Spread | None = None) -> ContextPrior:
    """The knowledge-base prior N(kb_mean, kb_sd^2) updated by similar insights.

    Each insight is a noisy measurement of the technique's effect in this context: its
    variance is its standard error squared plus how far effects move between contexts (on
    the same data: `SAME_DATA_SPREAD`; on other data: `spread` x kb_sd), divided by its
    similarity weight (a distant context counts as a much noisier measurement).
    """
    between_data = (spread or Spread()).fraction * kb_sd
    precision = 1.0 / kb_sd**2
    weighted = kb_mean * precision
    evidence, failed_here, failed_elsewhere = [], None, []
    for insight in insights:
        if insight.technique != technique:
            continue
        w = similarity(context, insight.context)
        if w < 1e-3:
            continue
        same_data = not (context.data_id and insight.context.data_id) or context.data_id == insight.context.data_id
        tau = SAME_DATA_SPREAD if same_data else max(between_data, SAME_DATA_SPREAD)
        p = w / (insight.effect_se**2 + tau**2)
        precision += p
        weighted += p * insight.effect
        evidence.append((insight, w))
        if insight.conclusive_failure:
            if w >= SAME_CONTEXT and same_data:
                if failed_here is None or insight.effect > failed_here.effect:
                    failed_here = insight
            else:
                failed_elsewhere.append((insight, context.differences(insight.context)))
    return ContextPrior(weighted / precision, math.sqrt(1.0 / precision), evidence, failed_here, failed_elsewhere)


def relative_effect(candidate_ne: Sequence[float], baseline_ne: Sequence[float]) -> tuple[float, float]:
    """Mean relative NE change of a candidate against its baseline, and its standard error.

    With a single seed on a side, that side's spread is borrowed from the other (and from a
    floor of 0.05% NE), so one lucky seed never reads as certainty.
    """
    mb = sum(baseline_ne) / len(baseline_ne)
    mc = sum(candidate_ne) / len(candidate_ne)
    sb, sc = _sd(baseline_ne), _sd(candidate_ne)
    floor = SEED_SD_FLOOR * abs(mb)
    sb = max(sb if sb is not None else (sc or 0.0), floor)
    sc = max(sc if sc is not None else sb, floor)
    se = math.sqrt(sb**2 / len(baseline_ne) + sc**2 / len(candidate_ne)) / abs(mb)
    return (mc - mb) / abs(mb), se


def seeded_effect(candidate: Mapping[Any, float], baseline: Mapping[Any, float]) -> tuple[float, float]:
    """Like `relative_effect`, for runs keyed by seed. Where two or more seeds ran on both
    sides the comparison is paired: a seed fixes the initialisation and the data order, so
    the difference between the arms on one seed carries far less noise than either arm
    (measured here: correlations of 0.5 to 1.0 between a candidate and the baseline on the
    same seed). The effect is then the mean of the per-seed differences, and its standard
    error that of those differences (floored like `relative_effect`'s)."""
    shared = [seed for seed in candidate if seed in baseline]
    if len(shared) < 2:
        return relative_effect(list(candidate.values()), list(baseline.values()))
    mb = abs(sum(baseline.values()) / len(baseline))
    diffs = [candidate[s] - baseline[s] for s in shared]
    sd = max(_sd(diffs) or 0.0, SEED_SD_FLOOR * mb)
    return sum(diffs) / len(diffs) / mb, sd / math.sqrt(len(diffs)) / mb


def comparison_insight(technique: str, changes: Mapping[str, Any], context: Context, candidate: Mapping[Any, float],
                       baseline: Mapping[Any, float], cost_factor: float, campaign: str) -> Insight:
    """One finished comparison (objective by seed on each arm, as minimised) as the insight
    the learn step stores: the paired effect, and the noise threshold for this many
    candidate seeds."""
    effect, se = seeded_effect(candidate, baseline)
    return Insight(technique=technique, changes=dict(changes), context=context, effect=effect, effect_se=se,
                   seeds=len(candidate), noise=noise_threshold(list(baseline.values()), len(candidate)),
                   cost_factor=cost_factor, campaign=campaign).with_uid()


def noise_threshold(baseline_ne: Sequence[float], candidate_seeds: int) -> float:
    """How much better (relative NE) a candidate must look to count as beyond the baseline's
    noise: two standard errors of the difference of means, from the baseline's seed spread."""
    mb = abs(sum(baseline_ne) / len(baseline_ne))
    sb = max(_sd(baseline_ne) or 0.0, SEED_SD_FLOOR * mb)
    return 2.0 * sb * math.sqrt(1.0 / len(baseline_ne) + 1.0 / max(candidate_seeds, 1)) / mb


def _sd(xs: Sequence[float]) -> float | None:
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


# -- the store and files ---------------------------------------------------------------------


def from_record(record: Any) -> Insight:
    return Insight(technique=record.technique, changes=dict(record.changes), context=Context(**record.context),
                   effect=record.effect, effect_se=record.effect_se, seeds=record.seeds, noise=record.noise,
                   cost_factor=record.cost_factor, campaign=record.campaign, uid=record.uid,
                   outcome=getattr(record, "outcome", "measured") or "measured",
                   author=getattr(record, "author", "") or "")


def save(store: Any, insight: Insight) -> bool:
    """Store one insight (idempotent by uid); True when it was new."""
    insight = insight if insight.uid else insight.with_uid()
    data = insight.to_json()
    return store.add_insight(**data)


def load_all(store: Any, technique: str | None = None) -> list[Insight]:
    return [from_record(r) for r in store.insights(technique)]


_REQUIRED = ("technique", "changes", "context", "effect", "effect_se", "seeds", "noise", "cost_factor", "campaign")
_CONTEXT_REQUIRED = ("model_family", "rows", "fields", "mean_cardinality", "baseline_ne")


def _check_fields(record: Any) -> None:
    """An insight line's fields in words: which are missing, which are unknown (with the
    one meant when a name is close)."""
    import difflib
    from dataclasses import fields

    if not isinstance(record, dict):
        raise ValueError(f"a line is one JSON object, found {type(record).__name__}")
    for where, found, required, known in (
            ("", record, _REQUIRED, [f.name for f in fields(Insight)]),
            ("context.", record.get("context") if isinstance(record.get("context"), dict) else None,
             _CONTEXT_REQUIRED, [f.name for f in fields(Context)])):
        if found is None:
            raise ValueError("the field 'context' must be an object (model_family, rows, fields, ...)")
        missing = [f"{where}{k}" for k in required if k not in found]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        for key in found:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                raise ValueError(f"unknown field '{where}{key}'" + (f"; did you mean {close[0]!r}?" if close else
                                                                     f"; known: {', '.join(known)}"))


class InsightFileError(ValueError):
    """An insights file to import is malformed; the message names the file and line."""


def export_jsonl(insights: Iterable[Insight], path: Any) -> int:
    """One JSON object per line: a format a team can diff, merge and share."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for insight in insights:
            f.write(json.dumps((insight if insight.uid else insight.with_uid()).to_json(), sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: Any) -> list[Insight]:
    """Every insight in the file, or an error naming the first bad line (nothing half-read)."""
    out = []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as exc:
        raise InsightFileError(f"{path}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            _check_fields(record)
            insight = Insight.from_json(record)
            float(insight.effect), float(insight.effect_se), int(insight.seeds)
            if not insight.technique or insight.effect_se < 0 or not math.isfinite(insight.effect):
                raise ValueError("technique must be named, effect finite and effect_se >= 0")
        except (ValueError, TypeError, KeyError) as exc:
            raise InsightFileError(f"{path}, line {number}: not an insight ({exc})") from None
        out.append(insight if insight.uid else insight.with_uid())
    return out
