"""Answer questions over contexts given on the command line or in a file, streamed to JSONL, CSV or TSV.

Each answer is `{"text", "start", "end", "score"}`: its character offsets in the
context (end exclusive) and its probability among the candidates. An unanswered
question (a model trained with unanswerable questions) has the answer `null`.
`top_k` adds the `alternatives`, the next best candidates.
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
from bertkit.tasks.qa.answers import Ranked
from bertkit.tasks.qa.data import Questions
from bertkit.tasks.qa.inference import Reader

FIELDS = ("answer", "alternatives")
_CHUNK = 256  # questions answered together (their windows are sorted by length)


def answer_records(
    reader: Reader, questions: list[str], contexts: list[str], *, top_k: int = 1, batch_size: int = 64
) -> list[dict[str, Any]]:
    """The answer (and `top_k - 1` alternatives) of each question, in input order."""
    batch = Questions("input")
    for index, (question, context) in enumerate(zip(questions, contexts, strict=True)):
        batch.add(str(index), question, context, [], "input")
    keep = [i for i in range(len(batch)) if batch.questions[i].strip() and batch.contexts[i].strip()]
    ranked, _ = reader.rank(batch.select(keep), batch_size) if keep else ([], None)
    out: list[dict[str, Any]] = [{"answer": None} for _ in questions]
    for index, r in zip(keep, ranked, strict=True):
        out[index] = _record(r, reader, top_k)
    return out


def _record(ranked: Ranked, reader: Reader, top_k: int) -> dict[str, Any]:
    answered = bool(ranked.answer(reader.unanswerable, reader.threshold))
    record: dict[str, Any] = {"answer": ranked.candidates[0].to_dict() if answered else None}
    if top_k > 1:
        record["alternatives"] = [
            c.to_dict() for c in ranked.candidates[int(answered) : int(answered) + top_k - 1]
        ]
    return record


def predict_file(
    reader: Reader,
    source: Path,
    output: Path | None,
    *,
    text_column: str = "question",
    context_column: str = "context",
    input_format: str | None = None,
    top_k: int = 1,
    batch_size: int = 64,
    skip_errors: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> PredictStats:
    """Answer every row's question over its context and write the rows with their answers, streaming.

    Raises:
        DataError: a malformed row (without skip_errors), missing columns, or input
            columns the answers would overwrite.
    """
    stats = PredictStats(output=str(output) if output else "-")

    def report(error: DataError) -> None:
        if not skip_errors:
            raise error
        stats.skipped.append(error.message)

    rows = _rows(
        iter_rows(source, input_format, on_error=report, notes=stats.notes),
        source,
        (text_column, context_column),
        report,
    )
    start = time.perf_counter()
    with atomic_output(output) as handle:
        writer = Writer(handle, sinks.output_format(output, None), _flatten)
        for chunk in batched(rows, _CHUNK):
            questions = ["" if r[text_column] is None else str(r[text_column]) for r in chunk]
            contexts = ["" if r[context_column] is None else str(r[context_column]) for r in chunk]
            for record, answer in zip(
                chunk,
                answer_records(reader, questions, contexts, top_k=top_k, batch_size=batch_size),
                strict=True,
            ):
                writer.write({**record, **answer})
            stats.rows += len(chunk)
            stats.empty += sum(
                not q.strip() or not c.strip() for q, c in zip(questions, contexts, strict=True)
            )
            if on_progress is not None:
                on_progress(stats.rows)
    stats.seconds = time.perf_counter() - start
    return stats


def _rows(
    rows: Iterator[tuple[int | None, dict[str, Any]]],
    source: Path,
    columns: tuple[str, str],
    report: Callable[[DataError], None],
) -> Iterator[dict[str, Any]]:
    """The rows, each checked for its question and context columns (else an error, or skipped)."""
    first = True
    for line, record in rows:
        where = f"{source}:{line}" if line is not None else str(source)
        if first:
            clash = [c for c in FIELDS if c in record]
            if clash:
                raise DataError(
                    f"{where}: the input has a column {clash[0]!r}, which the answers would overwrite",
                    hint="rename it",
                )
        missing = [c for c in columns if c not in record]
        if missing:
            error = DataError(
                f"{where}: no column {missing[0]!r}; columns are: {', '.join(record) or 'none'}",
                hint="give a question and a context column (named as in the run's recipe, or "
                "with --text-column and --text-pair)",
            )
            if first:
                raise error
            report(error)
            continue
        first = False
        yield record


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    """CSV cells: the answer's text, offsets and score in columns of their own; alternatives as JSON."""
    flat = {k: v for k, v in record.items() if k not in FIELDS}
    answer = record.get("answer") or {}
    for key in ("text", "start", "end", "score"):
        flat[f"answer_{key}"] = answer.get(key)
    if "alternatives" in record:
        flat["alternatives"] = json.dumps(record["alternatives"], ensure_ascii=False)
    return flat
