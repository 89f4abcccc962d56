"""Predict with a trained classifier: texts from the command line, or files of any size.

Files are streamed: rows are read, predicted and written a window of `SORT_WINDOW`
rows at a time (sorted by length inside it), so memory stays flat on millions of
lines. Output is written to a temporary file and renamed at the end, so a failed
run never leaves a partial predictions file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import DataError
from bertkit.io import sinks
from bertkit.io.reading import iter_rows
from bertkit.io.sinks import PredictStats, Writer, atomic_output, batched, write_records
from bertkit.tasks.classification.inference import Classifier, check_pairs, sort_window


def prediction_fields(classifier: Classifier, logits: np.ndarray, top_k: int = 1) -> list[dict[str, Any]]:
    """Turn logits into one result mapping per example.

    single: predicted_label, predicted_score, probabilities (and top_k when k > 1);
    multi: predicted_labels (probability >= threshold), probabilities;
    regression: predicted_value.
    """
    from bertkit.tasks.classification.metrics import class_probabilities

    spec = classifier.labels
    if spec.problem == "regression":
        return [{"predicted_value": float(v)} for v in logits.reshape(-1)]
    probs = class_probabilities(logits, spec.problem)
    names = spec.names
    results = []
    for row in probs:
        rounded = {name: round(float(p), 6) for name, p in zip(names, row, strict=True)}
        if spec.problem == "multi":
            chosen = [n for n, p in zip(names, row, strict=True) if p >= classifier.threshold]
            results.append({"predicted_labels": chosen, "probabilities": rounded})
            continue
        best = int(row.argmax())
        result: dict[str, Any] = {
            "predicted_label": names[best],
            "predicted_score": round(float(row[best]), 6),
            "probabilities": rounded,
        }
        if top_k > 1:
            order = np.argsort(-row)[:top_k]
            result["top_k"] = [{"label": names[i], "score": round(float(row[i]), 6)} for i in order]
        results.append(result)
    return results


def predict_texts(
    classifier: Classifier,
    texts: list[str],
    pairs: list[str] | None = None,
    *,
    top_k: int = 1,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Predictions for a list of texts (and pairs), in input order."""
    check_pairs(classifier, pairs is not None, "input")
    return predict_chunk(classifier, texts, pairs, top_k=top_k, batch_size=batch_size)


def predict_chunk(
    classifier: Classifier,
    texts: list[str],
    pairs: list[str] | None,
    *,
    top_k: int = 1,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Predictions in input order; a text that is empty (or only spaces) gets empty fields.

    A model asked about no text answers anyway, with the label it gives silence;
    bertkit keeps the row (so outputs line up with inputs) and leaves its
    prediction empty (null in JSON, blank cells in CSV) instead.
    """
    keep = [i for i, text in enumerate(texts) if text.strip()]
    results = [empty_fields(classifier, top_k) for _ in texts]
    if keep:
        kept_pairs = [pairs[i] for i in keep] if pairs is not None else None
        logits = classifier.logits(
            [texts[i] for i in keep], kept_pairs, batch_size=batch_size, on_batch=on_batch
        )
        for i, result in zip(keep, prediction_fields(classifier, logits, top_k), strict=True):
            results[i] = result
    if on_batch is not None and len(keep) < len(texts):
        on_batch(len(texts) - len(keep))
    return results


def empty_fields(classifier: Classifier, top_k: int = 1) -> dict[str, Any]:
    """The prediction fields of a row that has no text: the usual keys, every value None."""
    problem = classifier.labels.problem
    if problem == "regression":
        return {"predicted_value": None}
    if problem == "multi":
        return {"predicted_labels": None, "probabilities": None}
    return {"predicted_label": None, "predicted_score": None, "probabilities": None} | (
        {"top_k": None} if top_k > 1 else {}
    )


def predict_file(
    classifier: Classifier,
    source: Path,
    output: Path | None,
    *,
    text_column: str = "text",
    pair_column: str | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    top_k: int = 1,
    batch_size: int = 64,
    skip_errors: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> PredictStats:
    """Predict every row of a file (or `-` for stdin) and write the results, streaming.

    Input columns pass through; prediction fields are added (see `prediction_fields`).

    Args:
        classifier: the model.
        source: input file (txt: one text per line; csv/tsv/jsonl: `text_column`), or `-`.
        output: output file (.jsonl or .csv/.tsv), or None for JSONL on stdout.
        text_column: the input column holding the text.
        pair_column: the input column holding the second text (sentence-pair models).
        input_format, output_format: override the formats taken from extensions.
        top_k: also list the k most likely labels (single-label models).
        batch_size: texts per forward pass.
        skip_errors: skip malformed rows and report them, instead of stopping.
        on_progress: called with the number of rows predicted so far, after each batch.

    Raises:
        DataError: a malformed row (without skip_errors), a missing column, or pairs
            that do not match the model.
    """
    check_pairs(classifier, pair_column is not None, str(source))
    out_format = sinks.output_format(output, output_format)
    stats = PredictStats(output=str(output) if output else "-")

    def report(error: DataError) -> None:
        if not skip_errors:
            raise error
        stats.skipped.append(error.message)

    rows = _rows_with_text(
        iter_rows(
            source,
            input_format,
            text_column=text_column,
            on_error=report,
            notes=stats.notes,
            blank_lines=True,
        ),
        source,
        text_column,
        pair_column,
        report,
    )
    predicted = 0

    def on_batch(count: int) -> None:
        nonlocal predicted
        predicted += count
        if on_progress is not None:
            on_progress(predicted)

    start = time.perf_counter()
    with atomic_output(output) as handle:
        writer = Writer(handle, out_format, partial(flatten, names=classifier.labels.names))
        for chunk in batched(rows, sort_window(batch_size)):
            texts = [_as_text(record[text_column]) for record in chunk]
            pairs = [_as_text(record[pair_column]) for record in chunk] if pair_column else None
            results = predict_chunk(
                classifier, texts, pairs, top_k=top_k, batch_size=batch_size, on_batch=on_batch
            )
            for record, result in zip(chunk, results, strict=True):
                writer.write({**record, **result})
            stats.rows += len(chunk)
            stats.empty += sum(not text.strip() for text in texts)
    stats.seconds = time.perf_counter() - start
    return stats


def write_predictions(
    classifier: Classifier, records: list[dict[str, Any]], output: Path, output_format: str | None = None
) -> None:
    """Write finished prediction records to a file (JSONL, CSV or TSV), atomically."""
    write_records(records, output, output_format, partial(flatten, names=classifier.labels.names))


def _rows_with_text(
    rows: Iterator[tuple[int | None, dict[str, Any]]],
    source: Path,
    text_column: str,
    pair_column: str | None,
    report: Callable[[DataError], None],
) -> Iterator[dict[str, Any]]:
    """Records that have the needed columns; the first record decides if a column is missing."""
    first = True
    for line, record in rows:
        where = f"{source}:{line}" if line is not None else str(source)
        if first:
            _refuse_clashing_columns(record, where)
        for column in (text_column, pair_column):
            if column is None or column in record:
                continue
            if first:
                raise DataError(
                    f"{where}: no column {column!r}; columns are: {', '.join(record)}",
                    hint="name the text column with --text-column (and --text-pair for pairs)",
                )
            report(DataError(f"{where}: the row has no {column!r} value", hint="fix or remove the row"))
            break
        else:
            first = False
            yield record


# The fields predictions add to each row (and CSV's flattened prob_<label> columns).
PREDICTION_FIELDS = (
    "predicted_label",
    "predicted_score",
    "predicted_labels",
    "predicted_value",
    "probabilities",
    "top_k",
)


def _refuse_clashing_columns(record: dict[str, Any], where: str) -> None:
    """Refuse input columns the predictions would overwrite: the user's data would be lost."""
    clash = [key for key in record if key in PREDICTION_FIELDS or key.startswith("prob_")]
    if clash:
        raise DataError(
            f"{where}: the input has a column {clash[0]!r}, which the predictions would overwrite",
            hint=f"rename that column in the input (bertkit writes {', '.join(PREDICTION_FIELDS[:2])}, ...)",
        )


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def flatten(record: dict[str, Any], names: tuple[str, ...] = ()) -> dict[str, Any]:
    """CSV cells of a classifier's record: a prob_<label> column per label, label sets joined by `|`."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "probabilities":
            flat.update({f"prob_{name}": p for name, p in (value or dict.fromkeys(names)).items()})
        elif key == "predicted_labels":
            flat[key] = "|".join(value) if value is not None else None
        elif isinstance(value, list | dict):
            flat[key] = json.dumps(value, ensure_ascii=False)
        else:
            flat[key] = value
    return flat
