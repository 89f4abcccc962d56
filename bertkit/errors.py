"""The errors bertkit raises on purpose.

Library code raises these and never exits; only the CLI entry point turns one into
a message and an exit code. Every error carries a hint telling the user what to do.
"""

from __future__ import annotations


class BertkitError(Exception):
    """A failure the user can act on.

    Args:
        message: one line saying what went wrong, naming the file, key or line.
        hint: one line saying how to fix it.
        code: a stable name for the kind of problem (`bertkit check` reports it).
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def __str__(self) -> str:
        return self.message


class UsageError(BertkitError):
    """The command line itself is wrong (bad option combination, missing argument)."""

    exit_code = 2


class RecipeError(BertkitError):
    """A recipe is missing, unreadable or invalid. Holds every problem found."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        problems: list[str] | None = None,
        *,
        code: str | None = None,
    ):
        super().__init__(message, hint, code=code)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return "\n".join([self.message, *(f"  {p}" for p in self.problems)])


class DataError(BertkitError):
    """Input data is missing, malformed or does not fit the recipe."""


class ModelError(BertkitError):
    """A model or tokenizer cannot be found, loaded or used as asked."""


class RunError(BertkitError):
    """A run directory is missing, incomplete, or would be overwritten."""


class TrainingError(BertkitError):
    """Training diverged or could not continue."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
