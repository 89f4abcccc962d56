"""Checks of classification data: rows, columns, labels, texts, leakage, token lengths."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bertkit.checks.report import (
    IMBALANCE_RATIO,
    LISTED,
    SAMPLE_ROWS,
    TOKEN_BATCH,
    TRUNCATION_SHARE,
    CheckReport,
    SplitStats,
    TokenStats,
    plural,
    short,
)
from bertkit.errors import BertkitError, DataError
from bertkit.io.reading import Table
from bertkit.tasks.classification.data import (
    SPLITS,
    column_problems,
    read_source,
    split_validation,
    table_texts,
)
from bertkit.tasks.classification.labels import (
    MISSING_WORDS,
    LabelSpec,
    detect_labels,
    is_missing_label,
    label_names_of,
)
from bertkit.tasks.classification.recipe import ClassificationRecipe as Recipe
from bertkit.tokenization import CHARS_PER_TOKEN, clip


def check_classification(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    data = recipe.data
    tables: dict[str, Table] = {}
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        table = _read_split(split, source, data.text_columns[0], report)
        if table is None:
            continue
        report.splits[split] = SplitStats(split, table.name, len(table), len(table))
        report.notes.extend(table.notes)
        missing = column_problems(table, data, need_label=True)
        for problem in missing:
            report.add("error", problem.code or "missing_column", problem, split=split)
        if not missing:
            tables[split] = table.head(limit)
            report.splits[split].used = len(tables[split])
    if "train" not in tables:
        return
    tables, spec = _check_labels(recipe, tables, report)
    for split, table in tables.items():
        _check_texts(split, table, recipe, spec, report)
    _check_leakage(tables, recipe, report)
    if tokenizer is not None:
        for split, table in tables.items():
            texts, pairs = table_texts(table.head(SAMPLE_ROWS), data)
            if len(table) > SAMPLE_ROWS:
                report.notes.append(
                    f"{split}: token lengths from the first {SAMPLE_ROWS:,} of {len(table):,} rows"
                )
            _token_stats(split, table.name, texts, pairs, tokenizer, recipe, report)


def _read_split(split: str, source: Any, text_column: str, report: CheckReport) -> Table | None:
    """Read a split, reporting every malformed row (up to a few, then a count) and read errors."""
    bad: list[DataError] = []
    table = None
    try:
        table = read_source(source, text_column, on_error=bad.append)
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


def _check_labels(
    recipe: Recipe, tables: dict[str, Table], report: CheckReport
) -> tuple[dict[str, Table], LabelSpec | None]:
    """Empty, mixed, unseen labels and the label distribution; returns the labelled rows."""
    column, settings = recipe.data.label, recipe.labels
    labelled: dict[str, Table] = {}
    for split, table in tables.items():
        values = table.columns[column]
        empty = [i for i, v in enumerate(values) if is_missing_label(v)]
        if empty:
            report.add(
                "error",
                "empty_label",
                f"{table.where(empty[0])}: empty label in column {column!r} "
                f"({plural(len(empty), 'row')}: {_positions(table, empty)})",
                hint="give every row a label, or drop unlabelled rows",
                split=split,
            )
        worded = sorted(
            {str(v).strip() for v in values if isinstance(v, str) and v.strip().lower() in MISSING_WORDS}
        )
        if worded:
            report.add(
                "warning",
                "label_looks_missing",
                f"{table.name}: labels {', '.join(repr(w) for w in worded)} in column {column!r} are read as "
                "class names; they may be missing values written out as text",
                hint="keep them if they are classes; else empty those cells (an error) or drop the rows",
                split=split,
            )
        labelled[split] = _subset(table, [i for i, v in enumerate(values) if not is_missing_label(v)])
    if len(labelled["train"]) == 0:
        return labelled, None
    try:
        spec = detect_labels(
            labelled["train"],
            column,
            declared=settings.type,
            separator=settings.separator,
            names=settings.names,
        )
    except DataError as exc:
        report.add("error", exc.code or "labels", exc, split="train")
        return labelled, None
    report.notes.append(spec.reason)

    if recipe.data.validation_split and "validation" not in labelled:
        try:
            train, held, note = split_validation(
                labelled["train"], spec, column, recipe.data.validation_split, recipe.train.seed
            )
        except DataError as exc:
            report.add("error", "validation_split", exc)
        else:
            labelled["train"], labelled["validation"] = train, held
            report.notes.append(note)
            report.splits["train"].used = len(train)
            source = f"{train.name} ({recipe.data.validation_split:.0%} carved from train)"
            report.splits["validation"] = SplitStats("validation", source, len(held), len(held))

    for split, table in labelled.items():
        try:
            targets = spec.encode(table, column)
        except DataError as exc:
            code = exc.code or "labels"
            report.add("error", code, exc, split=split)
            targets = None
        _label_distribution(split, table, spec, recipe, report)
        if split == "train" and targets is not None:
            _check_training_settings(recipe, labelled, spec, targets, report)
    return labelled, spec


def _label_distribution(
    split: str, table: Table, spec: LabelSpec, recipe: Recipe, report: CheckReport
) -> None:
    import numpy as np

    stats = report.splits[split]
    values = table.columns[recipe.data.label]
    if spec.problem == "regression":
        numbers = np.array([float(v) for v in values if _is_number(v)], dtype=np.float64)
        if len(numbers):
            stats.label_range = {
                "min": float(numbers.min()),
                "mean": round(float(numbers.mean()), 4),
                "max": float(numbers.max()),
            }
        return
    counts = Counter(
        _display(n, spec) for v in values for n in label_names_of(v, spec.problem, spec.separator)
    )
    ordered = {name: counts.get(name, 0) for name in spec.names}
    ordered.update({name: n for name, n in counts.items() if name not in ordered})
    stats.labels = ordered
    if split != "train" or spec.problem != "single":
        return
    absent = [name for name, n in ordered.items() if n == 0]
    if absent:
        report.add(
            "warning",
            "label_without_examples",
            f"{table.name}: labels {absent} (from labels.names) have no training examples",
            hint="add examples of them, or remove them from labels.names",
            split=split,
        )
    present = {name: n for name, n in ordered.items() if n > 0}
    if len(present) >= 2:
        most, least = max(present, key=present.__getitem__), min(present, key=present.__getitem__)
        ratio = present[most] / present[least]
        if ratio > IMBALANCE_RATIO:
            weighted = recipe.train.class_weights != "none"
            report.add(
                "warning",
                "imbalance",
                f"{table.name}: labels are heavily imbalanced: {most!r} has {present[most]:,} rows, "
                f"{least!r} only {present[least]:,} ({ratio:.0f}:1)",
                hint="train.class_weights is set, so the loss is weighted; read the per-class scores"
                if weighted
                else "set train.class_weights: auto to weight the loss by inverse class frequency, "
                "or add examples of the rare labels",
                split=split,
            )


def _check_training_settings(
    recipe: Recipe, tables: dict[str, Table], spec: LabelSpec, targets: list[Any], report: CheckReport
) -> None:
    """train.metric and train.class_weights against the labels (training checks them the same way)."""
    from bertkit.tasks.classification.data import ClassificationData
    from bertkit.tasks.classification.settings import resolve_class_weights, select_metric

    data = ClassificationData(tables, spec, {"train": targets})
    for check in (select_metric, resolve_class_weights):
        try:
            check(recipe, data)
        except BertkitError as exc:
            report.add("error", "recipe", exc)


def _check_texts(
    split: str, table: Table, recipe: Recipe, spec: LabelSpec | None, report: CheckReport
) -> None:
    """Empty texts, duplicates and texts that appear with different labels."""
    stats = report.splits[split]
    keys = _text_keys(table, recipe)
    empty = [i for i, key in enumerate(keys) if not key]
    stats.empty_texts = len(empty)
    if empty and len(empty) == len(keys):
        report.add(
            "error",
            "empty_texts",
            f"{table.name}: all {len(keys):,} texts are empty (column {recipe.data.text!r})",
            hint="point data.text at the column that holds the text",
            split=split,
        )
        return
    if empty:
        report.add(
            "warning",
            "empty_texts",
            f"{table.where(empty[0])}: {plural(len(empty), 'empty or whitespace-only text')} "
            f"({_positions(table, empty)})",
            hint="drop those rows: a model learns nothing from them",
            split=split,
        )
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # (row, first row with the same text)
    for row, key in enumerate(keys):
        if key:
            if key in first:
                repeats.append((row, first[key]))
            else:
                first[key] = row
    stats.duplicates = len(repeats)
    if repeats:
        row, earlier = repeats[0]
        report.add(
            "warning",
            "duplicates",
            f"{table.name}: {plural(len(repeats), 'row')} ({len(repeats) / len(keys):.1%}) "
            f"repeat{'s' if len(repeats) == 1 else ''} an earlier text, "
            f"e.g. {short(keys[row])!r} at {table.where(row)} (first at line {_line(table, earlier)})",
            hint="remove exact duplicates: they weigh some examples more than others",
            split=split,
        )
    if spec is not None and spec.problem != "regression" and repeats:
        _check_conflicts(split, table, keys, repeats, recipe, spec, report)


def _check_conflicts(
    split: str,
    table: Table,
    keys: list[str],
    repeats: list[tuple[int, int]],
    recipe: Recipe,
    spec: LabelSpec,
    report: CheckReport,
) -> None:
    values = table.columns[recipe.data.label]

    def label(row: int) -> tuple[str, ...]:
        return tuple(sorted(label_names_of(values[row], spec.problem, spec.separator)))

    conflicts = [(row, earlier) for row, earlier in repeats if label(row) != label(earlier)]
    if conflicts:
        row, earlier = conflicts[0]
        report.add(
            "warning",
            "conflicting_labels",
            f"{table.name}: {len(conflicts):,} repeated texts carry a different label than before, "
            f"e.g. {short(keys[row])!r}: {'|'.join(label(earlier))} at line {_line(table, earlier)}, "
            f"{'|'.join(label(row))} at line {_line(table, row)}",
            hint="decide on one label for each text",
            split=split,
        )


def _check_leakage(tables: dict[str, Table], recipe: Recipe, report: CheckReport) -> None:
    train: dict[str, int] = {}
    for row, key in enumerate(_text_keys(tables["train"], recipe)):
        if key:
            train.setdefault(key, row)
    for split, table in tables.items():
        if split == "train":
            continue
        keys = _text_keys(table, recipe)
        leaked = [i for i, key in enumerate(keys) if key and key in train]
        report.splits[split].in_train = len(leaked)
        if leaked:
            report.add(
                "warning",
                "leakage",
                f"{table.name}: {len(leaked):,} of {len(keys):,} rows ({len(leaked) / len(keys):.1%}) "
                f"also appear in train, e.g. {short(keys[leaked[0]])!r} at {table.where(leaked[0])} "
                f"(train line {_line(tables['train'], train[keys[leaked[0]]])})",
                hint=f"remove them from {split} or from train: seen texts make {split} scores look better "
                "than they are",
                split=split,
            )


def _text_keys(table: Table, recipe: Recipe) -> list[str]:
    """Each row's text (and pair) with surrounding space removed; empty when any part is empty."""
    texts, pairs = table_texts(table, recipe.data)
    if pairs is None:
        return [t.strip() for t in texts]
    return [
        f"{a.strip()}\t{b.strip()}" if a.strip() and b.strip() else ""
        for a, b in zip(texts, pairs, strict=True)
    ]


def _token_stats(
    split: str,
    name: str,
    texts: list[str],
    pairs: list[str] | None,
    tokenizer: Any,
    recipe: Recipe,
    report: CheckReport,
) -> None:
    import numpy as np

    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), TOKEN_BATCH):
        # What lies past max_length x 100 characters is past max_length tokens (data.tokenize.clip).
        part = [clip(t, recipe.data.max_length) for t in texts[start : start + TOKEN_BATCH]]
        second = (
            None
            if pairs is None
            else [clip(t, recipe.data.max_length) for t in pairs[start : start + TOKEN_BATCH]]
        )
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
    max_length = recipe.data.max_length
    stats = TokenStats.of(lengths, int((lengths > max_length).sum()))
    report.splits[split].tokens = stats
    limit = max_length * CHARS_PER_TOKEN
    clipped = sum(len(t) > limit for t in texts) + sum(len(t) > limit for t in pairs or [])
    if clipped:
        report.notes.append(
            f"{split}: {plural(clipped, 'text')} longer than {limit:,} characters counted to there "
            "(it lies past data.max_length either way)"
        )
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
            else "the model cannot read longer texts: split long texts into parts",
            split=split,
        )


def _subset(table: Table, rows: list[int]) -> Table:
    if len(rows) == len(table):
        return table
    lines = [table.lines[i] for i in rows] if table.lines is not None else None
    return Table(table.name, {k: [v[i] for i in rows] for k, v in table.columns.items()}, lines, table.notes)


def _line(table: Table, row: int) -> str:
    return str(table.lines[row]) if table.lines is not None else f"row {row + 1}"


def _positions(table: Table, rows: list[int]) -> str:
    """`lines 4, 9, 12, ...` (or `rows ...` for sources without lines)."""
    shown = [table.lines[i] if table.lines is not None else i + 1 for i in rows[:LISTED]]
    more = ", ..." if len(rows) > LISTED else ""
    word = "line" if table.lines is not None else "row"
    return f"{word}{'s' if len(rows) > 1 else ''} {', '.join(map(str, shown))}{more}"


def _display(name: str, spec: LabelSpec) -> str:
    """The label name as the model will call it (integer ids map to labels.names)."""
    if name in spec.names or not name.isdigit():
        return name
    numeric = any(n.lstrip("-").isdigit() for n in spec.names)
    return spec.names[int(name)] if not numeric and int(name) < len(spec.names) else name


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
