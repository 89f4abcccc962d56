"""`bertkit eval` and `bertkit predict` on a sentence encoder: similarity or retrieval scores; search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.errors import UsageError
from bertkit.tasks.base import Outcome


def evaluate(model: Path | None, options: dict[str, Any]) -> Outcome:
    from bertkit.tasks.embedding.evaluate import evaluate_embedding

    result = evaluate_embedding(
        model,
        data=options.get("data"),
        split=options.get("split"),
        limit=options.get("limit"),
        batch_size=options.get("batch-size"),
        output=options.get("output"),
        device=options.get("device"),
    )
    unit = "queries" if result.main_metric == "ndcg@10" else "pairs"
    return Outcome(
        metrics=result.metrics,
        main_metric=result.main_metric,
        title=f"{result.data}: {result.examples:,} {unit}",
        report_dir=result.report_dir,
        data=result.data,
        examples=result.examples,
    )


def predict(model: Path | None, texts: list[str], options: dict[str, Any]) -> None:
    """Semantic search: each query's nearest documents of --corpus, by cosine similarity."""
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.embedding.encoder import load_encoder
    from bertkit.tasks.embedding.search import Corpus, search

    if options.get("corpus") is None:
        raise UsageError(
            "an embedding model predicts by searching a corpus: give --corpus FILE",
            hint='bertkit predict --corpus docs.jsonl "a query"; for vectors, use bertkit embed',
        )
    encoder = load_encoder(model, device=options.get("device"))
    batch = options.get("batch-size") or DEFAULT_INFERENCE_BATCH[encoder.device]
    corpus = Corpus.read(options["corpus"], encoder, batch)
    top_k = options.get("top-k") or 10
    if options.get("input") is not None:
        from bertkit.predicting import predict_file_command
        from bertkit.tasks.embedding.search import search_file

        predict_file_command(encoder, options, search_file, corpus=corpus, top_k=top_k, batch_size=batch)
        return
    results = search(encoder, corpus, texts, top_k, batch)
    records = [{"query": q, "results": r} for q, r in zip(texts, results, strict=True)]
    if options.get("output") is not None:
        from bertkit.console import err
        from bertkit.io.sinks import write_records

        write_records(records, options["output"])
        err.print(f"{len(records)} quer{'ies' if len(records) > 1 else 'y'} -> {options['output']}")
        return
    from bertkit.console import out

    if options.get("json"):
        out.print_json(json.dumps(records, ensure_ascii=False))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for name, justify in (
        ("query", "left"),
        ("rank", "right"),
        ("score", "right"),
        ("id", "left"),
        ("text", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    for record in records:
        for rank, hit in enumerate(record["results"], start=1):
            query = escape(record["query"]) if rank == 1 else ""
            text = escape(hit["text"][:160])
            table.add_row(query, str(rank), f"{hit['score']:.3f}", escape(str(hit["id"])), text)
    out.print(table)
