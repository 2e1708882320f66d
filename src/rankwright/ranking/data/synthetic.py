"""The built-in synthetic ad-click log: realistic shape, known true click probabilities.

Because every row carries the probability it was drawn from, the best possible metrics
(the Bayes limit) are known, and a result can be read as the share of the gap from the
baseline to that limit that was closed.

Generating process (all tables depend only on the seed, the structure and the shape knobs,
never on ``rows``):

- Entities. ``user_id``, ``ad_id`` and ``site`` are Zipf-popular ids. A user has fixed
  ``age_bucket``, ``gender``, ``geo`` and a usual ``device``; an ad has a fixed
  ``advertiser_id`` and ``category`` (mostly its advertiser's). ``hour`` follows a daily
  cycle, ``position`` a steep slot distribution.
- Numeric features, all non-negative and heavy-tailed so the default ``log`` transform suits
  them: ``price`` (per ad, log-normal around its category's level, with per-impression
  noise), ``user_activity`` (Poisson around the user's rate), ``ad_quality`` (in [0, 1]),
  ``recency_hours`` (hours since the user's last visit).
- Logit = bias + four effects, each scaled to a known standard deviation:
  first order (per-field weights, monotone position bias); pairwise (rank-``latent_dim``
  field-aware factors on user x ad, ad x context and user x context field pairs); 3-way
  (rank-``latent_dim`` CP terms of three fields); numeric (price relative to its category
  through a saturating curve with a category-dependent slope and a cheapness threshold,
  saturating activity, a quality threshold with a sine wiggle amplified in top positions, a
  daily sine of recency). Factor tables are centred under the fields' marginal distributions,
  so pairwise and 3-way terms carry (almost) no lower-order signal: a model has to learn the
  interaction itself.
- ``structure`` sets how much each effect contributes (see ``PRESETS``), and the pairwise mix.
- The bias is solved by bisection so the mean true probability equals ``base_rate`` on a fixed
  calibration sample; labels are Bernoulli(prob).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rankwright.ranking.data.config import SchemaConfig, SyntheticConfig
from rankwright.ranking.data.errors import DataError
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a tensor type only in a signature: the agent reads the schema without torch
    from rankwright.ranking.data.types import TensorSplit
from rankwright.ranking.metrics import Metrics, evaluate

USER_FIELDS = ("user_id", "age_bucket", "gender", "geo")
AD_FIELDS = ("ad_id", "advertiser_id", "category")
CONTEXT_FIELDS = ("site", "hour", "device", "position")
CATEGORICAL_FIELDS = USER_FIELDS + AD_FIELDS + CONTEXT_FIELDS
NUMERIC_FIELDS = ("price", "user_activity", "ad_quality", "recency_hours")
PROBABILITY = "prob"
GENERATOR_VERSION = 1  # bump whenever the generating process changes (it is part of the cache key)

# Effect sizes (logit standard deviation) of each structure, before the config multipliers.
PRESETS: dict[str, dict[str, float]] = {
    "default": {"first_order": 0.8, "pairwise": 0.8, "higher_order": 0.6, "numeric": 0.6},
    "wide": {"first_order": 1.3, "pairwise": 0.25, "higher_order": 0.1, "numeric": 0.25},
    "pairwise": {"first_order": 0.4, "pairwise": 1.3, "higher_order": 0.15, "numeric": 0.2},
    "higher_order": {"first_order": 0.4, "pairwise": 0.4, "higher_order": 1.3, "numeric": 0.2},
    "numeric": {"first_order": 0.4, "pairwise": 0.25, "higher_order": 0.1, "numeric": 1.3},
}
# Weight of each pair group inside the pairwise effect.
PAIR_MIX: dict[str, dict[str, float]] = {
    "pairwise": {"user_ad": 1.0, "ad_context": 0.25, "user_context": 0.25},
}
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("user_ad", "user_id", "category"),
    ("user_ad", "user_id", "advertiser_id"),
    ("user_ad", "age_bucket", "category"),
    ("user_ad", "gender", "category"),
    ("user_ad", "geo", "ad_id"),
    ("user_ad", "age_bucket", "ad_id"),
    ("ad_context", "ad_id", "site"),
    ("ad_context", "category", "hour"),
    ("ad_context", "advertiser_id", "device"),
    ("ad_context", "category", "site"),
    ("user_context", "age_bucket", "hour"),
    ("user_context", "geo", "site"),
    ("user_context", "gender", "device"),
)
TRIPLES: tuple[tuple[str, str, str], ...] = (
    ("age_bucket", "category", "hour"),
    ("gender", "category", "device"),
    ("geo", "advertiser_id", "hour"),
    ("device", "site", "position"),
    ("age_bucket", "advertiser_id", "position"),
)
FIRST_ORDER_SCALE = {
    "user_id": 0.8, "age_bucket": 0.3, "gender": 0.2, "geo": 0.3, "ad_id": 0.8, "advertiser_id": 0.5,
    "category": 0.6, "site": 0.6, "hour": 0.3, "device": 0.4, "position": 0.0,  # position: monotone, below
}
BASE_CARDINALITY = {"user_id": 100_000, "geo": 500, "ad_id": 50_000, "advertiser_id": 3_000, "site": 2_000}
AGE_P = np.array([0.08, 0.2, 0.25, 0.2, 0.14, 0.08, 0.05])
GENDER_P = np.array([0.48, 0.48, 0.04])
DEVICE_P = np.array([0.45, 0.3, 0.12, 0.08, 0.05])
POSITION_P = 0.55 ** np.arange(8)
CHUNK_ROWS = 1 << 16  # rows of one generation chunk; row chunk i is the same for any ``rows``
CALIBRATION_ROWS = 200_000
PRICE_NOISE = 0.25


def synthetic_schema(config: SyntheticConfig | None = None) -> SchemaConfig:
    """Columns of every synthetic frame (the same for every config)."""
    return SchemaConfig(label="label", categorical=CATEGORICAL_FIELDS, numeric=NUMERIC_FIELDS)


def generate_frame(config: SyntheticConfig) -> pd.DataFrame:
    """``config.rows`` rows: label (float32), categorical ids (int32), numeric (float32), prob (float32)."""
    return _task(config).frame(config.rows)


def bayes_metrics(split: TensorSplit) -> Metrics:
    """Metrics of the true probabilities on this split: the best any model can do on it."""
    if split.true_probability is None:
        raise DataError("bayes_metrics: this split has no true probabilities (only synthetic data has them)")
    return evaluate(split.label.numpy(), split.true_probability.numpy())


# --------------------------------------------------------------------------- internals


def _rng(config: SyntheticConfig, *keys: str | int) -> np.random.Generator:
    """An independent stream per (seed, structure, name): adding a table never shifts the others."""
    words = [config.seed, zlib.crc32(config.structure.encode())]
    words += [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def _zipf_pmf(n: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return p / p.sum()


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """Inverse-CDF sampling of ``n`` values (vectorized searchsorted)."""
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), cdf.size - 1).astype(np.int32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class _Stats:
    mean: float
    std: float

    @classmethod
    def of(cls, x: np.ndarray) -> "_Stats":
        std = float(x.std())
        return cls(float(x.mean()), std if std > 1e-12 else 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


class _Task:
    """All parameters of one generating process and the code that draws rows from it."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        c = config
        self.cardinality = {
            "user_id": max(100, round(BASE_CARDINALITY["user_id"] * c.user_scale)),
            "age_bucket": AGE_P.size,
            "gender": GENDER_P.size,
            "geo": max(5, round(BASE_CARDINALITY["geo"] * c.user_scale)),
            "ad_id": max(100, round(BASE_CARDINALITY["ad_id"] * c.ad_scale)),
            "advertiser_id": max(10, round(BASE_CARDINALITY["advertiser_id"] * c.ad_scale)),
            "category": 60,
            "site": max(20, round(BASE_CARDINALITY["site"] * c.context_scale)),
            "hour": 24,
            "device": DEVICE_P.size,
            "position": POSITION_P.size,
        }
        self._entities()
        self._marginals()
        self._effects()
        self._calibrate()

    # ----------------------------------------------------------------- tables
    def _entities(self) -> None:
        c, k = self.config, self.cardinality
        rng = _rng(c, "entities")
        self.user_p = _zipf_pmf(k["user_id"], c.zipf_exponent)[rng.permutation(k["user_id"])]
        self.ad_p = _zipf_pmf(k["ad_id"], c.zipf_exponent)[rng.permutation(k["ad_id"])]
        self.site_p = _zipf_pmf(k["site"], c.zipf_exponent)[rng.permutation(k["site"])]
        self.user_cdf, self.ad_cdf, self.site_cdf = (np.cumsum(p) for p in (self.user_p, self.ad_p, self.site_p))
        n_user, n_ad = k["user_id"], k["ad_id"]
        self.user_age = rng.choice(AGE_P.size, n_user, p=AGE_P).astype(np.int32)
        self.user_gender = rng.choice(GENDER_P.size, n_user, p=GENDER_P).astype(np.int32)
        geo_p = _zipf_pmf(k["geo"], 0.9)[rng.permutation(k["geo"])]
        self.user_geo = rng.choice(k["geo"], n_user, p=geo_p).astype(np.int32)
        self.user_device = rng.choice(DEVICE_P.size, n_user, p=DEVICE_P).astype(np.int32)
        self.user_rate = np.exp(rng.normal(1.5, 0.9, n_user)).astype(np.float32)
        adv_p = _zipf_pmf(k["advertiser_id"], 1.0)[rng.permutation(k["advertiser_id"])]
        self.ad_advertiser = rng.choice(k["advertiser_id"], n_ad, p=adv_p).astype(np.int32)
        advertiser_category = rng.integers(0, k["category"], k["advertiser_id"])
        own = rng.random(n_ad) < 0.85
        self.ad_category = np.where(
            own, advertiser_category[self.ad_advertiser], rng.integers(0, k["category"], n_ad)
        ).astype(np.int32)
        self.category_price = rng.normal(3.0, 1.0, k["category"])  # log-price level of a category
        self.ad_log_price = (self.category_price[self.ad_category] + rng.normal(0.0, 0.6, n_ad)).astype(np.float32)
        self.ad_quality = rng.beta(2.0, 4.0, n_ad).astype(np.float32)
        hours = np.arange(24)
        hour_p = 1.0 + 0.7 * np.sin(2 * np.pi * (hours - 14) / 24) + 0.3 * np.sin(2 * np.pi * (hours - 20) / 12)
        self.hour_cdf = np.cumsum(np.clip(hour_p, 0.05, None))
        self.position_cdf = np.cumsum(POSITION_P)

    def _marginals(self) -> None:
        """Each field's distribution, to centre factor tables (no lower-order leak)."""
        k = self.cardinality
        self.pmf = {
            "user_id": self.user_p,
            "age_bucket": np.bincount(self.user_age, self.user_p, k["age_bucket"]),
            "gender": np.bincount(self.user_gender, self.user_p, k["gender"]),
            "geo": np.bincount(self.user_geo, self.user_p, k["geo"]),
            "ad_id": self.ad_p,
            "advertiser_id": np.bincount(self.ad_advertiser, self.ad_p, k["advertiser_id"]),
            "category": np.bincount(self.ad_category, self.ad_p, k["category"]),
            "site": self.site_p,
            "hour": np.diff(self.hour_cdf, prepend=0.0) / self.hour_cdf[-1],
            "device": 0.75 * np.bincount(self.user_device, self.user_p, k["device"]) + 0.25 / k["device"],
            "position": POSITION_P / POSITION_P.sum(),
        }

    def _table(self, name: str, field: str, width: int) -> np.ndarray:
        table = _rng(self.config, "table", name, width).normal(0.0, 1.0, (self.cardinality[field], width))
        table -= self.pmf[field] @ table  # zero mean under the field's distribution
        return table.astype(np.float32)

    def _effects(self) -> None:
        c, k = self.config, self.cardinality
        self.first = {}
        for f in CATEGORICAL_FIELDS:
            self.first[f] = self._table(f"first/{f}", f, 1)[:, 0] * FIRST_ORDER_SCALE[f]
        self.first["position"] = -np.linspace(0.0, 1.5, k["position"]).astype(np.float32)
        d = c.latent_dim
        self.pair_tables = [
            (group, f, g, self._table(f"pair/{f}/{g}/a", f, d), self._table(f"pair/{f}/{g}/b", g, d))
            for group, f, g in PAIRS
        ]
        self.triple_tables = [
            (fields, *(self._table(f"triple/{'/'.join(fields)}/{i}", fields[i], d) for i in range(3)))
            for fields in TRIPLES
        ]
        rng = _rng(c, "numeric")
        self.price_slope = rng.normal(1.0, 0.6, k["category"]).astype(np.float32)
        self.cheap_threshold = float(np.exp(rng.normal(2.0, 0.3)))
        self.quality_threshold = float(rng.uniform(0.35, 0.55))
        self.recency_phase = float(rng.uniform(0.0, 2 * np.pi))
        mix = PAIR_MIX.get(c.structure, {})
        self.pair_weight = [mix.get(group, 1.0) for group, *_ in PAIRS]
        preset = PRESETS[c.structure]
        self.strength = {name: preset[name] * getattr(c, name) for name in preset}

    # ----------------------------------------------------------------- rows
    def _rows(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        user = _draw(rng, self.user_cdf, n)
        ad = _draw(rng, self.ad_cdf, n)
        row = {
            "user_id": user,
            "age_bucket": self.user_age[user],
            "gender": self.user_gender[user],
            "geo": self.user_geo[user],
            "ad_id": ad,
            "advertiser_id": self.ad_advertiser[ad],
            "category": self.ad_category[ad],
            "site": _draw(rng, self.site_cdf, n),
            "hour": _draw(rng, self.hour_cdf, n),
            "device": np.where(
                rng.random(n) < 0.75, self.user_device[user], rng.integers(0, DEVICE_P.size, n)
            ).astype(np.int32),
            "position": _draw(rng, self.position_cdf, n),
        }
        row["price"] = np.exp(self.ad_log_price[ad] + rng.normal(0.0, PRICE_NOISE, n).astype(np.float32))
        row["user_activity"] = rng.poisson(self.user_rate[user]).astype(np.float32)
        row["ad_quality"] = np.clip(self.ad_quality[ad] + rng.normal(0.0, 0.05, n), 0.0, 1.0).astype(np.float32)
        row["recency_hours"] = rng.exponential(30.0, n).astype(np.float32)
        return row

    def _raw_effects(self, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every elementary term before scaling; keys are term names."""
        terms: dict[str, np.ndarray] = {}
        terms["first_order"] = sum(self.first[f][row[f]] for f in CATEGORICAL_FIELDS)
        for i, (_, f, g, a, b) in enumerate(self.pair_tables):
            terms[f"pair{i}"] = np.einsum("nd,nd->n", a[row[f]], b[row[g]])
        for i, (fields, a, b, t) in enumerate(self.triple_tables):
            terms[f"triple{i}"] = np.einsum("nd,nd,nd->n", a[row[fields[0]]], b[row[fields[1]]], t[row[fields[2]]])
        category = row["category"]
        relative_price = (np.log(row["price"]) - self.category_price[category]) / 0.7
        top = (row["position"] < 2).astype(np.float32)
        terms["numeric"] = (
            -self.price_slope[category] * np.tanh(relative_price)
            + 0.6 * (row["price"] < self.cheap_threshold)
            + 1.2 * (1.0 - np.exp(-row["user_activity"] / 6.0))
            + (1.0 + top) * (0.7 * (row["ad_quality"] > self.quality_threshold) + 0.3 * np.sin(9.0 * row["ad_quality"]))
            + 0.5 * np.sin(2 * np.pi * row["recency_hours"] / 24.0 + self.recency_phase)
            - 0.3 * np.log1p(row["recency_hours"] / 24.0)
        )
        return terms

    def _components(self, terms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = sum(w * self.term_stats[f"pair{i}"](terms[f"pair{i}"]) for i, w in enumerate(self.pair_weight))
        triples = sum(self.term_stats[f"triple{i}"](terms[f"triple{i}"]) for i in range(len(TRIPLES)))
        return {
            "first_order": terms["first_order"],
            "pairwise": pairs,
            "higher_order": triples,
            "numeric": terms["numeric"],
        }

    def _logit_without_bias(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        parts = self._components(terms)
        return sum(self.strength[name] * self.component_stats[name](x) for name, x in parts.items())

    def _calibrate(self) -> None:
        """Scale every term on a fixed sample, then solve the bias for the base rate."""
        sample = self._rows(_rng(self.config, "calibration"), CALIBRATION_ROWS)
        terms = self._raw_effects(sample)
        self.term_stats = {name: _Stats.of(x) for name, x in terms.items()}
        self.component_stats = {name: _Stats.of(x) for name, x in self._components(terms).items()}
        logit = self._logit_without_bias(terms).astype(np.float64)
        low, high = -30.0, 30.0
        for _ in range(60):  # bisection: the mean probability is monotone in the bias
            mid = 0.5 * (low + high)
            if _sigmoid(logit + mid).mean() < self.config.base_rate:
                low = mid
            else:
                high = mid
        self.bias = 0.5 * (low + high)

    def frame(self, rows: int) -> pd.DataFrame:
        columns = {"label": np.empty(rows, np.float32)}
        columns |= {f: np.empty(rows, np.int32) for f in CATEGORICAL_FIELDS}
        columns |= {f: np.empty(rows, np.float32) for f in NUMERIC_FIELDS}
        columns[PROBABILITY] = np.empty(rows, np.float32)
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, rows - start)
            rng = _rng(self.config, "rows", chunk)
            row = self._rows(rng, CHUNK_ROWS)  # always a full chunk, so chunk i never depends on rows
            prob = _sigmoid(self._logit_without_bias(self._raw_effects(row)) + self.bias)
            row["label"] = (rng.random(CHUNK_ROWS) < prob).astype(np.float32)
            row[PROBABILITY] = prob
            for name, values in columns.items():
                values[start : start + n] = row[name][:n]
        return pd.DataFrame(columns, copy=False)


def _task(config: SyntheticConfig) -> _Task:
    return _Task(config)
