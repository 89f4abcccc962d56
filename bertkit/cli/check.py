"""`bertkit check`: read a recipe's data and report problems before any compute is spent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import JsonOption, RecipeOption, SetOption

if TYPE_CHECKING:
    from rich.table import Table

    from bertkit.checks import CheckReport, SplitStats

_SHOWN_LABELS = 6  # label counts listed in a table cell before "+N more"


@app.command("check")
def check(
    recipe: RecipeOption,
    overrides: SetOption = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Check only the first N rows of each split.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the data a recipe points to: rows, labels, duplicates, leakage, token lengths.

    Errors (training would fail or be meaningless) exit with code 1; warnings do not.
    finetune and pretrain run the same checks before loading the model.

    \b
    Examples:
      bertkit check --recipe quickstart
      bertkit check --recipe my.yaml --set data.max_length=256
      bertkit check --recipe my.yaml --json > check.json
    """
    import json

    from bertkit.checks import check_recipe
    from bertkit.console import out
    from bertkit.recipe import load_recipe

    loaded = load_recipe(recipe, overrides or [])
    _quiet()
    report = check_recipe(loaded, limit=limit)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        render_report(report)
    if report.errors:
        raise typer.Exit(1)


def _quiet() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()


def render_report(report: CheckReport) -> None:
    """The split table, then every finding (errors first) with its hint, then notes."""
    from rich.markup import escape

    from bertkit.console import out

    tokenizer = f", tokens by {report.tokenizer}" if report.tokenizer else ""
    title = f"{report.recipe}: {report.task}, max_length {report.max_length}{tokenizer}"
    if report.splits:
        out.print(_table(report, title))
        for stats in report.splits.values():
            out.print(_source_line(stats))
    else:
        out.print(escape(title))
    for finding in sorted(report.findings, key=lambda f: f.level != "error"):
        colour = "red" if finding.level == "error" else "yellow"
        out.print(
            f"[{colour}]{finding.level}[/{colour}] [dim]\\[{finding.code}][/dim] {escape(finding.message)}"
        )
        if finding.hint:
            out.print(f"  [dim]hint: {escape(finding.hint)}[/dim]")
    for line in report.notes:
        out.print(f"[dim]· {escape(line)}[/dim]")
    errors, warnings = len(report.errors), len(report.warnings)
    if errors:
        out.print(
            f"[bold red]{_count(errors, 'error')}[/bold red], {_count(warnings, 'warning')}: fix the errors"
        )
    elif warnings:
        out.print(f"[bold]no errors[/bold], {_count(warnings, 'warning')}")
    else:
        out.print("[bold green]no problems found[/bold green]")


def _table(report: CheckReport, title: str) -> Table:
    """One row per split; a column only where some split has the figure (tasks differ).

    The labels go on a line of their own under the table (`_source_line`): as a column
    they are the widest cell, and a narrow terminal would drop them.
    """
    from rich import box
    from rich.table import Table

    splits = list(report.splits.values())
    sequences = any(stats.sequences for stats in splits)

    def lengths(stats: SplitStats) -> str:
        tokens = stats.tokens
        return "" if tokens is None else f"{tokens.p50}/{tokens.p90}/{tokens.max}"

    def truncated(stats: SplitStats) -> str:
        tokens = stats.tokens
        if tokens is None or stats.windowed is not None:  # what is windowed is never truncated
            return ""
        return _share(tokens.truncated, tokens.truncated_share)

    candidates = [
        ("split", lambda stats: stats.split),
        (f"{report.unit}s", lambda stats: f"{stats.used:,}"),
        ("empty", lambda stats: _n(stats.empty_texts)),
        ("dups", lambda stats: _n(stats.duplicates)),
        ("in train", lambda stats: _n(stats.in_train)),
        ("tokens", lambda stats: _n((stats.sequences or {}).get("corpus_tokens"))),
        ("sequences", lambda stats: _n((stats.sequences or {}).get("sequences"))),
        ("tokens p50/p90/max", lengths),
        ("truncated", truncated),
        ("windowed", lambda stats: _n(stats.windowed)),
    ]
    shown = [
        (name, cell)
        for name, cell in candidates
        if name in ("split", f"{report.unit}s")
        or (name == "tokens p50/p90/max" and not sequences and any(cell(s) for s in splits))
        or (name != "tokens p50/p90/max" and any(cell(s) for s in splits))
    ]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, _ in shown:
        table.add_column(name, justify="left" if name == "split" else "right", no_wrap=True)
    for stats in splits:
        table.add_row(*(cell(stats) for _, cell in shown))
    return table


def _source_line(stats: SplitStats) -> str:
    from rich.markup import escape

    used = f" ({stats.used:,} of {stats.rows:,} used)" if stats.used != stats.rows else ""
    labels = _labels(stats)
    labels = f"\n  labels: {labels}" if labels else ""
    return f"[dim]{stats.split}: {escape(stats.source)}{used}[/dim]{labels}"


def _labels(stats: SplitStats) -> str:
    from rich.markup import escape

    if stats.label_range:
        r = stats.label_range
        return f"min {r['min']:g}, mean {r['mean']:g}, max {r['max']:g}"
    if not stats.labels:
        return ""
    items = list(stats.labels.items())
    shown = ", ".join(f"{escape(name)}: {n:,}" for name, n in items[:_SHOWN_LABELS])
    return shown + (
        f", +{len(items) - _SHOWN_LABELS} more (--json lists all)" if len(items) > _SHOWN_LABELS else ""
    )


def _share(count: int, share: float) -> str:
    if count and share < 0.001:
        return f"{count:,} (<0.1%)"  # a few long texts: say so rather than print 0.0%
    return f"{share:.1%}"


def _n(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
