"""Checks every task runs on its texts: unreadable rows, empty texts, duplicates, leakage, lengths.

Each takes a split's rows as `keys`, one string per row that is empty when the row
has no text (a task decides what a row's text is: a sentence, a pair, a question
and its context), so the same checks serve every task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bertkit.checks.report import (
    LISTED,
    TOKEN_BATCH,
    TRUNCATION_SHARE,
    CheckReport,
    TokenStats,
    plural,
    short,
)
from bertkit.errors import DataError
from bertkit.io.reading import Table
from bertkit.io.text import OnError
from bertkit.tokenization import CHARS_PER_TOKEN, clip


def read_split(
    split: str, source: Any, read: Callable[[OnError], Table], report: CheckReport
) -> Table | None:
    """Read a split, reporting every malformed row (up to a few, then a count) and read errors.

    Args:
        split: the split's name.
        source: its DataSource (for `describe()`).
        read: reads the source, calling its argument with each malformed row's error.
        report: receives the findings.

    Returns:
        The rows read, or None when the source could not be read at all.
    """
    bad: list[DataError] = []
    table = None
    try:
        table = read(bad.append)
    except DataError as exc:
        if not bad:  # with malformed rows, "no data rows" only repeats them
            report.add("error", "unreadable", exc, split=split)
    for error in bad[:LISTED]:
        report.add("error", "malformed_row", error, split=split)
    if len(bad) > LISTED:
        report.add(
            "error",
            "malformed_row",
            f"{source.describe()}: {len(bad) - LISTED} more malformed rows ({len(bad)} in all)",
            hint=bad[0].hint,
            split=split,
        )
    return table


def check_texts(
    split: str, table: Table, keys: list[str], column: str, report: CheckReport, *, key: str = "data.text"
) -> list[tuple[int, int]]:
    """Empty texts and exact duplicates.

    Args:
        column: the column the texts come from; key: the recipe key that names it.

    Returns:
        (row, first row with the same text) for each repeated text, for the task's
        own checks of repeats (e.g. a text that appears with two labels).
    """
    stats = report.splits[split]
    empty = [i for i, key in enumerate(keys) if not key]
    stats.empty_texts = len(empty)
    if empty and len(empty) == len(keys):
        report.add(
            "error",
            "empty_texts",
            f"{table.name}: all {len(keys):,} texts are empty (column {column!r})",
            hint=f"point {key} at the column that holds the text",
            split=split,
        )
        return []
    if empty:
        report.add(
            "warning",
            "empty_texts",
            f"{table.where(empty[0])}: {plural(len(empty), 'empty or whitespace-only text')} "
            f"({positions(table, empty)})",
            hint="drop those rows: a model learns nothing from them",
            split=split,
        )
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for row, key in enumerate(keys):
        if key:
            if key in first:
                repeats.append((row, first[key]))
            else:
                first[key] = row
    stats.duplicates = len(repeats)
    if repeats:
        row, earlier = repeats[0]
        where_first = line_of(table, earlier)
        if table.lines is not None:
            where_first = f"line {where_first}"
        report.add(
            "warning",
            "duplicates",
            f"{table.name}: {plural(len(repeats), 'row')} ({len(repeats) / len(keys):.1%}) "
            f"repeat{'s' if len(repeats) == 1 else ''} an earlier text, "
            f"e.g. {short(keys[row])!r} at {table.where(row)} (first at {where_first})",
            hint="remove exact duplicates: they weigh some examples more than others",
            split=split,
        )
    return repeats


def check_leakage(tables: dict[str, Table], keys: dict[str, list[str]], report: CheckReport) -> None:
    """Rows of validation/test whose text is also in train."""
    train: dict[str, int] = {}
    for row, key in enumerate(keys["train"]):
        if key:
            train.setdefault(key, row)
    for split, table in tables.items():
        if split == "train":
            continue
        own = keys[split]
        leaked = [i for i, key in enumerate(own) if key and key in train]
        report.splits[split].in_train = len(leaked)
        if leaked:
            report.add(
                "warning",
                "leakage",
                f"{table.name}: {len(leaked):,} of {len(own):,} rows ({len(leaked) / len(own):.1%}) "
                f"also appear in train, e.g. {short(own[leaked[0]])!r} at {table.where(leaked[0])} "
                f"(train line {line_of(tables['train'], train[own[leaked[0]]])})",
                hint=f"remove them from {split} or from train: seen texts make {split} scores look better "
                "than they are",
                split=split,
            )


def check_lengths(
    split: str,
    name: str,
    lengths: Any,
    max_length: int,
    report: CheckReport,
    *,
    over_limit: str = "split long texts into parts",
) -> None:
    """Record token lengths (numpy ints, special tokens included) and warn when many are cut.

    Args:
        over_limit: the hint when data.max_length cannot be raised further (the
            model's limit), e.g. that the task reads long texts in windows.
    """
    stats = TokenStats.of(lengths, int((lengths > max_length).sum()))
    report.splits[split].tokens = stats
    if stats.truncated_share > TRUNCATION_SHARE:
        suggested = min(-(-stats.p99 // 8) * 8, report.length_limit or 8192)
        report.add(
            "warning",
            "truncation",
            f"{name}: {stats.truncated:,} of {stats.counted:,} examples ({stats.truncated_share:.1%}) "
            f"are longer than data.max_length={max_length} tokens and will be cut "
            f"(p99 {stats.p99}, longest {stats.max})",
            hint=f"raise data.max_length (e.g. --set data.max_length={suggested})"
            if suggested > max_length
            else f"the model cannot read longer texts: {over_limit}",
            split=split,
        )


def text_lengths(
    split: str,
    texts: list[str],
    pairs: list[str] | None,
    tokenizer: Any,
    max_length: int,
    report: CheckReport,
) -> Any:
    """Token lengths of texts (and their pairs) as the model will see them, special tokens included.

    What lies past max_length x CHARS_PER_TOKEN characters is past max_length tokens,
    so texts are clipped there before tokenizing (and a note says how many were).
    """
    import numpy as np

    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), TOKEN_BATCH):
        part = [clip(t, max_length) for t in texts[start : start + TOKEN_BATCH]]
        second = None if pairs is None else [clip(t, max_length) for t in pairs[start : start + TOKEN_BATCH]]
        encoded = tokenizer(
            part,
            second,
            add_special_tokens=True,
            truncation=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        lengths[start : start + len(part)] = [len(ids) for ids in encoded["input_ids"]]
    limit = max_length * CHARS_PER_TOKEN
    clipped = sum(len(t) > limit for t in texts) + sum(len(t) > limit for t in pairs or [])
    if clipped:
        report.notes.append(
            f"{split}: {plural(clipped, 'text')} longer than {limit:,} characters counted to there "
            "(it lies past data.max_length either way)"
        )
    return lengths


def subset(table: Table, rows: list[int]) -> Table:
    """The table's rows at `rows`, with their line numbers."""
    if len(rows) == len(table):
        return table
    lines = [table.lines[i] for i in rows] if table.lines is not None else None
    return Table(table.name, {k: [v[i] for i in rows] for k, v in table.columns.items()}, lines, table.notes)


def line_of(table: Table, row: int) -> str:
    """A row's file line, or `row N` for sources without lines."""
    return str(table.lines[row]) if table.lines is not None else f"row {row + 1}"


def positions(table: Table, rows: list[int]) -> str:
    """`lines 4, 9, 12, ...` (or `rows ...` for sources without lines)."""
    shown = [table.lines[i] if table.lines is not None else i + 1 for i in rows[:LISTED]]
    more = ", ..." if len(rows) > LISTED else ""
    word = "line" if table.lines is not None else "row"
    return f"{word}{'s' if len(rows) > 1 else ''} {', '.join(map(str, shown))}{more}"
