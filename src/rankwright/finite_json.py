"""NaN and infinity are not JSON (PostgreSQL refuses them, `json.loads` of strict readers
too): an undefined number becomes null wherever a document is stored or printed. A leaf
module, used by the store and the command line."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity, however deep, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
