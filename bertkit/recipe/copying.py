"""Copy a recipe so it still runs in its new place."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from bertkit.errors import UsageError

_SPLITS = ("train", "validation", "test")


def local_data_files(recipe_file: Path) -> list[Path]:
    """Relative local data paths a recipe names that exist beside it (relative paths)."""
    raw = yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        return []
    found = []
    for split in _SPLITS:
        value = data.get(split)
        path = value.get("path") if isinstance(value, dict) else value
        relative = isinstance(path, str) and not Path(path).is_absolute()
        if relative and (recipe_file.parent / path).is_file():
            found.append(Path(path))
    return found


def copy_recipe(source: Path, target: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy `source` to `target`, and the relative data files it names beside it.

    Comments and layout are kept: the recipe is copied byte for byte.

    Returns:
        The files written, the recipe first.

    Raises:
        UsageError: `target` (or a data file to write) exists and `overwrite` is false.
    """
    planned = [(source, target)] + [
        (source.parent / rel, target.parent / rel) for rel in local_data_files(source)
    ]
    if not overwrite:
        clashes = [str(dst) for src, dst in planned if dst.exists() and dst.read_bytes() != src.read_bytes()]
        if clashes:
            raise UsageError(
                f"{clashes[0]}: already exists",
                hint="choose another destination or pass --force to overwrite",
            )
    written = []
    for src, dst in planned:
        if dst.exists() and dst.resolve() == src.resolve():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return written
