"""Tables the commands print at the end of their work."""

from __future__ import annotations

from pathlib import Path
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


# Binary metrics that score one class, the one with id 1 (scikit-learn's pos_label).
POSITIVE_CLASS_METRICS = ("f1", "roc_auc")


def metrics_table(
    metrics: dict[str, dict[str, float]], main: str | None, title: str, positive: str | None = None
) -> Table:
    """One column per split (validation, test, ...), one row per headline metric.

    `positive`: the class binary `f1` and `roc_auc` score (label id 1), named beside them.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    splits = list(metrics)
    for split in splits:
        table.add_column(split, justify="right")
    names: list[str] = []
    for split in splits:
        names += [n for n in metrics[split] if n not in names]
    for name in headline(names, main):
        label = name + (f" (positive: {positive})" if positive and name in POSITIVE_CLASS_METRICS else "")
        label = f"[bold]{label}[/bold]" if name == main else label
        table.add_row(label, *[_number(metrics[s].get(name)) for s in splits])
    return table


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def positive_class(model_dir: Path) -> str | None:
    """The class binary metrics score (id 1) of a two-class single-label model, else None."""
    import json

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = config.get("id2label") or {}
    single = config.get("problem_type") in (None, "single_label_classification")
    return names.get("1") if single and len(names) == 2 else None
