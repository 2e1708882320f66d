"""Targets for external codebases, described by a YAML file (see examples/targets/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rankwright.targets._base import Target, TargetError
from rankwright.yaml_files import read_yaml


def _where(loc: tuple[Any, ...], document: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = document
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            entry = node[item]
            path = entry.get("path") if isinstance(entry, dict) else None
            parts[-1] = f"{parts[-1]}[{item}]" + (f" ({path})" if path else "") if parts else str(item)
            node = entry
            continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def target_from_dict(document: Any, source: str, root: Path | None = None) -> Target:
    if not isinstance(document, dict):
        raise TargetError(f"{source}: expected a mapping (name, command, knobs, ...), got {type(document).__name__}")
    document = dict(document)
    if root is not None:
        given = document.get("root")
        document["root"] = str((root / given).resolve() if isinstance(given, str) else root.resolve())
    try:
        return Target.model_validate(document)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            if error["type"] not in ("missing", "extra_forbidden") and "input" in error:
                shown = repr(error["input"])
                message += f" (got {shown if len(shown) < 80 else shown[:77] + '...'})"
            lines.append(f"{_where(error['loc'], document)}: {message}")
        raise TargetError(f"{source}: invalid target\n  " + "\n  ".join(lines)) from None


def load_target(path: Path | str) -> Target:
    """Read a target YAML file; `root` defaults to the file's folder (relative paths from it)."""
    path = Path(path)
    document = read_yaml(path, TargetError, "target")
    return target_from_dict(document, str(path), root=path.parent)
