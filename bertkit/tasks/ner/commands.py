"""`bertkit eval` and `bertkit predict` on an NER model: what they run and what they show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.tasks.base import Outcome


def evaluate(model: Path | None, options: dict[str, Any]) -> Outcome:
    from bertkit.tasks.ner.evaluate import evaluate_ner
    from bertkit.tasks.ner.metrics import MAIN_METRIC

    result = evaluate_ner(
        model,
        data=options.get("data"),
        split=options.get("split"),
        limit=options.get("limit"),
        batch_size=options.get("batch-size"),
        output=options.get("output"),
        aggregation=options.get("aggregation", "first"),
        device=options.get("device"),
        precision=options.get("precision", "auto"),
    )
    return Outcome(
        metrics=result.metrics,
        main_metric=MAIN_METRIC,
        title=f"{result.data}: {result.sentences:,} sentences",
        report_dir=result.report_dir,
        data=result.data,
        examples=result.sentences,
    )


def predict(model: Path | None, texts: list[str], options: dict[str, Any]) -> None:
    """Tag texts given as arguments (a table, or JSON) or a whole file (streamed)."""
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.ner.backends import load_backend_tagger

    tagger = load_backend_tagger(
        model,
        backend=options.get("backend", "torch"),
        quantize=options.get("quantize"),
        device=options.get("device"),
        precision=options.get("precision", "auto"),
    )
    batch_size = options.get("batch-size") or DEFAULT_INFERENCE_BATCH[tagger.device]
    aggregation = options.get("aggregation", "first")
    if texts:
        _predict_texts(tagger, texts, batch_size, aggregation, options)
    else:
        _predict_file(tagger, options, batch_size, aggregation)


def _predict_texts(
    tagger: Any, texts: list[str], batch_size: int, aggregation: str, options: dict[str, Any]
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bertkit.console import err, out
    from bertkit.io.sinks import write_records
    from bertkit.tasks.ner.predict import FIELD, flatten_entities, predict_texts

    found = predict_texts(tagger, texts, batch_size=batch_size, aggregation=aggregation)
    records = [{"text": t, FIELD: e} for t, e in zip(texts, found, strict=True)]
    if options.get("output") is not None:
        write_records(records, options["output"], None, flatten_entities)
        err.print(f"{len(texts)} text{'s' if len(texts) > 1 else ''} -> {options['output']}")
        return
    if options.get("json"):
        out.print_json(json.dumps(records, ensure_ascii=False))
        return
    table = Table(box=None, pad_edge=False)
    for name, justify in (
        ("text", "left"),
        ("entity", "left"),
        ("type", "left"),
        ("chars", "right"),
        ("score", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold", style="bold" if name == "type" else None)
    for text, entities in zip(texts, found, strict=True):
        if not entities:
            table.add_row(escape(text), "-", "", "", "")
        for i, entity in enumerate(entities):
            table.add_row(
                escape(text) if i == 0 else "",
                escape(entity["text"]),
                escape(entity["type"]),
                f"{entity['start']}-{entity['end']}",
                f"{entity['score']:.3f}",
            )
    out.print(table)


def _predict_file(tagger: Any, options: dict[str, Any], batch_size: int, aggregation: str) -> None:
    from bertkit.predicting import predict_file_command
    from bertkit.tasks.ner.predict import predict_file

    predict_file_command(tagger, options, predict_file, batch_size=batch_size, aggregation=aggregation)
