"""Access control: everything the agent writes, and every place a run is told to write,
stays inside the spec's `allowed_paths` (any entry). A target declares which knobs name a
place its runs write (`writes: true` in the knob schema); a value of such a knob outside
the allowed paths is refused at preflight and again at submit, with the path named."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rankwright.targets import Target, value_at


def allowed_roots(allowed_paths: tuple[str, ...] | list[str], base: Path | None = None) -> list[Path]:
    base = Path.cwd() if base is None else base
    return [(Path(p) if Path(p).is_absolute() else base / p).resolve() for p in allowed_paths]


def inside(path: Path | str, roots: list[Path], base: Path | None = None) -> bool:
    path = Path(path)
    resolved = (path if path.is_absolute() else (Path.cwd() if base is None else base) / path).resolve()
    return any(resolved == r or r in resolved.parents for r in roots)


def outside_writes(target: Target, config: Mapping[str, Any], roots: list[Path], run_dir: Path | None = None) -> list[str]:
    """Where this config would make a run write outside `roots`, in words ([] when nowhere).
    Relative values count from the run's folder, where the run works."""
    problems = []
    for knob in target.knobs:
        if not knob.writes:
            continue
        value = value_at(config, knob.path)
        if isinstance(value, str) and value and not inside(value, roots, base=run_dir):
            problems.append(f"{knob.path} = {value!r} is outside the allowed paths")
    metrics = target.metrics
    for name, value in (("metrics.file", metrics.file), ("metrics.result_file", metrics.result_file),
                        ("metrics.heartbeat_file", metrics.heartbeat_file)):
        if value and (Path(value).is_absolute() or ".." in Path(value).parts):
            problems.append(f"the target's {name} {value!r} is not inside the run's folder")
    return problems


def store_outside(roots: list[Path], url: str) -> str | None:
    """Why the store's file is outside the allowed paths, or None (a server store has no file)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    if path in ("", ":memory:") or inside(path, roots):
        return None
    return (f"the store {path} is outside the allowed paths; add its folder to allowed_paths or set "
            "RANKWRIGHT_DB to a store inside them")
