"""`bertkit eval` and `bertkit predict` on a question-answering model: what they run and what they show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, UsageError
from bertkit.tasks.base import Outcome


def evaluate(model: Path | None, options: dict[str, Any]) -> Outcome:
    from bertkit.tasks.qa.evaluate import evaluate_qa
    from bertkit.tasks.qa.train import MAIN_METRIC

    result = evaluate_qa(
        model,
        data=options.get("data"),
        split=options.get("split"),
        limit=options.get("limit"),
        batch_size=options.get("batch-size"),
        output=options.get("output"),
        device=options.get("device"),
    )
    return Outcome(
        metrics=result.metrics,
        main_metric=MAIN_METRIC,
        title=f"{result.data}: {result.questions:,} questions",
        report_dir=result.report_dir,
        data=result.data,
        examples=result.questions,
    )


def predict(model: Path | None, texts: list[str], options: dict[str, Any]) -> None:
    """Answer questions (arguments, or --question) over --context, or every row of --input."""
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.qa.backends import load_backend_reader

    reader = load_backend_reader(
        model,
        backend=options.get("backend", "torch"),
        quantize=options.get("quantize"),
        device=options.get("device"),
    )
    batch_size = options.get("batch-size") or DEFAULT_INFERENCE_BATCH[reader.device]
    top_k = options.get("top-k", 1)
    if options.get("input") is not None:
        if options.get("context") or options.get("question"):
            raise UsageError(
                "--question and --context: not with --input", hint="the file gives both, one row each"
            )
        _predict_file(reader, options, top_k, batch_size)
        return
    questions = [*([options["question"]] if options.get("question") else []), *texts]
    if not questions or not options.get("context"):
        raise UsageError(
            "a question-answering model needs a question and a context",
            hint='bertkit predict --context document.txt "who founded the company?"',
        )
    context = _context(options["context"])
    _predict_texts(reader, questions, context, top_k, batch_size, options)


def _context(value: str) -> str:
    """--context: a file's text when it names a file, else the text itself."""
    path = Path(value)
    try:
        is_file = "\n" not in value and path.is_file()
    except OSError:  # a text too long to be a path
        is_file = False
    looks_like_a_path = not any(c.isspace() for c in value) and (
        path.suffix.lower() in {".txt", ".md", ".text", ".json", ".html", ".csv"}
        or "/" in value
        or value == "-"
    )
    if not is_file and looks_like_a_path:
        raise DataError(
            f"--context {value}: no such file",
            hint="check the path; to answer from a text itself, give the text (it has spaces)",
        )
    if is_file:
        try:
            return path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8", hint="re-save it as UTF-8") from None
    return value


def _predict_texts(
    reader: Any, questions: list[str], context: str, top_k: int, batch_size: int, options: dict[str, Any]
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bertkit.console import err, out
    from bertkit.io.sinks import write_records
    from bertkit.tasks.qa.predict import _flatten, answer_records

    answers = answer_records(
        reader, questions, [context] * len(questions), top_k=top_k, batch_size=batch_size
    )
    records = [{"question": q, **a} for q, a in zip(questions, answers, strict=True)]
    if options.get("output") is not None:
        write_records(records, options["output"], None, _flatten)
        err.print(f"{len(records)} answer{'s' if len(records) > 1 else ''} -> {options['output']}")
        return
    if options.get("json"):
        out.print_json(json.dumps(records, ensure_ascii=False))
        return
    table = Table(box=None, pad_edge=False)
    for name, justify in (("question", "left"), ("answer", "left"), ("chars", "right"), ("score", "right")):
        table.add_column(name, justify=justify, overflow="fold", style="bold" if name == "answer" else None)
    for record in records:
        shown = [record["answer"]] + record.get("alternatives", [])
        for rank, answer in enumerate(shown):
            question = escape(record["question"]) if rank == 0 else ""
            if answer is None:
                table.add_row(question, "(no answer in the context)", "", "")
            else:
                table.add_row(
                    question,
                    escape(answer["text"]),
                    f"{answer['start']}-{answer['end']}",
                    f"{answer['score']:.3f}",
                )
    out.print(table)


def _predict_file(reader: Any, options: dict[str, Any], top_k: int, batch_size: int) -> None:
    from bertkit.predicting import predict_file_command
    from bertkit.tasks.qa.predict import predict_file

    columns = reader.recipe.data if reader.recipe is not None else None
    question = options.get("text-column") or (columns.question if columns else "question")
    context = options.get("text-pair") or (columns.context if columns else "context")
    settings = {"context_column": context, "top_k": top_k, "batch_size": batch_size}
    predict_file_command(reader, {**options, "text-column": question}, predict_file, **settings)
