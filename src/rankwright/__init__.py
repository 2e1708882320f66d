"""Rankwright: an autonomous ranking engineer."""

__version__ = "0.1.0"
