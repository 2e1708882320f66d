"""The one error type for bad data or a bad data configuration.

It subclasses ``ValueError`` so callers that already catch bad input keep working, and its
message always says where the problem is (file and line or row, column, config field).
"""

from __future__ import annotations

from rankwright.ranking.errors import DataError

__all__ = ["DataError"]
