"""Checks of classification data: rows, columns, labels, texts, leakage, token lengths."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

from bertkit.checks.report import (
    IMBALANCE_RATIO,
    SAMPLE_ROWS,
    CheckReport,
    SplitStats,
    plural,
    short,
)
from bertkit.checks.texts import (
    check_leakage,
    check_lengths,
    check_texts,
    line_of,
    positions,
    read_split,
    subset,
    text_lengths,
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


def check_data(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    data = recipe.data
    tables: dict[str, Table] = {}
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        table = read_split(split, source, partial(read_source, source, data.text_columns[0]), report)
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
    check_leakage(tables, {split: _text_keys(table, recipe) for split, table in tables.items()}, report)
    if tokenizer is not None:
        for split, table in tables.items():
            texts, pairs = table_texts(table.head(SAMPLE_ROWS), data)
            if len(table) > SAMPLE_ROWS:
                report.notes.append(
                    f"{split}: token lengths from the first {SAMPLE_ROWS:,} of {len(table):,} rows"
                )
            lengths = text_lengths(split, texts, pairs, tokenizer, data.max_length, report)
            check_lengths(split, table.name, lengths, data.max_length, report)


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
                f"({plural(len(empty), 'row')}: {positions(table, empty)})",
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
        labelled[split] = subset(table, [i for i, v in enumerate(values) if not is_missing_label(v)])
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
        _carve_validation(recipe, labelled, spec, report)

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


def _carve_validation(
    recipe: Recipe, labelled: dict[str, Table], spec: LabelSpec, report: CheckReport
) -> None:
    """Set validation aside from train as training will (data.validation_split)."""
    share = recipe.data.validation_split or 0.0
    try:
        train, held, note = split_validation(
            labelled["train"], spec, recipe.data.label, share, recipe.train.seed
        )
    except DataError as exc:
        report.add("error", "validation_split", exc)
        return
    labelled["train"], labelled["validation"] = train, held
    report.notes.append(note)
    report.splits["train"].used = len(train)
    source = f"{train.name} ({share:.0%} carved from train)"
    report.splits["validation"] = SplitStats("validation", source, len(held), len(held))


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
    keys = _text_keys(table, recipe)
    repeats = check_texts(split, table, keys, recipe.data.text, report)
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
            f"e.g. {short(keys[row])!r}: {'|'.join(label(earlier))} at line {line_of(table, earlier)}, "
            f"{'|'.join(label(row))} at line {line_of(table, row)}",
            hint="decide on one label for each text",
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
