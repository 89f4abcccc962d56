"""The files `bertkit eval` leaves behind: metrics.json, report.md, plots and errors.jsonl.

Every file is written atomically (`bertkit.files`: a temporary file in the same folder,
then `os.replace`), and metrics.json is written last, so a report folder that holds a
metrics.json is complete. Matplotlib is imported inside the plotting functions with
the Agg backend, so this works on headless machines and never slows the CLI start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.files import atomic_write_json, atomic_write_text
from bertkit.reports import cell, markdown_table, pyplot, save_figure
from bertkit.tasks.classification.metrics import (
    PROBLEMS,
    class_probabilities,
    confusion,
    default_label_names,
    json_safe,
    per_class_report,
    predict_labels,
)


def _plot_confusion(matrix: list[list[int]], names: list[str], path: Path, title: str) -> Path:
    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    k = len(names)
    totals = counts.sum(axis=1, keepdims=True)
    # Colour by share of the true class, so small classes are as visible as large ones.
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    short = [n if len(n) <= 18 else n[:17] + "…" for n in names]
    side = min(max(4.0, 0.5 * k + 2.5), 14.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    try:
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        rotate = k > 6 or max(map(len, short), default=0) > 8
        tilt = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if rotate else {}
        ax.set_xticks(range(k), short, **tilt)
        ax.set_yticks(range(k), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        if k <= 30:  # beyond that, numbers would overlap; the colours still tell the story
            size = 10 if k <= 10 else 8 if k <= 20 else 6
            for i in range(k):
                for j in range(k):
                    colour = "white" if share[i, j] > 0.55 else "black"
                    ax.text(
                        j, i, f"{int(counts[i, j])}", ha="center", va="center", color=colour, fontsize=size
                    )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _error_records(
    problem: str,
    logits: np.ndarray,
    labels: np.ndarray,
    texts: list[str],
    names: list[str],
    threshold: float,
    limit: int,
) -> list[dict[str, Any]]:
    """The worst mistakes: most confident wrong predictions, or largest regression errors."""
    if problem == "regression":
        preds = predict_labels(logits, problem)
        truth = labels.astype(np.float64).reshape(-1)
        error = preds - truth
        order = np.argsort(-np.abs(error), kind="stable")[:limit]
        return [
            {"index": int(i), "text": texts[i], "label": truth[i], "predicted": preds[i], "error": error[i]}
            for i in order
        ]
    probs = class_probabilities(logits, problem)
    preds = predict_labels(logits, problem, threshold)
    if problem == "single":
        truth = labels.astype(int).reshape(-1)
        wrong = np.flatnonzero(preds != truth)
        confidence = probs[np.arange(len(preds)), preds]
    else:
        truth = (labels.astype(np.float64) >= 0.5).astype(int)
        mistakes = preds != truth
        wrong = np.flatnonzero(mistakes.any(axis=1))
        # How sure the model was of its surest mistake: p for a false label, 1 - p for a missed one.
        confidence = np.where(mistakes, np.where(preds == 1, probs, 1.0 - probs), 0.0).max(axis=1)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]

    def chosen(row: np.ndarray) -> list[str]:
        return [names[j] for j in np.flatnonzero(row)]

    records = []
    for i in order:
        record: dict[str, Any] = {"index": int(i), "text": texts[i]}
        if problem == "single":
            record.update(label=names[truth[i]], predicted=names[preds[i]])
        else:
            record.update(
                labels=chosen(truth[i]),
                predicted=chosen(preds[i]),
                missed=chosen(truth[i] & (1 - preds[i])),
                extra=chosen(preds[i] & (1 - truth[i])),
            )
        record["confidence"] = round(float(confidence[i]), 6)
        records.append(record)
    return records


def _regression_summary(logits: np.ndarray, labels: np.ndarray) -> str:
    preds = predict_labels(logits, "regression")
    truth = labels.astype(np.float64).reshape(-1)
    rows = [
        {"statistic": stat, "labels": float(fn(truth)), "predictions": float(fn(preds))}
        for stat, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
    ]
    return markdown_table(rows, ["statistic", "labels", "predictions"])


def write_eval_report(
    out_dir: Path,
    *,
    metrics: dict[str, Any],
    problem: str,
    label_names: list[str] | None,
    logits: np.ndarray,
    labels: np.ndarray,
    texts: list[str],
    threshold: float = 0.5,
    title: str,
    data_description: str,
    max_examples: int = 1000,
) -> dict[str, Path]:
    """Write an evaluation report folder.

    Files: report.md (readable summary), errors.jsonl (at most `max_examples` worst
    mistakes), confusion_matrix.png (single-label only) and metrics.json, written last:
    `{"title", "problem", "data", "n_examples", "labels", "threshold" (multi only), "metrics"}`.

    Returns:
        Paths by name: `metrics`, `report`, `errors` and, for single-label, `confusion_matrix`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    if len(logits) != n or len(texts) != n:
        raise ValueError(f"{len(logits)} predictions, {len(labels)} labels and {len(texts)} texts differ")
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, not {problem!r}")
    if problem == "regression":
        num_labels = 0
    else:
        num_labels = class_probabilities(logits, problem).shape[1] if n else len(label_names or [])
    names = list(label_names) if label_names else default_label_names(num_labels)
    if problem != "regression" and len(names) != num_labels:
        raise ValueError(f"{len(names)} label names for {num_labels} labels")
    paths: dict[str, Path] = {}

    md = _summary(title, data_description, n, problem, names, metrics, threshold)
    sections, plots = _class_sections(problem, logits, labels, names, threshold, out_dir, title)
    md += sections
    paths.update(plots)

    errors = (
        _error_records(problem, logits, labels, texts, names, threshold, max(max_examples, 0)) if n else []
    )
    what = "largest absolute errors" if problem == "regression" else "most confident mistakes first"
    md += ["", "## Errors", "", f"`errors.jsonl` holds {len(errors)} examples ({what})."]
    # json_safe: plain floats, and null for a NaN from a diverged model (NaN is not JSON).
    lines = "".join(json.dumps(json_safe(record), ensure_ascii=False) + "\n" for record in errors)
    paths["errors"] = atomic_write_text(out_dir / "errors.jsonl", lines)
    paths["report"] = atomic_write_text(out_dir / "report.md", "\n".join(md) + "\n")

    summary: dict[str, Any] = {
        "title": title,
        "problem": problem,
        "data": data_description,
        "n_examples": n,
        "labels": names or None,
    }
    if problem == "multi":
        summary["threshold"] = threshold
    summary["metrics"] = {k: v for k, v in json_safe(metrics).items() if v is not None}
    paths["metrics"] = atomic_write_json(out_dir / "metrics.json", summary)
    return paths


def _summary(
    title: str,
    data_description: str,
    n: int,
    problem: str,
    names: list[str],
    metrics: dict[str, Any],
    threshold: float,
) -> list[str]:
    """The report's opening lines: what was evaluated, and the headline metrics."""
    md = [
        f"# {cell(title)}",
        "",
        f"- Data: {cell(data_description)}",
        f"- Examples: {n}",
        f"- Task: {problem if problem == 'regression' else f'{problem}-label classification'}",
    ]
    if problem == "multi":
        md.append(f"- Decision threshold: {threshold:g}")
    if problem == "single" and len(names) == 2 and any(k in metrics for k in ("f1", "roc_auc")):
        md.append(f"- Positive class of `f1` and `roc_auc`: {cell(names[1])} (label id 1)")
    scores = [
        {"metric": k, "value": float(v)}
        for k, v in metrics.items()
        if "/" not in k and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    ]
    md += ["", "## Metrics", "", markdown_table(scores, ["metric", "value"]) if scores else "No metrics."]
    return md


def _class_sections(
    problem: str,
    logits: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    threshold: float,
    out_dir: Path,
    title: str,
) -> tuple[list[str], dict[str, Path]]:
    """Per-class scores (and the confusion matrix and its plot), or the regression summary."""
    md: list[str] = []
    paths: dict[str, Path] = {}
    n = len(labels)
    num_labels = len(names)
    columns = ["label", "precision", "recall", "f1", "support"]
    if problem == "single" and n:
        preds = predict_labels(logits, problem)
        truth = labels.astype(int).reshape(-1)
        matrix = confusion(preds, truth, num_labels)
        md += ["", "## Per class", "", markdown_table(per_class_report(preds, truth, names), columns)]
        corner = "true \\ predicted"
        rows = [
            {corner: name, **dict(zip(names, row, strict=True))}
            for name, row in zip(names, matrix, strict=True)
        ]
        md += [
            "",
            "## Confusion matrix",
            "",
            "Rows are true classes, columns predicted ones.",
            "",
            markdown_table(rows, [corner, *names]),
            "",
            "![confusion matrix](confusion_matrix.png)",
        ]
        paths["confusion_matrix"] = _plot_confusion(matrix, names, out_dir / "confusion_matrix.png", title)
    elif problem == "multi" and n:
        preds = predict_labels(logits, problem, threshold)
        truth = (labels.astype(np.float64) >= 0.5).astype(int)
        md += ["", "## Per label", "", markdown_table(per_class_report(preds, truth, names), columns)]
    elif problem == "regression" and n:
        md += ["", "## Predictions against labels", "", _regression_summary(logits, labels)]
    return md, paths
