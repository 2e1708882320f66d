"""Secrets never reach a log, an event or a report: any value of an environment variable
whose name says it is a secret, and anything shaped like a provider's API key, is replaced
before text is stored or shown. A leaf module: the store and the agent both use it."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# provider key shapes (OpenAI, Anthropic, GitHub, AWS access keys, bearer tokens)
_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{16,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})")
MASK = "[redacted]"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 6}, key=len, reverse=True)


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    for value in secret_values(environ):
        text = text.replace(value, MASK)
    return _SHAPES.sub(MASK, text)
