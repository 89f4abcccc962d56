"""Pieces every training command shares: where the run goes, checks, quiet libraries."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bertkit.errors import RecipeError, RunError
from bertkit.recipe.schema import Recipe
from bertkit.runs import RunDirectory, new_run_path


def run_location(recipe: Recipe, resume: Path | None) -> tuple[Path, Path | None]:
    """The run directory to write, and the checkpoint to resume from (if any).

    Raises:
        RunError: the resume target has no checkpoint.
    """
    if resume is None:
        if recipe.output.dir:
            return Path(recipe.output.dir), None
        return new_run_path(Path(recipe.output.root), recipe.run_name), None
    resume = resume.expanduser()
    if resume.name.startswith("checkpoint-") and resume.is_dir():
        return resume.parent.parent, resume
    checkpoint = RunDirectory(resume).latest_checkpoint()
    if checkpoint is None:
        raise RunError(
            f"{resume}: no checkpoint to resume from",
            hint="give a run directory that has checkpoints/, or a checkpoint-N folder",
        )
    return resume, checkpoint


def check_max_length(recipe: Recipe, tokenizer: Any) -> None:
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 100_000 and recipe.data.max_length > limit:
        raise RecipeError(
            f"data.max_length: {recipe.data.max_length} is above the model's limit of {limit} tokens",
            hint=f"use --set data.max_length={limit} or less",
        )


def strip_prefix(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def quiet_libraries() -> None:
    """Silence library chatter that bertkit reports better itself."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@contextmanager
def cleanup_on_failure(run: RunDirectory, created: bool) -> Iterator[None]:
    """Remove a run directory this command created if it fails before any checkpoint."""
    try:
        yield
    except BaseException:
        if created and run.latest_checkpoint() is None:
            shutil.rmtree(run.path, ignore_errors=True)  # nothing worth keeping
        raise
