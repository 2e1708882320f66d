"""The ranking codebase's user-error types, in a module that imports nothing heavy, so the
CLI can catch them without loading PyTorch (a `rankwright wake` never needs it)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user's configuration is wrong; the message says where and what is allowed."""


class DataError(ValueError):
    """Bad user data or data configuration; the message names the file, row/line and field."""
