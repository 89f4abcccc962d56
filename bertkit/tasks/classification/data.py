"""Turn a classification recipe's data section into tokenized train/validation/test sets.

Reading, column checks and label decisions all happen before anything is tokenized,
so a bad file fails in a second, not after a model has loaded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import DataError
from bertkit.io.reading import Table, read_hub, read_table
from bertkit.io.text import OnError
from bertkit.recipe.base import DataSource
from bertkit.tasks.classification.labels import LabelSpec, detect_labels
from bertkit.tasks.classification.recipe import ClassificationData as DataSection
from bertkit.tasks.classification.recipe import LabelsSection

SPLITS = ("train", "validation", "test")


@dataclass
class ClassificationData:
    """The labelled tables of a run, read and checked but not yet tokenized.

    Attributes:
        tables: split name -> Table (only the splits the recipe has).
        labels: the label decision, from the training split.
        targets: split name -> encoded targets, aligned with the table rows.
        notes: decisions and counts to show the user.
    """

    tables: dict[str, Table]
    labels: LabelSpec
    targets: dict[str, list[Any]]
    notes: list[str] = field(default_factory=list)

    def texts(self, split: str, data: DataSection) -> tuple[list[str], list[str] | None]:
        """The input texts (and pair texts) of a split, as the model sees them."""
        return table_texts(self.tables[split], data)


def read_source(source: DataSource, text_column: str = "text", on_error: OnError | None = None) -> Table:
    """Read one split from its source (local file or Hub).

    `on_error` receives each malformed row of a local file (see `read_table`).
    """
    if source.hub is not None:
        return read_hub(source.hub, source.split or "train", source.config, source.revision)
    return read_table(Path(str(source.path)), source.format, text_column=text_column, on_error=on_error)


def load_classification_data(
    data: DataSection, labels: LabelsSection, *, seed: int, limit: int | None = None
) -> ClassificationData:
    """Read every split, check columns, decide labels, carve validation if asked.

    Args:
        data: the recipe's data section.
        labels: the recipe's labels section.
        seed: seed for the validation carve-out.
        limit: keep only the first N rows of each split (overrides data.limit).

    Raises:
        DataError: unreadable files, missing columns, bad or unseen labels.
    """
    limit = limit or data.limit
    tables: dict[str, Table] = {}
    notes: list[str] = []
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        table = read_source(source, data.text_columns[0])
        check_columns(table, data, need_label=True)
        count = len(table)
        table = table.head(limit)
        limited = f" (first {len(table)} used: limit)" if len(table) < count else ""
        notes.append(f"{split}: {count:,} rows from {table.name}{limited}")
        notes.extend(table.notes)
        tables[split] = table

    spec = detect_labels(
        tables["train"], data.label, declared=labels.type, separator=labels.separator, names=labels.names
    )
    if data.validation_split and "validation" not in tables:
        tables["train"], tables["validation"], note = split_validation(
            tables["train"], spec, data.label, data.validation_split, seed
        )
        notes.append(note)
    targets = {split: spec.encode(table, data.label) for split, table in tables.items()}
    return ClassificationData(tables, spec, targets, notes)


# How each column setting is given on the command line of `eval` and `predict`.
COLUMN_OPTIONS = {
    "data.text": "--text-column",
    "data.text_pair": "--text-pair",
    "data.label": "--label-column",
}


def check_columns(table: Table, data: DataSection, *, need_label: bool, options: bool = False) -> None:
    """Fail with the available columns (and the closest one) when a named column is missing.

    `options`: the columns came from command-line options (COLUMN_OPTIONS), not a recipe.
    """
    problems = column_problems(table, data, need_label=need_label, options=options)
    if problems:
        raise problems[0]


def column_problems(
    table: Table, data: DataSection, *, need_label: bool, options: bool = False
) -> list[DataError]:
    """One error per column the recipe (or an option) names but the table lacks, with the closest."""
    wanted = [*data.text_columns, *([data.text_pair] if data.text_pair else [])]
    keys = ["data.text"] * len(data.text_columns) + (["data.text_pair"] if data.text_pair else [])
    if need_label:
        wanted.append(data.label)
        keys.append("data.label")
    available = list(table.columns)
    problems = []
    inputs = [*data.text_columns, *([data.text_pair] if data.text_pair else [])]
    if need_label and data.label in inputs:
        where = COLUMN_OPTIONS["data.text"] if options else "data.text"
        problems.append(
            DataError(
                f"{table.name}: the label column {data.label!r} is also a text column ({where}): "
                "the model would read the answer",
                hint=f"remove {data.label!r} from {where}",
                code="label_in_text",
            )
        )
    for column, key in zip(wanted, keys, strict=True):
        if column not in table.columns:
            close = difflib.get_close_matches(column, available, n=1)
            setting = f"{COLUMN_OPTIONS[key]} " if options else f"--set {key}="
            hint = f"did you mean {setting}{close[0]}? " if close else ""
            where = COLUMN_OPTIONS[key] if options else key
            problems.append(
                DataError(
                    f"{table.name}: no column {column!r} ({where}); columns are: {', '.join(available)}",
                    hint=f"{hint}give {where} the column that holds it",
                    code="missing_column",
                )
            )
    return problems


def table_texts(table: Table, data: DataSection) -> tuple[list[str], list[str] | None]:
    """Texts of a table (joined when several text columns) and pair texts, if any."""
    columns = [table.columns[c] for c in data.text_columns]
    texts = [" ".join(_text(v) for v in parts) for parts in zip(*columns, strict=True)]
    pairs = [_text(v) for v in table.columns[data.text_pair]] if data.text_pair else None
    return texts, pairs


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def split_validation(
    train: Table, spec: LabelSpec, column: str, share: float, seed: int
) -> tuple[Table, Table, str]:
    """Carve a seeded validation share off train, stratified by label when possible."""
    from sklearn.model_selection import train_test_split

    indices = list(range(len(train)))
    stratify = None
    how = "random"
    if spec.problem == "single":
        keys = [str(v).strip() for v in train.columns[column]]
        counts: dict[str, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        if min(counts.values()) >= 2:
            stratify, how = keys, "stratified"
    try:
        keep, held = train_test_split(indices, test_size=share, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(
            f"{train.name}: cannot carve a validation share of {share}: {exc}",
            hint="use a larger data.validation_split or give validation data",
        ) from None
    keep, held = sorted(keep), sorted(held)
    note = f"validation: {len(held):,} rows carved from train ({share:.0%}, {how}, seed {seed})"
    return _rows(train, keep), _rows(train, held), note


def _rows(table: Table, indices: list[int]) -> Table:
    lines = [table.lines[i] for i in indices] if table.lines is not None else None
    columns = {k: [v[i] for i in indices] for k, v in table.columns.items()}
    return Table(table.name, columns, lines)
