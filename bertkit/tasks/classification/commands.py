"""`bertkit eval` and `bertkit predict` on a classifier: what they run and what they show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.errors import UsageError
from bertkit.tasks.base import Outcome


def evaluate(model: Path | None, options: dict[str, Any]) -> Outcome:
    from bertkit.tasks.classification.evaluate import evaluate_classifier

    result = evaluate_classifier(
        model,
        data=options.get("data"),
        split=options.get("split"),
        text=options.get("text-column"),
        text_pair=options.get("text-pair"),
        label=options.get("label-column"),
        limit=options.get("limit"),
        batch_size=options.get("batch-size"),
        output=options.get("output"),
        extra_metrics=options.get("metric"),
        device=options.get("device"),
        precision=options.get("precision", "auto"),
    )
    return Outcome(
        metrics=result.metrics,
        main_metric=result.main_metric,
        title=f"{result.data}: {result.n_examples:,} examples",
        report_dir=result.report_dir,
        data=result.data,
        examples=result.n_examples,
        positive=result.positive,
    )


def predict(model: Path | None, texts: list[str], options: dict[str, Any]) -> None:
    """Predict texts given as arguments (a table, or JSON) or a whole file (streamed)."""
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.classification.backends import load_backend_classifier

    classifier = load_backend_classifier(
        model,
        backend=options.get("backend", "torch"),
        quantize=options.get("quantize"),
        device=options.get("device"),
        precision=options.get("precision", "auto"),
    )
    batch_size = options.get("batch-size") or DEFAULT_INFERENCE_BATCH[classifier.device]
    top_k, threshold = options.get("top-k", 1), options.get("threshold")
    problem = classifier.labels.problem
    if top_k > 1 and problem != "single":
        raise UsageError(
            f"--top-k: ranks the labels of single-label models; this one is {problem}",
            hint="drop --top-k" + (" (every label over --threshold is listed)" if problem == "multi" else ""),
        )
    if threshold is not None and problem != "multi":
        raise UsageError(f"--threshold: applies to multi-label models; this one is {problem}", hint="drop it")
    if threshold is not None:
        classifier.threshold = threshold
    if texts:
        _predict_texts(classifier, texts, top_k, batch_size, options)
    else:
        _predict_file(classifier, options, top_k, batch_size)


def _predict_texts(
    classifier: Any, texts: list[str], top_k: int, batch_size: int, options: dict[str, Any]
) -> None:
    from rich.table import Table

    from bertkit.console import err, out
    from bertkit.tasks.classification.predict import predict_texts, write_predictions

    results = predict_texts(classifier, texts, top_k=top_k, batch_size=batch_size)
    records = [{"text": t, **r} for t, r in zip(texts, results, strict=True)]
    if options.get("output") is not None:
        write_predictions(classifier, records, options["output"])
        err.print(f"{len(texts)} prediction{'s' if len(texts) > 1 else ''} -> {options['output']}")
        return
    if options.get("json"):
        out.print_json(json.dumps(records))
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("text", overflow="fold")
    problem = classifier.labels.problem
    if problem == "regression":
        table.add_column("value", justify="right")
    else:
        table.add_column("label" if problem == "single" else "labels", style="bold")
        if problem == "single":
            table.add_column("score", justify="right")
    for text, result in zip(texts, results, strict=True):
        if result.get("probabilities", True) is None or result.get("predicted_value", 0) is None:
            table.add_row(text, "-", *([""] if problem == "single" else []))  # no text: no prediction
        elif problem == "regression":
            table.add_row(text, f"{result['predicted_value']:.4f}")
        elif problem == "multi":
            table.add_row(text, ", ".join(result["predicted_labels"]) or "-")
        else:
            shown = result["predicted_label"]
            if top_k > 1:
                shown = ", ".join(f"{c['label']} {c['score']:.3f}" for c in result["top_k"])
            table.add_row(text, shown, f"{result['predicted_score']:.4f}")
    out.print(table)


def _predict_file(classifier: Any, options: dict[str, Any], top_k: int, batch_size: int) -> None:
    from bertkit.predicting import predict_file_command
    from bertkit.tasks.classification.predict import predict_file

    settings = {"pair_column": options.get("text-pair"), "top_k": top_k, "batch_size": batch_size}
    predict_file_command(classifier, options, predict_file, **settings)
