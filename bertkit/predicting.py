"""Predicting over a file, as every task's `bertkit predict --input` does: progress, then a summary.

The task streams the file through its model (`predict_file` of each task package);
this draws the progress bar while it runs and says afterwards what was read,
kept, skipped and written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bertkit.console import err, note, plural, warn
from bertkit.io.sinks import PredictStats, count_rows

_LISTED = 20  # skipped rows named one by one before "and N more"


def with_progress(
    source: Path,
    input_format: str | None,
    output: Path | None,
    run: Callable[[Callable[[int], None]], PredictStats],
) -> PredictStats:
    """Run a file prediction with a progress bar on stderr (when it is a terminal or output goes to a file).

    Args:
        source: the input file (its lines are counted for the bar's total).
        input_format: the declared input format, if any.
        output: the output file; None writes to stdout (the bar then stays off a pipe).
        run: the prediction, given a callback that takes the rows done so far.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = count_rows(source, input_format)
    columns = [TextColumn("[bold]predicting[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(
        *columns, console=err, transient=True, disable=output is None and not err.is_terminal
    ) as bar:
        task = bar.add_task("predict", total=total)
        return run(lambda done: bar.update(task, completed=done))


def report(stats: PredictStats, how: str, output: Path | None, unit: str = "row") -> None:
    """Say what a file prediction did: decisions, rows without text, skipped rows, speed."""
    for line in stats.notes:
        note(line)
    if stats.empty:
        warn(
            f"{plural(stats.empty, unit)} had no text (blank lines or empty values): "
            "kept in the output with empty predictions"
        )
    for message in stats.skipped[:_LISTED]:
        warn(f"skipped {message}")
    if len(stats.skipped) > _LISTED:
        warn(f"... and {len(stats.skipped) - _LISTED} more skipped {unit}s")
    where = f" -> {stats.output}" if output else ""
    skipped = f", {len(stats.skipped)} skipped" if stats.skipped else ""
    speed = f"{stats.rows_per_second:,.0f} {unit}s/s, {how}"
    err.print(f"{plural(stats.rows, unit)} in {stats.seconds:.1f}s ({speed}){where}{skipped}")


def predict_file_command(
    predictor: Any, options: dict[str, Any], predict_file: Callable[..., PredictStats], **settings: Any
) -> None:
    """`bertkit predict --input FILE` for any task: stream the file through `predict_file`, then report.

    `predict_file(predictor, source, output, text_column=, input_format=, skip_errors=,
    on_progress=, **settings)` is the task's streaming prediction.
    """
    from bertkit.export.runtime import describe_backend

    source, output = options["input"], options.get("output")
    stats = with_progress(
        source,
        options.get("input-format"),
        output,
        lambda progress: predict_file(
            predictor,
            source,
            output,
            text_column=options.get("text-column") or "text",
            input_format=options.get("input-format"),
            skip_errors=options.get("on-error") == "skip",
            on_progress=progress,
            **settings,
        ),
    )
    report(stats, describe_backend(predictor), output)
