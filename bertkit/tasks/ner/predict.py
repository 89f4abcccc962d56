"""Find the entities of texts given as arguments or in a file, streamed to JSONL, CSV or TSV.

Each output row is the input row with an `entities` field: a list of
`{"type", "start", "end", "text", "score"}`, where start and end are character
offsets into the row's text (end exclusive). A row whose text column holds a list
of words instead of a string is tagged word by word; its offsets are word positions.
In CSV and TSV the list is one JSON cell, so every input row stays one output row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bertkit.errors import DataError
from bertkit.io import sinks
from bertkit.io.reading import iter_rows
from bertkit.io.sinks import PredictStats, Writer, atomic_output, batched
from bertkit.tasks.ner.inference import Tagger

FIELD = "entities"
_CHUNK = 1024  # rows read and tagged together (their windows are sorted by length)


def predict_texts(
    tagger: Tagger, texts: list[str], *, batch_size: int = 64, aggregation: str = "first"
) -> list[list[dict[str, Any]]]:
    """The entities of each text, in input order (an empty text has none)."""
    found = tagger.entities(texts, batch_size=batch_size, aggregation=aggregation)
    return [[entity.to_dict() for entity in row] for row in found]


def predict_file(
    tagger: Tagger,
    source: Path,
    output: Path | None,
    *,
    text_column: str = "text",
    input_format: str | None = None,
    batch_size: int = 64,
    aggregation: str = "first",
    skip_errors: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> PredictStats:
    """Tag every row of a file (or `-` for stdin) and write the rows with their entities, streaming.

    Raises:
        DataError: a malformed row (without skip_errors), a missing text column, or an
            input column called `entities`.
    """
    out_format = sinks.output_format(output, None)
    stats = PredictStats(output=str(output) if output else "-")

    def report(error: DataError) -> None:
        if not skip_errors:
            raise error
        stats.skipped.append(error.message)

    rows = _rows(
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
        report,
    )
    start = time.perf_counter()
    with atomic_output(output) as handle:
        writer = Writer(handle, out_format, flatten_entities)
        for chunk in batched(rows, _CHUNK):
            values = [record[text_column] for record in chunk]
            texts = [i for i, v in enumerate(values) if isinstance(v, str)]
            words = [i for i, v in enumerate(values) if isinstance(v, list)]
            found: dict[int, list[Any]] = {}
            options = {"batch_size": batch_size, "aggregation": aggregation}
            for i, row in zip(texts, tagger.entities([values[i] for i in texts], **options), strict=True):
                found[i] = row
            for i, row in zip(
                words, tagger.word_entities([values[i] for i in words], **options), strict=True
            ):
                found[i] = row
            for i, record in enumerate(chunk):
                writer.write({**record, FIELD: [e.to_dict() for e in found[i]]})
            stats.rows += len(chunk)
            stats.empty += sum(not values[i].strip() for i in texts) + sum(not values[i] for i in words)
            if on_progress is not None:
                on_progress(stats.rows)
    stats.seconds = time.perf_counter() - start
    return stats


def _rows(
    rows: Iterator[tuple[int | None, dict[str, Any]]],
    source: Path,
    column: str,
    report: Callable[[DataError], None],
) -> Iterator[dict[str, Any]]:
    """Records with a text (a string, or a list of words); the first record says if the column is missing."""
    first = True
    for line, record in rows:
        where = f"{source}:{line}" if line is not None else str(source)
        if first and FIELD in record:
            raise DataError(
                f"{where}: the input has a column {FIELD!r}, which the predictions would overwrite",
                hint="rename that column in the input",
            )
        value = record.get(column)
        if value is None and column not in record:
            if first:
                raise DataError(
                    f"{where}: no column {column!r}; columns are: {', '.join(record)}",
                    hint="name the text column with --text-column",
                )
            report(DataError(f"{where}: the row has no {column!r} value", hint="fix or remove the row"))
            continue
        if isinstance(value, list) and not all(isinstance(w, str) for w in value):
            report(DataError(f"{where}: {column!r} holds a list that is not all words", hint="give strings"))
            continue
        first = False
        yield {**record, column: value if isinstance(value, list) else "" if value is None else str(value)}


def flatten_entities(record: dict[str, Any]) -> dict[str, Any]:
    """CSV cells: lists (the entities, word lists) as JSON."""
    return {
        k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v for k, v in record.items()
    }
