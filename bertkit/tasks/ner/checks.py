"""Checks of NER data: lines, tag scheme, entity types per split, duplicates, leakage, windows."""

from __future__ import annotations

from functools import partial
from typing import Any

from bertkit.checks.report import (
    LISTED,
    SAMPLE_ROWS,
    TRUNCATION_SHARE,
    CheckReport,
    SplitStats,
    TokenStats,
    plural,
)
from bertkit.checks.texts import check_leakage, check_texts, read_split
from bertkit.errors import DataError
from bertkit.io.reading import Table
from bertkit.tasks.ner.data import Sentences, looks_positioned, name_tags, read_sentences
from bertkit.tasks.ner.recipe import NerRecipe as Recipe
from bertkit.tasks.ner.splits import SPLITS
from bertkit.tasks.ner.tagging import TagSpec, convert, decide_tags, entity_counts


def check_data(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    data = recipe.data
    splits: dict[str, Sentences] = {}
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        sentences = read_split(split, source, partial(_read, source, recipe), report)
        if sentences is None:
            continue
        report.splits[split] = SplitStats(split, sentences.name, len(sentences), len(sentences))
        splits[split] = sentences.head(limit)
        report.splits[split].used = len(splits[split])
    if "train" not in splits:
        return
    if not data.position_suffix and looks_positioned(splits["train"]):
        report.add(
            "warning",
            "position_suffix",
            f"{splits['train'].name}: tokens look like a character and its position in a word "
            f"(e.g. {splits['train'].tokens[0][0]!r}), as Weibo NER writes them",
            hint="set data.position_suffix: true to read the characters; predictions on raw text "
            "will not have the digits",
            split="train",
        )
    spec = _check_tags(recipe, splits, report)
    if spec is None:
        return
    tables = {split: _as_table(sentences) for split, sentences in splits.items()}
    keys = {split: [" ".join(tokens) for tokens in s.tokens] for split, s in splits.items()}
    for split, table in tables.items():
        check_texts(split, table, keys[split], data.tokens, report, key="data.tokens")
    check_leakage(tables, keys, report)
    if tokenizer is not None:
        for split, sentences in splits.items():
            _check_windows(split, sentences.head(SAMPLE_ROWS), tokenizer, recipe, report)


def _read(source: Any, recipe: Recipe, on_error: Any) -> Sentences:
    return name_tags(read_sentences(source, recipe.data, on_error), recipe.tags.names)


def _check_tags(recipe: Recipe, splits: dict[str, Sentences], report: CheckReport) -> TagSpec | None:
    """The scheme decision, every tag that breaks it, entity types per split and types only outside train."""
    try:
        spec = decide_tags(splits["train"], recipe.tags)
    except DataError as exc:
        report.add("error", "tags", exc, split="train")
        return None
    report.notes.append(spec.reason)
    for split, sentences in splits.items():
        converted, errors, repaired = convert(sentences, spec, recipe.tags.repair)
        unseen = [e for e in errors if "is not in the training data" in e.message]
        broken = [e for e in errors if e not in unseen]
        for code, found in (("tag_scheme", broken), ("unseen_type", unseen)):
            for error in found[:LISTED]:
                report.add("error", code, error, split=split)
            if len(found) > LISTED:
                report.add(
                    "error",
                    code,
                    f"{sentences.name}: {len(found) - LISTED} more like these ({len(found)} in all)",
                    hint=found[0].hint,
                    split=split,
                )
        if repaired:
            report.notes.append(
                f"{split}: {plural(repaired, 'tag')} that broke {spec.scheme.upper()} will be repaired "
                "(tags.repair)"
            )
        counts = entity_counts(converted)
        report.splits[split].labels = {kind: counts.get(kind, 0) for kind in spec.types}
        splits[split] = converted
    missing = [kind for kind, n in report.splits["train"].labels.items() if n == 0]  # type: ignore[union-attr]
    if missing:
        report.add(
            "warning",
            "label_without_examples",
            f"{splits['train'].name}: entity types {', '.join(missing)} (from tags.types) have no training "
            "examples",
            hint="add examples of them, or remove them from tags.types",
            split="train",
        )
    return spec


def _check_windows(
    split: str, sentences: Sentences, tokenizer: Any, recipe: Recipe, report: CheckReport
) -> None:
    """Sub-token lengths, and how many sentences are read as several windows."""
    import numpy as np

    from bertkit.errors import BertkitError
    from bertkit.tasks.ner.windows import make_windows

    try:
        windows = make_windows(tokenizer, sentences.tokens, recipe.data.max_length, recipe.data.overlap)
    except BertkitError as exc:
        report.add("error", "model", exc)
        return
    lengths = np.asarray(windows.lengths, dtype=np.int64)
    stats = report.splits[split]
    stats.tokens = TokenStats.of(lengths, 0)
    stats.windowed = windows.windowed
    share = windows.windowed / max(len(sentences), 1)
    if windows.windowed:
        report.notes.append(
            f"{split}: {plural(windows.windowed, 'sentence')} ({share:.1%}) longer than data.max_length="
            f"{recipe.data.max_length} tokens will be read in overlapping windows (none is cut)"
        )
    if share > TRUNCATION_SHARE:
        limit = report.length_limit or 8192
        suggested = min(-(-int(np.percentile(lengths, 99, method="higher")) // 8) * 8, limit)
        if suggested > recipe.data.max_length:
            report.add(
                "warning",
                "windows",
                f"{sentences.name}: {share:.1%} of sentences are longer than data.max_length="
                f"{recipe.data.max_length} tokens; each is read in windows, with less context at their edges",
                hint=f"raise data.max_length (e.g. --set data.max_length={suggested})",
                split=split,
            )
    if windows.dropped_words:
        report.notes.append(
            f"{split}: the tokenizer reads {plural(windows.dropped_words, 'word')} as nothing "
            "(e.g. emoji variation selectors, U+FFFD): tagged O"
        )
    if windows.cut_words:
        report.add(
            "warning",
            "long_words",
            f"{sentences.name}: {plural(windows.cut_words, 'word')} longer than a whole window of "
            f"{recipe.data.max_length} tokens; only their start is read",
            hint="such words are usually URLs or garbage; clean them or raise data.max_length",
            split=split,
        )


def _as_table(sentences: Sentences) -> Table:
    """The sentences as a Table of their texts, for the checks every task runs on texts."""
    lines = None
    if sentences.token_lines is not None:
        lines = [lines_[0] for lines_ in sentences.token_lines]
    return Table(sentences.name, {"tokens": [" ".join(t) for t in sentences.tokens]}, lines)
