"""Entity-level scores: precision, recall and F1 (micro and per type), and token accuracy.

An entity counts as found only when its type and both boundaries match, the CoNLL
convention; seqeval computes it, in its default mode, which reads tags as the
conlleval script does (a predicted `I-X` after `O` starts an entity). Gold tags are
valid IOB2 by the time they get here (bertkit.tasks.ner.tagging), so the mode only
decides how imperfect predictions are read, the same way conlleval reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bertkit.tasks.ner.windows import Windows, word_scores

MAIN_METRIC = "f1"
METRICS = ("f1", "precision", "recall", "accuracy", "loss")


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over entities, `f1/TYPE` per type, and token accuracy."""
    from seqeval.metrics import accuracy_score

    report = entity_report(gold, predicted)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    scores = {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "accuracy": float(accuracy_score(gold, predicted)) if any(gold) else 0.0,
    }
    for kind, row in report.items():
        if not kind.endswith(" avg"):
            scores[f"f1/{kind}"] = float(row["f1-score"])
    return scores


def entity_report(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, dict[str, float]]:
    """seqeval's report as plain floats: type (and `micro avg`, ...) -> precision, recall, f1-score."""
    from seqeval.metrics import classification_report

    if not any(tag != "O" for tags in gold for tag in tags) and not any(
        tag != "O" for tags in predicted for tag in tags
    ):
        return {}  # seqeval cannot report on data without any entity
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    return {kind: {k: float(v) for k, v in row.items()} for kind, row in report.items()}


def tags_from_ids(windows: Windows, predictions: np.ndarray, labels: list[str]) -> list[list[str]]:
    """Per sentence, the tag of each word from each window's predicted label ids (first sub-tokens).

    `predictions` holds one row of label ids per window (padded with -100 past its
    length). Each word takes the prediction of the window where it is most central;
    a word without sub-tokens is tagged O.
    """
    one_hot = []
    for index, features in enumerate(windows.features):
        ids = np.asarray(predictions[index][: len(features["input_ids"])])
        rows = np.zeros((len(ids), len(labels)), dtype=np.float32)
        rows[np.arange(len(ids)), np.clip(ids, 0, len(labels) - 1)] = 1.0
        one_hot.append(rows)
    return [tags_of(scores, labels) for scores in word_scores(windows, one_hot, "first")]


def tags_of(scores: np.ndarray, labels: list[str]) -> list[str]:
    """The tag of each word from its label scores (O for a word without scores)."""
    return ["O" if np.isnan(row).any() else labels[int(row.argmax())] for row in scores]


def make_compute_metrics(
    windows: Windows, gold: list[list[str]], labels: list[str]
) -> Callable[[Any], dict[str, float]]:
    """A Trainer `compute_metrics` for one evaluation split (its windows and its gold tags)."""

    def compute(prediction: Any) -> dict[str, float]:
        predicted = prediction.predictions
        if isinstance(predicted, tuple):
            predicted = predicted[0]
        return entity_scores(gold, tags_from_ids(windows, np.asarray(predicted), labels))

    return compute


def predicted_ids(logits: Any, labels: Any) -> Any:
    """A Trainer `preprocess_logits_for_metrics`: keep label ids, not (tokens x labels) logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)
