"""Writing files so that a crash never leaves one half-written."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    The file gets the usual permissions (as `open` would give under the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, value: Any) -> Path:
    """Write JSON (indented, UTF-8, NaN refused) atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def check_writable_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder that cannot be written to (a report, an export).

    The folder is probed by writing into it; folders the probe had to create are
    removed again, so a later failure leaves nothing behind.

    Raises:
        UsageError: `path` is a file, or cannot be created or written.
    """
    from bertkit.errors import UsageError

    if path.exists() and not path.is_dir():
        raise UsageError(
            f"{path}: exists and is not a folder; {option} names a folder", hint="give a folder path"
        )
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot write there: {exc.strerror or exc}", hint=f"choose a writable {option}"
        ) from None
    finally:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
