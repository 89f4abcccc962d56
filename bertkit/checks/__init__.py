"""Check a recipe's data before any compute is spent (`bertkit check`, and the start of training).

The data the recipe points to is read once, with the readers training uses, and every
problem is collected rather than raised, so a user sees them all in one go. Problems
that make training fail or meaningless (unreadable rows, missing columns, empty or
unseen labels, a single class, no text) are errors; problems that make it worse than
it should be (empty texts, duplicates, leakage between splits, heavy imbalance, many
truncated texts) are warnings. `raise_for_errors` turns the errors into one exception
for the training commands. Nothing here prints.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from bertkit.checks.report import CheckReport, Finding, SplitStats, TokenStats, plural
from bertkit.errors import BertkitError, DataError, RecipeError
from bertkit.recipe.base import RecipeBase as Recipe

__all__ = ["CheckReport", "Finding", "SplitStats", "TokenStats", "check_recipe", "raise_for_errors"]


def check_recipe(
    recipe: Recipe, task: Any = None, *, limit: int | None = None, tokenizer: Any = None
) -> CheckReport:
    """Read the data a recipe points to and report every problem found, without raising.

    Args:
        recipe: a validated recipe.
        task: its task, which checks its data; default the registry's for `recipe.task`.
        limit: check only the first N rows of each split (default: data.limit).
        tokenizer: the tokenizer to measure token lengths with; default the recipe's
            (`model.tokenizer` or `model.name`), loaded here.

    Returns:
        A CheckReport; `report.ok` is False when training would fail or be meaningless.
    """
    if task is None:
        from bertkit.tasks import get_task

        task = get_task(recipe.task)
    report = CheckReport(
        task=recipe.task,
        recipe=str(recipe.source) if recipe.source else recipe.run_name,
        max_length=recipe.data.max_length,
        tokenizer=recipe.model.tokenizer or recipe.model.name,
        limit=limit or recipe.data.limit,
        unit=task.unit,
    )
    loaded = _check_model(recipe, task, tokenizer, report)
    _check_trackers(recipe, report)
    task.check(recipe, loaded, report)
    return report


def raise_for_errors(report: CheckReport) -> None:
    """Raise if the report holds errors: the error itself when there is one, else a summary.

    Raises:
        BertkitError: the single error found (its own class, message and hint), or a
            DataError listing every error.
    """
    errors = report.errors
    if not errors:
        return
    if len(errors) == 1 and errors[0].exception is not None:
        raise errors[0].exception
    lines = []
    for finding in errors:
        lines.append(f"  {finding.message}")
        if finding.hint:
            lines.append(f"    ({finding.hint})")
    listed = "\n".join(lines)
    raise DataError(
        f"{report.recipe}: training would fail or mean nothing ({plural(len(errors), 'problem')}):\n{listed}",
        hint=f"fix them; `bertkit check --recipe {report.recipe}` shows the full report",
    )


def _check_model(recipe: Recipe, task: Any, given: Any, report: CheckReport) -> Any:
    """Check the model reference, its weights' format and the tokenizer; return the tokenizer."""
    from bertkit.models import check_weights_safe, resolve_model

    model = recipe.model
    if model.trust_remote_code:
        repositories = " and ".join(dict.fromkeys(str(n) for n in (model.name, model.tokenizer) if n))
        report.add(
            "warning",
            "trust_remote_code",
            f"model.trust_remote_code is on: code from {repositories} will run on this machine",
            hint="turn it off unless you have read that repository's code",
        )
    if recipe.needs_model_name and model.name:  # its weights will be loaded
        try:
            check_weights_safe(resolve_model(model.name), model.allow_pickle)
        except BertkitError as exc:
            report.add("error", "model", exc)
    tokenizer = given
    if tokenizer is None:
        try:
            tokenizer = task.load_tokenizer(recipe)
        except BertkitError as exc:
            if not any(f.message == str(exc) for f in report.findings):  # the model check said it
                report.add("error", exc.code or "model", exc)
            return None
    if tokenizer is None:  # the run trains its own (the task's check says so)
        report.tokenizer = None
        return None
    limit, why = length_limit(recipe, tokenizer)
    report.length_limit = limit
    if limit is not None and recipe.data.max_length > limit:
        report.add(
            "error",
            "max_length",
            RecipeError(
                f"data.max_length: {recipe.data.max_length} is above the model's limit of {limit} "
                f"tokens ({why})",
                hint=f"use --set data.max_length={limit} or less",
            ),
        )
    return tokenizer


# Tokenizers without a length limit report this huge sentinel as model_max_length.
_NO_LIMIT = 100_000


def length_limit(recipe: Recipe, tokenizer: Any) -> tuple[int | None, str]:
    """The longest sequence the recipe's model can read, and what sets it.

    The model's position embeddings decide (`max_position_embeddings` in its
    config.json); the tokenizer's `model_max_length` can lower it. A tokenizer's own
    limit alone is not enough: `bertkit tokenizer train` writes 512 whatever model
    it is later paired with. Models trained from scratch get positions for
    max_length, so only a pretrained model limits it.
    """
    import json

    from bertkit.models import resolve_model

    limits: list[tuple[int, str]] = []
    if recipe.needs_model_name and recipe.model.name:
        try:
            ref = resolve_model(recipe.model.name)
            file = Path(ref.location) / "config.json"
            config = json.loads(file.read_text(encoding="utf-8")) if ref.local else {}
        except (BertkitError, OSError, ValueError):
            config = {}
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int):
            limits.append((positions, f"its position embeddings: max_position_embeddings {positions}"))
    tokens = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokens, int) and tokens < _NO_LIMIT:
        limits.append((tokens, f"its tokenizer's model_max_length {tokens}"))
    if not limits:
        return None, ""
    return min(limits)


def _check_trackers(recipe: Recipe, report: CheckReport) -> None:
    """train.report_to: trackers the Trainer knows, and whose package is installed."""
    if not recipe.train.report_to:
        return
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    installed = set(get_available_reporting_integrations())
    for name in recipe.train.report_to:
        if name not in INTEGRATION_TO_CALLBACK:
            close = difflib.get_close_matches(name, list(INTEGRATION_TO_CALLBACK), n=1)
            report.add(
                "error",
                "report_to",
                RecipeError(
                    f"train.report_to: {name!r} is not a tracker the Transformers Trainer knows",
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + f"trackers: {', '.join(sorted(INTEGRATION_TO_CALLBACK))}",
                ),
            )
        elif name not in installed:
            report.add(
                "error",
                "report_to",
                RecipeError(
                    f"train.report_to: {name} is not installed",
                    hint=f"pip install {name.replace('_', '-')}, or remove it from train.report_to",
                ),
            )
