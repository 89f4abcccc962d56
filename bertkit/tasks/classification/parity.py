"""How two sets of a classifier's outputs compare: the same predictions, the same accuracy.

Used to accept an export (fp32 and int8 ONNX graphs) and half-precision prediction
on a GPU; the limits themselves are in bertkit.export.parity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import DataError
from bertkit.export.parity import BUILTIN_TEXTS, Sample
from bertkit.tasks.classification.labels import LabelSpec


def prediction_agreement(
    problem: str, threshold: float, reference: np.ndarray, candidate: np.ndarray
) -> tuple[float, str]:
    """Share of rows where two sets of logits predict the same, and what was compared.

    single: the label; multi: the set of labels over the threshold; regression: the
    value, within 1% of the range of the reference values.
    """
    if len(reference) == 0:
        return 1.0, "labels"
    if problem == "single":
        return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1))), "labels"
    if problem == "multi":
        cut = _logit_cut(threshold)
        same = ((reference >= cut) == (candidate >= cut)).all(axis=1)
        return float(np.mean(same)), "label sets"
    spread = float(reference.max() - reference.min()) or 1.0
    close = np.abs(reference - candidate).reshape(len(reference), -1).max(axis=1) <= 0.01 * spread
    return float(np.mean(close)), "values (within 1% of their range)"


def sample_texts(
    recipe: Any, data: Path | None, pair: bool | None, limit: int, labels: LabelSpec | None = None
) -> Sample:
    """Texts (and pair texts) for the parity check, where they came from, and their labels.

    The `data` file if given, else the run's validation (or test) data, else the
    built-in sentences. A pair model gets the built-in sentences paired with each
    other when its data holds no pairs. With `labels` (a classifier's), the sample's
    label column, when it has a usable one, is encoded into `targets`.

    Raises:
        DataError: the `data` file cannot be read or lacks the text column.
    """
    from bertkit.console import warn
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.classification.data import check_columns, read_source, table_texts
    from bertkit.tasks.classification.recipe import ClassificationData as DataSection

    columns = recipe.data if recipe is not None else DataSection()
    source = DataSource(path=str(data)) if data is not None else None
    if source is None and recipe is not None:
        source = recipe.data.validation or recipe.data.test
    if source is not None:
        try:
            table = read_source(source, columns.text_columns[0]).head(limit)
            check_columns(table, columns, need_label=False)
            texts, pairs = table_texts(table, columns)
        except DataError as exc:
            if data is not None:
                raise
            warn(f"checking the export on built-in sentences: the run's data cannot be read ({exc.message})")
        else:
            if texts and (pairs is not None or not pair):
                targets = _targets(table, columns.label, labels)
                return Sample(texts, pairs, f"{len(texts)} texts from {table.name}", targets)
    texts = list(BUILTIN_TEXTS)[:limit]
    pairs = texts[1:] + texts[:1] if pair else None
    return Sample(texts, pairs, "built-in sentences" + (" in pairs" if pairs else ""))


def _targets(table: Any, column: str, labels: LabelSpec | None) -> list[Any] | None:
    """The table's labels as label ids (or multi-hot rows), or None when it has none usable.

    A sample without a label column, with a missing or unknown label, or of a
    regression model has no targets: the int8 check then gates on agreement alone.
    """
    if labels is None or labels.problem == "regression" or column not in table.columns:
        return None
    try:
        return labels.encode(table, column)
    except DataError:
        return None


def sample_accuracy(problem: str, threshold: float, logits: np.ndarray, targets: list[Any]) -> float:
    """Share of the sample predicted right: the label (single) or the whole label set (multi)."""
    if problem == "multi":
        hot = np.asarray(targets) >= 0.5
        return float(np.mean(((logits >= _logit_cut(threshold)) == hot).all(axis=1)))
    return float(np.mean(logits.argmax(axis=1) == np.asarray(targets)))


def _logit_cut(threshold: float) -> float:
    """The logit at which a multi-label probability (a sigmoid) reaches `threshold`."""
    return float(np.log(threshold / (1 - threshold))) if 0 < threshold < 1 else 0.0
