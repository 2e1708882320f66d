"""Reading a user's YAML file with an error that says where it is wrong (shared by every
part that reads one: run configs, campaign specs, target descriptions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when the wheel has it: ten times faster on a spec with thousands of entries.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """The parsed document; `error` names the file, and the line and column of a syntax error."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        hint = f"; give the path of the {what}'s YAML file" if isinstance(exc, FileNotFoundError) else ""
        raise error(f"{path}: cannot read the {what} ({exc.strerror}){hint}") from None
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        # The parser notices an unclosed bracket or quote only where the file ends; say where it opened.
        opened = (f" ({context} that starts at line {start.line + 1}, column {start.column + 1})"
                  if context and start else "")
        raise error(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}{opened}") from None
