"""What evaluation reports and run directories are drawn with: Markdown tables and plots.

Matplotlib is imported inside the plotting functions with the Agg backend, so this
works on headless machines and never slows the CLI start; every file is written
atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.files import atomic_write_bytes

# Trainer log keys that are bookkeeping, not model quality.
_NOT_METRICS = ("runtime", "_per_second", "flos", "preparation_time")
# Preferred order of eval metrics in the training-curve plot; others follow, up to six.
_CURVE_ORDER = ("accuracy", "f1_macro", "f1_micro", "f1", "mcc", "roc_auc", "subset_accuracy", "pearson")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())


def cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    if isinstance(value, np.integer):
        value = int(value)
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of `rows` over `columns`; floats to 4 decimals, numbers right-aligned."""

    def numeric(column: str) -> bool:
        values = [row.get(column) for row in rows]
        return bool(rows) and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values
        )

    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join("---:" if numeric(c) else "---" for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _curve_metrics(evals: list[dict[str, Any]]) -> list[str]:
    found = {
        k.removeprefix("eval_")
        for e in evals
        for k, v in e.items()
        if k.startswith("eval_")
        and k != "eval_loss"
        and "/" not in k
        and isinstance(v, (int, float))
        and not k.endswith(_NOT_METRICS)
    }
    ordered = [m for m in _CURVE_ORDER if m in found] + sorted(found.difference(_CURVE_ORDER))
    return ordered[:6]


def plot_training_curves(log_history: list[dict[str, Any]], path: Path) -> Path | None:
    """Plot loss (train and eval) and the main eval metrics from a Trainer's `state.log_history`.

    Returns:
        The PNG path, or None when the history holds nothing to plot.
    """
    x_key = "step" if any("step" in e for e in log_history) else "epoch"
    entries = [e for e in log_history if isinstance(e.get(x_key), (int, float))]

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(e[x_key], e[key]) for e in entries if isinstance(e.get(key), (int, float))]
        return [p[0] for p in points], [p[1] for p in points]

    train, evals = series("loss"), series("eval_loss")
    names = _curve_metrics([e for e in entries if any(k.startswith("eval_") for k in e)])
    panels = (["loss"] if train[0] or evals[0] else []) + (["metrics"] if names else [])
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7.5, 0.5 + 3.2 * len(panels)), sharex=True, squeeze=False
    )
    try:
        for ax, panel in zip(axes[:, 0], panels, strict=True):
            if panel == "loss":
                if train[0]:
                    ax.plot(*train, label="train loss", marker="." if len(train[0]) < 40 else None)
                if evals[0]:
                    ax.plot(*evals, label="eval loss", marker="o")
            else:
                for name in names:
                    ax.plot(*series(f"eval_{name}"), label=name, marker="o")
            ax.set_ylabel("loss" if panel == "loss" else "eval metric")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel(x_key)
        fig.tight_layout()
        return save_figure(fig, Path(path))
    finally:
        plt.close(fig)
