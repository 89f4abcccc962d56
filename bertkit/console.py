"""Where bertkit talks to people: rich consoles for results (stdout) and messages (stderr)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

# Results go to stdout so they can be piped; progress, notes and errors go to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def is_main_process() -> bool:
    """False in the extra processes of `accelerate launch` / `torchrun` (they set RANK)."""
    return os.environ.get("RANK", "0") == "0"


def note(message: str) -> None:
    """A one-line progress or decision note on stderr (printed literally, no markup).

    Only the main process of a multi-process run prints, so notes appear once.
    """
    if is_main_process():
        err.print("[dim]·[/dim]", escape(message))


def warn(message: str) -> None:
    """A warning the user should read, on stderr (printed literally, no markup)."""
    if is_main_process():
        err.print("[yellow]warning:[/yellow]", escape(message))


def plural(n: int, word: str) -> str:
    """`1 row`, `2 rows`, `1,000 rows`: a count with its noun, for messages."""
    return f"{n:,} {word}{'s' if n != 1 else ''}"
