"""Semantic search: queries against a corpus embedded once, exact cosine similarity, top-k.

The corpus is read whole and its vectors kept in memory (4 bytes x dimension per
document: 1.5 GB for a million 384-dimension vectors), and every query is compared
with every document (sentence-transformers' `semantic_search`). That is exact and fast
to a few million documents; past that, an approximate index (FAISS, hnswlib) is the
tool, fed with `bertkit embed --output vectors.npy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import DataError
from bertkit.io.reading import iter_rows
from bertkit.io.sinks import PredictStats, Writer, atomic_output, batched, output_format


@dataclass
class Corpus:
    """Documents (ids and texts) and their vectors."""

    name: str
    ids: list[str]
    texts: list[str]
    vectors: np.ndarray

    @classmethod
    def read(cls, path: Path, encoder: Any, batch_size: int) -> Corpus:
        """A corpus file: BEIR corpus.jsonl ({_id, title, text}), or rows with a `text` (and maybe `id`).

        Raises:
            DataError: unreadable file, no text column, no documents.
        """
        ids, texts = [], []
        for line, record in iter_rows(path):
            if "_id" in record:  # BEIR: the title belongs to the document
                text = " ".join(str(record.get(k) or "") for k in ("title", "text")).strip()
                ids.append(str(record["_id"]))
            elif "text" in record:
                text = "" if record["text"] is None else str(record["text"])
                ids.append(str(record["id"]) if record.get("id") is not None else str(len(ids) + 1))
            else:
                where = f"{path}:{line}" if line is not None else str(path)
                raise DataError(
                    f"{where}: a corpus row needs a `text` column (and may have an `id`); columns are "
                    f"{', '.join(record)}",
                    hint="one document a line in a .txt file, or rows with text (and id)",
                )
            texts.append(text)
        if not texts:
            raise DataError(f"{path}: no documents", hint="check the file")
        return cls(str(path), ids, texts, encoder.encode(texts, batch_size))


def search(encoder: Any, corpus: Corpus, queries: list[str], top_k: int, batch_size: int) -> list[list[dict]]:
    """Each query's `top_k` documents, best first: {id, text, score}."""
    import torch
    from sentence_transformers.util import semantic_search

    if not queries:
        return []
    found = semantic_search(
        torch.from_numpy(encoder.encode(queries, batch_size)),
        torch.from_numpy(corpus.vectors),
        top_k=min(top_k, len(corpus.ids)),
    )
    return [
        [
            {
                "id": corpus.ids[h["corpus_id"]],
                "text": corpus.texts[h["corpus_id"]],
                "score": round(float(h["score"]), 6),
            }
            for h in hits
        ]
        for hits in found
    ]


def search_file(
    encoder: Any,
    source: Path,
    output: Path | None,
    *,
    corpus: Corpus,
    text_column: str = "text",
    input_format: str | None = None,
    top_k: int = 10,
    batch_size: int = 64,
    skip_errors: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> PredictStats:
    """Search the corpus for every row's text; write the rows with their `results`, streaming."""
    stats = PredictStats(output=str(output) if output else "-")

    def report(error: DataError) -> None:
        if not skip_errors:
            raise error
        stats.skipped.append(error.message)

    start = time.perf_counter()
    with atomic_output(output) as handle:
        writer = Writer(handle, output_format(output, None))
        for chunk in batched(iter_rows(source, input_format, on_error=report, notes=stats.notes), 1024):
            records = [record for _, record in chunk]
            if stats.rows == 0 and records and text_column not in records[0]:
                raise DataError(
                    f"{source}: no column {text_column!r}; columns are: {', '.join(records[0])}",
                    hint="name the query column with --text-column",
                )
            queries = ["" if r.get(text_column) is None else str(r[text_column]) for r in records]
            for record, results in zip(
                records, search(encoder, corpus, queries, top_k, batch_size), strict=True
            ):
                writer.write({**record, "results": results})
            stats.rows += len(records)
            stats.empty += sum(not q.strip() for q in queries)
            if on_progress is not None:
                on_progress(stats.rows)
    stats.seconds = time.perf_counter() - start
    return stats
