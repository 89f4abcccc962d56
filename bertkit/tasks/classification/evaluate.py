"""Evaluate a trained classifier on labelled data and write a report folder.

`bertkit eval` with no arguments evaluates the latest run on its recipe's
validation data (or test data with `--split test`); any run or Hugging Face model
folder and any labelled file work too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.console import note
from bertkit.errors import DataError, UsageError
from bertkit.files import check_writable_folder
from bertkit.io.reading import Table
from bertkit.recipe.base import DataSource
from bertkit.runs import eval_report_dir
from bertkit.tasks.classification.data import check_columns, read_source, table_texts
from bertkit.tasks.classification.labels import ids_for_names
from bertkit.tasks.classification.recipe import ClassificationData as DataSection


@dataclass
class EvalResult:
    """Metrics of one evaluation and where its report went."""

    metrics: dict[str, float]
    main_metric: str | None
    n_examples: int
    data: str
    model: Path
    report_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    positive: str | None = None  # the class binary f1 and roc_auc score


def evaluate_classifier(
    model: Path | None = None,
    *,
    data: Path | None = None,
    split: str | None = None,
    text: list[str] | None = None,
    text_pair: str | None = None,
    label: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    output: Path | None = None,
    extra_metrics: list[str] | None = None,
    root: Path = Path("runs"),
    device: str | None = None,
    precision: str = "auto",
) -> EvalResult:
    """Evaluate a classifier and write metrics.json, report.md, plots and errors.jsonl.

    Args:
        model: run directory or model folder; default the latest run under `root`.
        data: a labelled file; default the run recipe's `split` data.
        split: validation or test (with a run's recipe); default validation, else test.
        text, text_pair, label: column names; default the run recipe's, else text/label.
        limit: evaluate only the first N rows.
        batch_size: examples per forward pass; default 64 on CPU, 256 on a GPU.
        output: report folder; default `<run>/eval/<data>` or `eval/<model>-<data>`.
        extra_metrics: names from the `evaluate` library (needs the Hub).
        root: where runs and `latest` live.
        device: cpu, cuda or mps.
        precision: auto, fp32, bf16 or fp16 (see `inference.load_classifier`).

    Raises:
        BertkitError: no model or data, missing columns, labels the model does not know.
    """
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.metrics import main_metric
    from bertkit.tasks.classification.report import write_eval_report

    if output is not None:
        check_writable_folder(output, "--output")
    classifier = load_classifier(model, root=root, device=device, precision=precision)
    batch_size = batch_size or DEFAULT_INFERENCE_BATCH[classifier.device]
    rows = _labelled_rows(classifier, data, split, text, text_pair, label, limit)
    report_dir = output or _report_dir(classifier, rows.table.name, rows.split)
    check_writable_folder(report_dir, "--output")  # before the model runs over the data
    logits = classifier.logits(rows.texts, rows.pairs, batch_size=batch_size)
    metrics, labels = _score(classifier, logits, rows.targets, extra_metrics or [])
    spec, table = classifier.labels, rows.table
    texts = rows.texts
    if rows.pairs is not None:
        texts = [f"{a} [SEP] {b}" for a, b in zip(rows.texts, rows.pairs, strict=True)]
    files = write_eval_report(
        report_dir,
        metrics=metrics,
        problem=spec.problem,
        label_names=list(spec.names) or None,
        logits=logits,
        labels=labels,
        texts=texts,
        threshold=classifier.threshold,
        title=f"Evaluation of {classifier.run.path.name if classifier.run else classifier.source}",
        data_description=f"{table.name} ({len(table):,} rows)" + "".join(f". {n}" for n in rows.notes),
    )
    return EvalResult(
        metrics=metrics,
        main_metric=main_metric(spec.problem, spec.num_labels)[0],
        n_examples=len(table),
        data=table.name,
        model=classifier.source,
        report_dir=report_dir,
        files=files,
        positive=spec.names[1] if spec.problem == "single" and len(spec.names) == 2 else None,
    )


@dataclass
class _Rows:
    """Labelled rows to evaluate on, read and checked against the model."""

    table: Table
    split: str
    texts: list[str]
    pairs: list[str] | None
    targets: list[Any]
    notes: list[str]


def _labelled_rows(
    classifier: Any,
    data: Path | None,
    split: str | None,
    text: list[str] | None,
    text_pair: str | None,
    label: str | None,
    limit: int | None,
) -> _Rows:
    """Read the evaluation data, check its columns and pairs, encode its labels for the model."""
    from bertkit.tasks.classification.inference import check_pairs

    recipe = classifier.recipe
    columns = _columns(recipe.data if recipe else None, text, text_pair, label)
    source, split_name = _source(recipe.data if recipe else None, data, split)
    table = read_source(source, columns.text_columns[0]).head(limit)
    check_columns(table, columns, need_label=True, options=True)
    texts, pairs = table_texts(table, columns)
    check_pairs(classifier, pairs is not None, table.name)
    spec = classifier.labels
    targets = spec.encode(table, columns.label)
    notes = []
    as_ids = ids_for_names(spec, table, columns.label)
    if as_ids:
        coding = ", ".join(f"{i} = {name}" for i, name in as_ids.items())
        notes.append(
            f"{table.name}: labels {', '.join(as_ids)} are read as the model's class ids ({coding}); "
            "if the file codes them otherwise, the scores are wrong: give label names instead"
        )
    for line in notes:
        note(line)
    return _Rows(table, split_name, texts, pairs, targets, notes)


def _score(
    classifier: Any, logits: Any, targets: list[Any], extra_metrics: list[str]
) -> tuple[dict[str, float], Any]:
    """The metrics of the model's logits against the targets, and the targets as an array."""
    import numpy as np

    from bertkit.tasks.classification.metrics import compute_classification_metrics, evaluate_library_metric

    spec = classifier.labels
    labels = np.asarray(targets, dtype=np.float32 if spec.problem != "single" else np.int64)
    metrics = compute_classification_metrics(
        logits, labels, spec.problem, threshold=classifier.threshold, label_names=list(spec.names) or None
    )
    for name in extra_metrics:
        predicted = logits.argmax(axis=1) if spec.problem == "single" else logits.reshape(-1)
        metrics.update(evaluate_library_metric(name, predicted.tolist(), labels.tolist()))
    return metrics, labels


def _columns(
    recipe_data: DataSection | None, text: list[str] | None, text_pair: str | None, label: str | None
) -> DataSection:
    """Column settings: flags first, then the run's recipe, then text/label."""
    base = recipe_data or DataSection()
    updates: dict[str, Any] = {}
    if text:
        updates["text"] = text[0] if len(text) == 1 else text
    if text_pair:
        updates["text_pair"] = text_pair
    if label:
        updates["label"] = label
    return base.model_copy(update=updates)


def _source(recipe_data: DataSection | None, data: Path | None, split: str | None) -> tuple[DataSource, str]:
    if data is not None:
        return DataSource(path=str(data)), data.stem
    if recipe_data is None:
        raise UsageError(
            "no data to evaluate on: this model folder has no bertkit recipe",
            hint="give a labelled file with --data FILE",
        )
    order = [split] if split else ["validation", "test"]
    for name in order:
        source = getattr(recipe_data, name, None)
        if source is not None:
            return source, name
    if recipe_data.validation_split and (split in (None, "validation")):
        raise DataError(
            "the run's validation data was carved from train (data.validation_split); "
            "it is reported in the run's metrics.json",
            hint="evaluate on other data with --data FILE, or --split test if the recipe has test data",
        )
    raise DataError(
        f"the run's recipe has no {' or '.join(order)} data",
        hint="give a labelled file with --data FILE",
    )


def _report_dir(classifier: Any, data_name: str, split: str) -> Path:
    return eval_report_dir(classifier.run, classifier.source.name, data_name, split)
