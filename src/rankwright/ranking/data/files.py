"""Which files a data config names, resolved and checked: plain path logic, without the
loading machinery (and torch), so the agent can measure a campaign's data cheaply."""

from __future__ import annotations

from pathlib import Path

from rankwright.ranking.data.config import DataConfig
from rankwright.ranking.data.errors import DataError

ROLES = ("train", "valid", "test")


def resolve_files(config: DataConfig, base_dir: Path) -> dict[str, Path]:
    """Role -> existing file path for every file the config names."""
    files: dict[str, Path] = {}
    for role in ROLES:
        name = getattr(config, role)
        if not name:
            continue
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            raise DataError(f"data.{role}: file not found: {path}")
        files[role] = path
    return files
