"""Checks of embedding data: each split readable, its shape, the loss it feeds, empty texts, leakage."""

from __future__ import annotations

from typing import Any

from bertkit.checks.report import CheckReport, SplitStats
from bertkit.errors import BertkitError
from bertkit.io.reading import Table
from bertkit.tasks.embedding.data import Pairs, Retrieval
from bertkit.tasks.embedding.recipe import EmbeddingRecipe as Recipe

SPLITS = ("train", "validation", "test")


def check_data(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    from bertkit.checks.texts import check_leakage, check_texts
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
            report.notes.append(
                f"{split}: {len(data):,} queries, {len(data.corpus):,} documents ({data.name})"
            )
            continue
        data = data.head(limit)
        report.splits[split] = SplitStats(split, data.name, len(data), len(data))
        report.notes.extend(data.notes)
    train = splits.get("train")
    if not isinstance(train, Pairs):
        return
    for name, action in (("loss", lambda: decide_loss(recipe.embedding.loss, train)),
                         ("metric", lambda: select_metric(recipe, splits.get("validation")))):  # fmt: skip
        try:
            action()
        except BertkitError as exc:
            report.add("error", name, exc)
    tables, keys = {}, {}
    for split, data in splits.items():
        if not isinstance(data, Pairs):
            continue
        tables[split] = Table(
            data.name, {column: texts for column, texts in zip(data.columns, data.texts, strict=True)}
        )
        keys[split] = ["\t".join(row).strip() for row in zip(*data.texts, strict=True)]
        check_texts(split, tables[split], keys[split], data.columns[0], report, key="data.texts")
    if "train" in tables:
        check_leakage(tables, keys, report)
