"""Decide what the labels are (single-label, multi-label, regression) and encode them.

The decision is made once, from the training split, printed, and written into the
model config (`id2label`, `label2id`, `problem_type`), so evaluation and prediction
never have to guess again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from bertkit.errors import DataError
from bertkit.io.reading import Table

Problem = Literal["single", "multi", "regression"]

PROBLEM_TYPES = {
    "single": "single_label_classification",
    "multi": "multi_label_classification",
    "regression": "regression",
}


@dataclass(frozen=True)
class LabelSpec:
    """What the label column holds and how to turn it into training targets.

    Attributes:
        problem: single, multi or regression.
        names: label names in id order (empty for regression).
        reason: one line explaining the decision, for the user.
        separator: splits string labels into several (multi-label only).
    """

    problem: Problem
    names: tuple[str, ...] = ()
    reason: str = ""
    separator: str | None = None

    @property
    def num_labels(self) -> int:
        return 1 if self.problem == "regression" else len(self.names)

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPES[self.problem]

    def id2label(self) -> dict[int, str]:
        return {i: n for i, n in enumerate(self.names)} if self.names else {0: "score"}

    def encode(self, table: Table, column: str) -> list[Any]:
        """Targets for every row of `table`: ids, multi-hot vectors or floats.

        Raises:
            DataError: a missing value, or labels never seen in training (all named).
        """
        values = table.columns[column]
        if self.problem == "regression":
            return [_as_float(v, table, i, column) for i, v in enumerate(values)]
        index = {name: i for i, name in enumerate(self.names)}
        numeric_names = any(name.lstrip("-").isdigit() for name in self.names)
        unknown: dict[str, str] = {}
        encoded: list[Any] = []
        for row, value in enumerate(values):
            _require(value, table, row, column)
            if self.problem == "multi":
                hot = [0.0] * len(self.names)
                for name in _split(value, self.separator):
                    if name in index:
                        hot[index[name]] = 1.0
                    else:
                        unknown.setdefault(name, table.where(row))
                encoded.append(hot)
            else:
                key = _key(value)
                if key in index:
                    encoded.append(index[key])
                elif key.isdigit() and int(key) < len(self.names) and not numeric_names:
                    encoded.append(int(key))  # an integer id for a model with named labels
                else:
                    unknown.setdefault(key, table.where(row))
                    encoded.append(-1)
        if unknown:
            listed = ", ".join(f"{name!r} (first at {where})" for name, where in list(unknown.items())[:5])
            raise DataError(
                f"{table.name}: {len(unknown)} label(s) not seen in training: {listed}",
                hint="add examples of these labels to the training data, fix the values, "
                "or list every label in labels.names",
                code="unseen_labels",
            )
        return encoded


def ids_for_names(spec: LabelSpec, table: Table, column: str) -> dict[str, str]:
    """Integer labels that `spec.encode` reads as class ids of a model with named labels.

    A file labelled 0/1 given to a model whose labels are neg/pos is read as ids
    (0 = neg, 1 = pos, the model's order): right when the file uses the model's
    coding, inverted when it does not. Returns id -> name, to be shown to the user.
    """
    if spec.problem != "single" or any(name.lstrip("-").isdigit() for name in spec.names):
        return {}
    used = {_key(v) for v in table.columns[column] if not is_missing_label(v)}
    return {
        key: spec.names[int(key)]
        for key in sorted(used, key=_natural)
        if key.isdigit() and key not in spec.names and int(key) < len(spec.names)
    }


def detect_labels(
    train: Table,
    column: str,
    *,
    declared: str = "auto",
    separator: str | None = None,
    names: list[str] | None = None,
) -> LabelSpec:
    """Work out the label problem and names from the training labels.

    Args:
        train: the training table.
        column: the label column.
        declared: `auto` or an explicit single | multi | regression (labels.type).
        separator: splits string labels into several labels (multi-label).
        names: explicit label names in id order (labels.names).

    Raises:
        DataError: empty labels, mixed types, non-numeric regression labels, a single class.
    """
    values = train.columns[column]
    for row, value in enumerate(values):
        _require(value, train, row, column)
    kinds = {_kind(v, separator) for v in values}
    if declared == "auto":
        problem, reason = _decide(kinds, train, column, values, separator)
    else:
        problem, reason = declared, "set by labels.type"  # type: ignore[assignment]

    if problem == "regression":
        for row, value in enumerate(values):
            _as_float(value, train, row, column)
        return LabelSpec("regression", (), reason)

    if problem == "multi":
        seen = sorted({name for v in values for name in _split(v, separator)}, key=_natural)
    else:
        seen = sorted({_key(v) for v in values}, key=_natural)

    if names:
        missing = [s for s in seen if s not in names]
        if problem == "single" and kinds <= {"int"} and not missing:
            pass  # the values are names already
        elif problem == "single" and kinds <= {"int"} and all(0 <= int(s) < len(names) for s in seen):
            # Integer labels with display names: id i is called names[i].
            return LabelSpec("single", tuple(names), f"{reason}; names from labels.names", separator)
        elif missing:
            raise DataError(
                f"{train.name}: labels {missing[:5]} are not in labels.names {names}",
                hint="list every label in labels.names, or remove labels.names to use the data's labels",
            )
        seen = list(names)
    if problem == "single" and len(seen) < 2:
        raise DataError(
            f"{train.name}: column {column!r} has a single label value {seen[0]!r}",
            hint="classification needs at least two classes in the training data",
            code="single_class",
        )
    return LabelSpec(problem, tuple(seen), reason, separator)  # type: ignore[arg-type]


def _decide(
    kinds: set[str], train: Table, column: str, values: list[Any], separator: str | None
) -> tuple[Problem, str]:
    if "list" in kinds or "separated" in kinds:
        if kinds - {"list", "separated", "str", "int"}:
            _mixed(train, column, values, separator)
        how = "lists of labels" if "list" in kinds else f"labels separated by {separator!r}"
        return "multi", f"multi-label: the column holds {how}"
    if kinds <= {"int"}:
        written = sorted({str(v).strip() for v in values if _is_decimal_text(v)}, key=_natural)
        how = f" (written {', '.join(written[:3])}: read as {', '.join(_key(w) for w in written[:3])})"
        return "single", "single-label: the column holds integer class ids" + (how if written else "")
    if kinds <= {"int", "float"}:
        return "regression", "regression: the column holds non-integer numbers"
    if kinds <= {"str"}:
        return "single", "single-label: the column holds class names"
    _mixed(train, column, values, separator)
    raise AssertionError("unreachable")


def _is_decimal_text(value: Any) -> bool:
    """A label written like `1.0`: a whole number with a decimal point (or a float value)."""
    return isinstance(value, float) or (isinstance(value, str) and "." in value)


def _mixed(train: Table, column: str, values: list[Any], separator: str | None) -> None:
    first = _kind(values[0], separator)
    row = next(i for i, v in enumerate(values) if _kind(v, separator) != first)
    raise DataError(
        f"{train.where(row)}: column {column!r} mixes label types: {values[0]!r} ({first}) "
        f"and {values[row]!r} ({_kind(values[row], separator)})",
        hint="make every label a class name, an integer id, or a number; or set labels.type",
    )


def _kind(value: Any, separator: str | None) -> str:
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):
        return "int"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "int" if value.is_integer() else "float"
    text = str(value).strip()
    if separator and separator in text:
        return "separated"
    try:
        int(text)
        return "int"
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return "str"
    if not math.isfinite(number):
        return "str"
    # "1.0" in a CSV is the same label as 1.0 in JSON and 1 anywhere: an integer id.
    return "int" if number.is_integer() else "float"


def _key(value: Any) -> str:
    """The label name of a single label value ("1", 1 and 1.0 are the same label)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def _split(value: Any, separator: str | None) -> list[str]:
    if isinstance(value, list | tuple):
        return [_key(v) for v in value]
    text = str(value).strip()
    parts = text.split(separator) if separator else [text]
    return [_key(p) for p in parts if p.strip()]


def _natural(name: str) -> tuple[int, float | str]:
    """Sort numeric labels numerically (2 before 10) and names alphabetically."""
    try:
        number = float(name)
    except ValueError:
        return (1, name)
    return (0, number) if math.isfinite(number) else (1, name)


# Written-out words for "no value": a label spelled so is a class name (`none` is a
# real class in many tasks), but `bertkit check` points it out in case it is not.
MISSING_WORDS = ("nan", "null", "none", "na", "n/a")


def is_missing_label(value: Any) -> bool:
    """Whether a label cell is empty: None (JSON null, a missing key), NaN, or a blank string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


def label_names_of(value: Any, problem: Problem, separator: str | None = None) -> list[str]:
    """The label names one (non-missing) value stands for: one, or several for multi-label."""
    return _split(value, separator) if problem == "multi" else [_key(value)]


def _require(value: Any, table: Table, row: int, column: str) -> None:
    if is_missing_label(value):
        raise DataError(
            f"{table.where(row)}: empty label in column {column!r}",
            hint="give every row a label, or drop unlabelled rows",
        )


def _as_float(value: Any, table: Table, row: int, column: str) -> float:
    _require(value, table, row, column)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(
            f"{table.where(row)}: regression label {value!r} in column {column!r} is not a number",
            hint="regression labels must be finite numbers",
        )
    return number
