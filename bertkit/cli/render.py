"""Tables the commands print at the end of their work."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# Averages that repeat what accuracy or the macro scores already say, for a summary.
_REDUNDANT = ("_micro", "_weighted", "runtime", "per_second", "epoch", "/")


def headline(names: list[str], main: str | None) -> list[str]:
    """The metric names worth a summary table, main metric first."""
    shown = [n for n in names if not any(part in n for part in _REDUNDANT) or n in ("f1_micro",)]
    if main in shown:
        shown.remove(main)
        shown.insert(0, main)
    return shown


def metrics_table(metrics: dict[str, dict[str, float]], main: str | None, title: str) -> Table:
    """One column per split (validation, test, ...), one row per headline metric."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    splits = list(metrics)
    for split in splits:
        table.add_column(split, justify="right")
    names: list[str] = []
    for split in splits:
        names += [n for n in metrics[split] if n not in names]
    for name in headline(names, main):
        label = f"[bold]{name}[/bold]" if name == main else name
        table.add_row(label, *[_number(metrics[s].get(name)) for s in splits])
    return table


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"
