"""The recipes shipped with bertkit (the repository's top-level `recipes/` folder).

Installed, that folder is the package `bertkit.bundled`; in an editable install the
same name maps onto the repository folder, so there is one source of truth.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import yaml


def bundled_dir() -> Path:
    """The folder holding the bundled recipe files."""
    return Path(str(files("bertkit.bundled")))


def bundled_names() -> list[str]:
    """Names of the bundled recipes, sorted."""
    return sorted(p.stem for p in bundled_dir().glob("*.yaml"))


def bundled_path(name: str) -> Path | None:
    """The file of bundled recipe `name` (with or without `.yaml`), or None."""
    stem = name.removesuffix(".yaml")
    if "/" in stem or "\\" in stem:
        return None
    path = bundled_dir() / f"{stem}.yaml"
    return path if path.is_file() else None


def recipe_summary(path: Path) -> tuple[str, str]:
    """(task, description) of a recipe file, read without validating it."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "?", "(unreadable)"
    if not isinstance(raw, dict):
        return "?", "(not a mapping)"
    return str(raw.get("task", "?")), str(raw.get("description") or "")
