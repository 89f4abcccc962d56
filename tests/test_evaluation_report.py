"""Evaluation report files: contents, ordering, atomicity and plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bertkit.reports import markdown_table, plot_training_curves
from bertkit.tasks.classification.metrics import compute_classification_metrics
from bertkit.tasks.classification.report import write_eval_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["negative", "neutral", "positive"]
# Six examples, three wrong, with the softmax probability of the wrong class: 5 (0.94), 1 (0.79), 4 (0.58).
LABELS = np.array([0, 1, 2, 2, 1, 0])
LOGITS = np.array(
    [
        [3.0, 0.0, 0.0],
        [0.0, 0.0, 2.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 4.0],
        [1.0, 0.0, 0.0],
        [0.0, 3.5, 0.0],
    ]
)
TEXTS = [f"text {i}" for i in range(6)]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def single_report(out_dir, **overrides):
    options = dict(
        metrics=compute_classification_metrics(LOGITS, LABELS, "single"),
        problem="single",
        label_names=NAMES,
        logits=LOGITS,
        labels=LABELS,
        texts=TEXTS,
        title="Sentiment on validation",
        data_description="data/valid.csv",
    )
    return write_eval_report(out_dir, **{**options, **overrides})


def test_single_label_report_files(tmp_path):
    out = tmp_path / "eval" / "validation"
    paths = single_report(out)
    assert set(paths) == {"metrics", "report", "errors", "confusion_matrix"}
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths.values())
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"

    summary = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    assert summary["n_examples"] == 6 and summary["problem"] == "single"
    assert summary["data"] == "data/valid.csv" and summary["labels"] == NAMES
    assert summary["metrics"]["accuracy"] == pytest.approx(0.5)

    report = paths["report"].read_text(encoding="utf-8")
    assert report.startswith("# Sentiment on validation")
    for name in NAMES:
        assert f"| {name} |" in report
    assert "| accuracy | 0.5000 |" in report
    # The confusion row for `positive`: both predicted positive.
    assert "| positive | 0 | 0 | 2 |" in report

    png = paths["confusion_matrix"].read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


def test_errors_sorted_by_confidence_and_capped(tmp_path):
    errors = read_jsonl(single_report(tmp_path / "all")["errors"])
    assert [e["index"] for e in errors] == [5, 1, 4]
    assert errors[0] == {
        "index": 5,
        "text": "text 5",
        "label": "negative",
        "predicted": "neutral",
        "confidence": pytest.approx(math.exp(3.5) / (math.exp(3.5) + 2), abs=1e-6),
    }
    confidences = [e["confidence"] for e in errors]
    assert confidences == sorted(confidences, reverse=True)
    capped = read_jsonl(single_report(tmp_path / "capped", max_examples=2)["errors"])
    assert [e["index"] for e in capped] == [5, 1]
    assert "holds 2 examples" in (tmp_path / "capped" / "report.md").read_text(encoding="utf-8")


def test_multi_label_report(tmp_path):
    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=float)
    logits = np.array([[2.0, -2.0, 1.5], [-1.0, 3.0, 0.5], [2.0, -0.2, -3.0]])
    names = ["sport", "politics", "tech"]
    metrics = compute_classification_metrics(logits, labels, "multi", label_names=names)
    paths = write_eval_report(
        tmp_path,
        metrics=metrics,
        problem="multi",
        label_names=names,
        logits=logits,
        labels=labels,
        texts=["a", "b", "c"],
        title="Topics",
        data_description="topics.jsonl",
    )
    assert "confusion_matrix" not in paths
    errors = read_jsonl(paths["errors"])
    # Row 1 wrongly adds tech (p 0.62); row 2 misses politics (p 0.45, so 0.55 sure it is absent).
    assert [e["index"] for e in errors] == [1, 2]
    assert errors[0]["labels"] == ["politics"] and errors[0]["predicted"] == ["politics", "tech"]
    assert errors[0]["extra"] == ["tech"] and errors[1]["missed"] == ["politics"]
    report = paths["report"].read_text(encoding="utf-8")
    assert "## Per label" in report and "| tech |" in report
    assert "f1/tech" not in report.split("## Per label")[0], "per-label scores belong in their own table"
    summary = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    assert summary["threshold"] == 0.5 and summary["metrics"]["f1/tech"] == pytest.approx(2 / 3)


def test_regression_report_lists_largest_errors(tmp_path):
    labels = np.array([1.0, 2.0, 3.0, 4.0])
    preds = np.array([1.1, 3.0, 2.5, 4.0])
    paths = write_eval_report(
        tmp_path,
        metrics={"mse": np.float64(0.315), "pearson": float("nan")},
        problem="regression",
        label_names=None,
        logits=preds,
        labels=labels,
        texts=list("abcd"),
        title="Similarity",
        data_description="sts.csv",
        max_examples=3,
    )
    assert "confusion_matrix" not in paths
    errors = read_jsonl(paths["errors"])
    assert [e["index"] for e in errors] == [1, 2, 0]
    assert errors[0]["error"] == pytest.approx(1.0) and errors[1]["error"] == pytest.approx(-0.5)
    summary = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    assert summary["metrics"] == {"mse": 0.315}  # NaN is left out, numpy types become floats
    assert "## Predictions against labels" in paths["report"].read_text(encoding="utf-8")


def test_mismatched_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="texts"):
        single_report(tmp_path, texts=TEXTS[:5])
    with pytest.raises(ValueError, match="label names"):
        single_report(tmp_path, label_names=["a", "b"])


def test_markdown_table_formats_numbers():
    table = markdown_table([{"name": "a|b", "score": 0.123456, "n": 3}], ["name", "score", "n"])
    assert table.splitlines() == ["| name | score | n |", "|---|---:|---:|", "| a\\|b | 0.1235 | 3 |"]


def test_training_curves(tmp_path):
    assert plot_training_curves([], tmp_path / "empty.png") is None
    bookkeeping = [{"train_runtime": 3.0, "train_loss": 0.4, "step": 10}, {"eval_runtime": 1.0, "step": 10}]
    assert plot_training_curves(bookkeeping, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()

    history = [
        {"loss": 1.0 / step, "learning_rate": 1e-5, "step": step, "epoch": step / 4} for step in range(1, 9)
    ]
    history += [
        {
            "eval_loss": 0.9,
            "eval_accuracy": 0.6,
            "eval_f1/neg": 0.5,
            "eval_runtime": 0.1,
            "step": 4,
            "epoch": 1.0,
        },
        {
            "eval_loss": 0.7,
            "eval_accuracy": 0.8,
            "eval_f1/neg": 0.7,
            "eval_runtime": 0.1,
            "step": 8,
            "epoch": 2.0,
        },
    ]
    path = plot_training_curves(history, tmp_path / "plots" / "training.png")
    assert path == tmp_path / "plots" / "training.png"
    assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 1000
    eval_only = plot_training_curves(history[-2:], tmp_path / "eval_only.png")
    assert eval_only is not None and eval_only.read_bytes().startswith(PNG_MAGIC)
