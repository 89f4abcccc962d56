"""Checks of embedding data: each split readable, its shape, the loss it feeds, empty texts,
duplicates, leakage between splits and token lengths; for BEIR folders, the same of their
judged queries and their corpus (documents past data.max_length are cut when embedded)."""

from __future__ import annotations

from typing import Any

from bertkit.checks.report import SAMPLE_ROWS, CheckReport, SplitStats
from bertkit.errors import BertkitError
from bertkit.io.reading import Table
from bertkit.tasks.embedding.data import Pairs, Retrieval
from bertkit.tasks.embedding.recipe import EmbeddingRecipe as Recipe

SPLITS = ("train", "validation", "test")


def check_data(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    from bertkit.checks.texts import check_leakage, check_lengths, check_texts, text_lengths
    from bertkit.tasks.embedding.train import decide_loss, read_split, select_metric

    splits: dict[str, Pairs | Retrieval] = {}
    for split in SPLITS:
        source = getattr(recipe.data, split)
        if source is None:
            continue
        try:
            data = read_split(recipe, split)
        except BertkitError as exc:
            report.add("error", "unreadable", exc, split=split)
            continue
        splits[split] = data
        if isinstance(data, Retrieval):
            report.splits[split] = SplitStats(split, data.name, len(data), len(data))
            judged = sum(len(d) for d in data.relevant.values())
            report.notes.append(
                f"{split}: {len(data):,} judged queries, {len(data.corpus):,} documents, "
                f"{judged / len(data):.2f} relevant documents per query ({data.name})"
            )
            _check_corpus(split, data, report)
            continue
        data = data.head(limit)
        report.splits[split] = SplitStats(split, data.name, len(data), len(data))
        report.notes.extend(data.notes)
    train = splits.get("train")
    if not isinstance(train, Pairs):
        return
    section = recipe.embedding
    for name, action in (("loss", lambda: decide_loss(section.loss, train, section.score_range)),
                         ("metric", lambda: select_metric(recipe, splits.get("validation")))):  # fmt: skip
        try:
            action()
        except BertkitError as exc:
            report.add("error", name, exc)
    # Leakage: the same rows in two splits; with a BEIR split, the same query (or anchor) text,
    # since its rows are judged queries.
    by_query = any(isinstance(d, Retrieval) for d in splits.values())
    tables, keys = {}, {}
    for split, data in splits.items():
        if isinstance(data, Retrieval):
            queries = [data.queries[q] for q in data.relevant]
            tables[split] = Table(data.name, {"query": queries})
            keys[split] = [q.strip() for q in queries]
            continue
        tables[split] = Table(
            data.name, {column: texts for column, texts in zip(data.columns, data.texts, strict=True)}
        )
        rows = ["\t".join(row).strip() for row in zip(*data.texts, strict=True)]
        check_texts(split, tables[split], rows, data.columns[0], report, key="data.texts")
        keys[split] = [t.strip() for t in data.texts[0]] if by_query else rows
    if "train" in tables:
        check_leakage(tables, keys, report)
    if tokenizer is None:
        return
    max_length = recipe.data.max_length
    for split, data in splits.items():
        # Each text is embedded on its own: every column's texts (a corpus's documents) count.
        texts = (
            list(data.corpus.values()) if isinstance(data, Retrieval) else [t for c in data.texts for t in c]
        )
        if len(texts) > SAMPLE_ROWS:
            report.notes.append(
                f"{split}: token lengths from the first {SAMPLE_ROWS:,} of {len(texts):,} texts"
            )
        lengths = text_lengths(split, texts[:SAMPLE_ROWS], None, tokenizer, max_length, report)
        what = f"{data.name} documents" if isinstance(data, Retrieval) else f"{data.name} texts"
        check_lengths(
            split, what, lengths, max_length, report, over_limit="split long documents into passages"
        )


def _check_corpus(split: str, data: Retrieval, report: CheckReport) -> None:
    """Empty queries or documents of a BEIR folder, and judged queries with the same text."""
    empty_queries = [q for q in data.relevant if not data.queries[q].strip()]
    empty_documents = [d for d, text in data.corpus.items() if not text.strip()]
    for kind, ids, hint in (
        ("judged queries", empty_queries, "give each judged query its text in queries.jsonl"),
        ("documents", empty_documents, "drop them from corpus.jsonl: they match nothing"),
    ):
        if ids:
            shown = ", ".join(map(repr, ids[:5])) + (", ..." if len(ids) > 5 else "")
            report.add(
                "warning",
                "empty_texts",
                f"{data.name}: {len(ids):,} of the {kind} are empty (ids {shown})",
                hint=hint,
                split=split,
            )
    report.splits[split].empty_texts = len(empty_queries) + len(empty_documents)
    seen: dict[str, str] = {}
    repeated = []
    for qid in data.relevant:
        text = data.queries[qid].strip()
        if text and text in seen:
            repeated.append((qid, seen[text]))
        seen.setdefault(text, qid)
    report.splits[split].duplicates = len(repeated)
    if repeated:
        qid, first = repeated[0]
        report.add(
            "warning",
            "duplicates",
            f"{data.name}: {len(repeated):,} judged queries repeat an earlier query's text under "
            f"another id, e.g. {qid!r} (as {first!r}); each is scored on its own judgements",
            hint="merge their judgements under one id in qrels",
            split=split,
        )
