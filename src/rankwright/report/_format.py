"""Compact number and value formats shared by the Markdown and HTML reports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rankwright.report.proposal import ABSENT, flatten

NONE = "n/a"
_MAX_DECIMALS = 10


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _decimals(largest: float, digits: int, at_least: int = 0) -> int:
    """Decimals that show `digits` significant digits of `largest` in fixed notation."""
    if largest == 0 or not math.isfinite(largest):
        return max(at_least, digits - 1)
    return min(_MAX_DECIMALS, max(at_least, digits - 1 - math.floor(math.log10(abs(largest)))))


def _signed(x: float, decimals: int, sign: bool = True) -> str:
    text = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    if float(text) == 0:  # no "-0.00"
        text = f"{0:.{decimals}f}"
    return text


def sig(x: float | None, digits: int = 3) -> str:
    """3 significant digits in fixed notation, trailing zeros dropped: 12.3, 0.5, 1230."""
    if not _finite(x):
        return NONE if x is None else str(x)
    assert x is not None
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - exponent
    rounded = round(x, min(decimals, _MAX_DECIMALS))
    text = f"{rounded:.{max(0, min(decimals, _MAX_DECIMALS))}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def metric_value(x: float) -> str:
    return f"{x:.4f}" if _finite(x) else str(x)


def metric_diff(diff: float, low: float, high: float) -> tuple[str, str]:
    """(diff, "[low, high]") with one shared number of decimals: 3 digits of the largest."""
    if not _finite(diff, low, high):
        return str(diff), f"[{low}, {high}]"
    d = _decimals(max(abs(diff), abs(low), abs(high)), 3)
    return _signed(diff, d), f"[{_signed(low, d)}, {_signed(high, d)}]"


def effect(e: float | None, low: float | None, high: float | None) -> tuple[str, str]:
    """A relative effect and its interval as percentages: ("-0.42%", "[-0.61%, -0.23%]")."""
    known = [abs(v) * 100 for v in (e, low, high) if _finite(v)]
    d = _decimals(max(known), 2, at_least=2) if known else 2
    shown = f"{_signed(e * 100, d)}%" if _finite(e) else NONE  # type: ignore[operator]
    if _finite(low, high):
        ci = f"[{_signed(low * 100, d)}%, {_signed(high * 100, d)}%]"  # type: ignore[operator]
    else:
        ci = NONE
    return shown, ci


def percent(x: float | None, sign: bool = False) -> str:
    """A share as a compact percentage: 71%, 4.2%, +12%, -0.4%."""
    if not _finite(x):
        return NONE
    assert x is not None
    pct = x * 100
    decimals = 0 if abs(pct) >= 10 or pct == 0 else 1
    return f"{_signed(pct, decimals, sign)}%"


def p_value(p: float | None) -> str:
    if not _finite(p):
        return NONE
    assert p is not None
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def unit(name: str) -> str:
    return {"cpu_hours": "CPU-hours", "gpu_hours": "GPU-hours"}.get(name, name.replace("_", " "))


def value(v: Any, limit: int = 40) -> str:
    """A config value on one line, as YAML would write it: true, null, [400, 400]."""
    text = _value(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value(v: Any) -> str:
    if v is ABSENT:
        return "(absent)"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    return " ".join(str(v).split()) if str(v) else "''"


def changes(changes: Mapping[str, Any]) -> str:
    """A hypothesis's changes as "a.b=1, c=[2, 3]"."""
    return ", ".join(f"{k}={value(v, 30)}" for k, v in flatten(changes).items()) or "no config change"
