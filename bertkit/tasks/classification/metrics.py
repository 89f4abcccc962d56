"""Metrics that work offline: single-label, multi-label and regression scores.

Computed locally with scikit-learn and scipy (imported inside the functions, so importing
this module stays cheap). Every score is a plain, finite Python float: a metric undefined
for the data at hand (ROC AUC with one class present) is left out, never NaN. The
`evaluate` library is an opt-in extra for other names; it fetches metric scripts from the Hub.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bertkit.errors import BertkitError

PROBLEMS = ("single", "multi", "regression")

# Metrics where smaller is better; every other metric grows with quality.
LOWER_IS_BETTER = frozenset({"loss", "mse", "mae", "rmse", "hamming_loss"})

_AVERAGES = ("macro", "micro", "weighted")


def _check_problem(problem: str) -> None:
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, not {problem!r}")


def default_label_names(num_labels: int) -> list[str]:
    """The names Transformers gives unnamed labels (`LABEL_0`, ...), used when none are known."""
    return [f"LABEL_{i}" for i in range(num_labels)]


def _single_logits(logits: np.ndarray) -> np.ndarray:
    """(n, k) logits; a single logit column (n,) or (n, 1) is read as binary, class 1 vs 0."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        column = logits.reshape(-1, 1)
        return np.hstack([np.zeros_like(column), column])  # softmax([0, x]) = [1 - s(x), s(x)]
    if logits.ndim != 2:
        raise ValueError(f"single-label logits must have shape (n, k), not {logits.shape}")
    return logits


def class_probabilities(logits: np.ndarray, problem: str) -> np.ndarray:
    """Softmax over classes for `single`, an independent sigmoid per label for `multi`."""
    if problem == "single":
        z = _single_logits(logits)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    if problem == "multi":
        z = np.asarray(logits, dtype=np.float64)
        with np.errstate(over="ignore"):  # exp overflow for very negative logits gives 0, as it should
            return 1.0 / (1.0 + np.exp(-z))
    raise ValueError(f"class probabilities exist for single and multi, not {problem!r}")


def predict_labels(logits: np.ndarray, problem: str, threshold: float = 0.5) -> np.ndarray:
    """Predictions from logits: class ids (single), 0/1 indicator rows (multi), values (regression).

    A multi-label row predicts every label whose probability is at least `threshold`.
    """
    _check_problem(problem)
    if problem == "single":
        return _single_logits(logits).argmax(axis=1)
    if problem == "multi":
        return (class_probabilities(logits, "multi") >= threshold).astype(int)
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] != 1:
        raise ValueError(f"regression logits must have shape (n,) or (n, 1), not {values.shape}")
    return values.reshape(-1)


def compute_classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    problem: str,
    *,
    threshold: float = 0.5,
    label_names: list[str] | None = None,
) -> dict[str, float]:
    """Scores for one evaluation, as a flat dict of finite Python floats.

    Args:
        logits: model outputs, (n, k) for single/multi, (n,) or (n, 1) for regression.
        labels: class ids (n,) for single, multi-hot (n, k) for multi, floats (n,) for regression.
        problem: `single`, `multi` or `regression`.
        threshold: multi-label decision threshold on each label's probability.
        label_names: multi-label names for the per-label `f1/<name>` keys.

    Returns:
        single: accuracy, precision/recall/f1 x macro/micro/weighted, mcc; binary adds f1
        (class 1) and roc_auc (only when both classes occur). multi: f1_micro, f1_macro,
        subset_accuracy, hamming_loss, f1/<name>. regression: mse, mae, rmse, pearson,
        spearman. An empty evaluation gives an empty dict.
    """
    _check_problem(problem)
    labels = np.asarray(labels)
    logits = np.asarray(logits, dtype=np.float64)
    if len(labels) != len(logits):
        raise ValueError(f"{len(logits)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        return {}
    compute = {"single": _single_metrics, "multi": _multi_metrics, "regression": _regression_metrics}
    # Undefined cases are handled explicitly below; silence sklearn/numpy so a Trainer log
    # is not flooded with the same warning at every evaluation.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        raw = compute[problem](logits, labels, threshold=threshold, label_names=label_names)
    return {name: float(value) for name, value in raw.items() if math.isfinite(value)}


def _single_metrics(logits: np.ndarray, labels: np.ndarray, **_: Any) -> dict[str, float]:
    from sklearn import metrics as skm

    logits = _single_logits(logits)
    labels = labels.astype(int).reshape(-1)
    preds = logits.argmax(axis=1)
    out = {"accuracy": skm.accuracy_score(labels, preds)}
    for average in _AVERAGES:
        p, r, f, _ = skm.precision_recall_fscore_support(labels, preds, average=average, zero_division=0)
        out.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    out["mcc"] = skm.matthews_corrcoef(labels, preds)
    if logits.shape[1] == 2:
        out["f1"] = skm.f1_score(labels, preds, labels=[1], average=None, zero_division=0)[0]
        scores = class_probabilities(logits, "single")[:, 1]
        # AUC needs both classes among the labels, and finite scores (NaN logits: a diverged model).
        if len(np.unique(labels)) == 2 and np.isfinite(scores).all():
            out["roc_auc"] = skm.roc_auc_score(labels, scores)
    return out


def _multi_metrics(
    logits: np.ndarray, labels: np.ndarray, *, threshold: float, label_names: list[str] | None
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss

    if logits.ndim != 2 or labels.shape != logits.shape:
        raise ValueError(f"multi-label logits {logits.shape} and labels {labels.shape} must both be (n, k)")
    names = label_names or default_label_names(logits.shape[1])
    if len(names) != logits.shape[1]:
        raise ValueError(f"{len(names)} label names for {logits.shape[1]} labels")
    truth = (labels.astype(np.float64) >= 0.5).astype(int)  # tolerate smoothed multi-hot targets
    preds = predict_labels(logits, "multi", threshold)
    out = {
        "f1_micro": f1_score(truth, preds, average="micro", zero_division=0),
        "f1_macro": f1_score(truth, preds, average="macro", zero_division=0),
        "subset_accuracy": accuracy_score(truth, preds),
        "hamming_loss": hamming_loss(truth, preds),
    }
    per_label = f1_score(truth, preds, average=None, zero_division=0)
    out.update({f"f1/{name}": value for name, value in zip(names, per_label, strict=True)})
    return out


def _correlation(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    """Pearson or Spearman correlation; 0.0 where it is undefined (constant input, n < 2)."""
    from scipy.stats import pearsonr, spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    value = float((pearsonr if kind == "pearson" else spearmanr)(a, b)[0])
    return value if math.isfinite(value) else 0.0


def _regression_metrics(logits: np.ndarray, labels: np.ndarray, **_: Any) -> dict[str, float]:
    preds = predict_labels(logits, "regression")
    truth = labels.astype(np.float64).reshape(-1)
    error = preds - truth
    mse = float(np.mean(error**2))
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(error))),
        "rmse": math.sqrt(mse),
        "pearson": _correlation("pearson", preds, truth),
        "spearman": _correlation("spearman", preds, truth),
    }


def main_metric(problem: str, num_labels: int) -> tuple[str, bool]:
    """The metric that picks the best checkpoint by default, and whether greater is better.

    single (binary and multiclass) -> accuracy: always defined, what people compare
      (GLUE, SST-2), and stable on small validation sets. With imbalanced classes set
      `train.metric: f1_macro` (or `mcc`) instead.
    multi -> f1_micro: pools every label decision, so it stays stable when rare labels
      have no positives in the validation set (f1_macro swings, subset accuracy is
      near 0 for many labels early in training).
    regression -> pearson: the usual score for sentence-similarity style targets
      (STS-B), and the loss (MSE) is already logged as eval_loss.
    `num_labels` is part of the signature so the choice may depend on it; today it does not.
    """
    _check_problem(problem)
    name = {"single": "accuracy", "multi": "f1_micro", "regression": "pearson"}[problem]
    return name, name not in LOWER_IS_BETTER


def available_metrics(problem: str, num_labels: int, label_names: list[str] | None = None) -> list[str]:
    """The metric names `compute_classification_metrics` can report for this task."""
    _check_problem(problem)
    if problem == "regression":
        return ["mse", "mae", "rmse", "pearson", "spearman"]
    if problem == "multi":
        names = label_names or default_label_names(num_labels)
        return ["f1_micro", "f1_macro", "subset_accuracy", "hamming_loss", *(f"f1/{n}" for n in names)]
    per_average = [f"{m}_{a}" for m in ("precision", "recall", "f1") for a in _AVERAGES]
    return ["accuracy", *per_average, "mcc", *(["f1", "roc_auc"] if num_labels <= 2 else [])]


def resolve_metric(
    name: str, problem: str, num_labels: int, label_names: list[str] | None = None
) -> tuple[str, bool]:
    """Check a user-chosen metric name (`train.metric`) before training starts.

    Accepts names with or without the Trainer's `eval_` prefix, and `loss`.

    Returns:
        The bare metric name and whether greater is better.

    Raises:
        BertkitError: the task does not produce that metric; the hint names the closest one.
    """
    bare = name.removeprefix("eval_")
    known = ["loss", *available_metrics(problem, num_labels, label_names)]
    if bare not in known:
        close = difflib.get_close_matches(bare, known, n=1)
        did_you_mean = f"did you mean `{close[0]}`? " if close else ""
        listed = ", ".join(k for k in known if not k.startswith("f1/"))
        per_label = " and f1/<label name>" if problem == "multi" else ""
        raise BertkitError(
            f"unknown metric {name!r} for a {problem} task",
            hint=f"{did_you_mean}metrics available: {listed}{per_label}",
        )
    return bare, bare not in LOWER_IS_BETTER


def _first(value: Any) -> Any:
    # A model returning several outputs gives a tuple; its first element holds the logits.
    return value[0] if isinstance(value, tuple) else value


def make_compute_metrics(
    problem: str, *, threshold: float = 0.5, label_names: list[str] | None = None
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` function for a Transformers Trainer.

    It takes an `EvalPrediction` (or any object with `.predictions` and `.label_ids`, or a
    `(predictions, label_ids)` pair); when predictions are a tuple (a model that also
    returns hidden states) the first element holds the logits.
    """
    _check_problem(problem)
    options = {"problem": problem, "threshold": threshold, "label_names": label_names}

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            predictions, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        else:
            predictions, label_ids = eval_prediction[0], eval_prediction[1]
        return compute_classification_metrics(_first(predictions), _first(label_ids), **options)

    return compute_metrics


def json_safe(value: Any) -> Any:
    """JSON-safe Python values from numpy scalars and arrays; non-finite floats become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate_library_metric(name: str, predictions: Any, references: Any, **kwargs: Any) -> dict[str, Any]:
    """Compute a metric from the Hugging Face `evaluate` library (loaded on first use).

    Raises:
        BertkitError: `evaluate` is missing, the metric cannot be loaded (unknown name,
            no network) or it fails on these inputs.
    """
    offline = sorted({m for p in PROBLEMS for m in available_metrics(p, 2) if "/" not in m})
    hint = (
        "the evaluate library fetches metric scripts from the Hugging Face Hub, so it needs the "
        f"network (or a local metric folder); built-in offline metrics: {', '.join(offline)}"
    )
    try:
        import evaluate
    except ImportError as exc:
        raise BertkitError(
            f"cannot compute metric {name!r}: the evaluate library is not installed",
            hint="pip install evaluate",
        ) from exc
    try:
        metric = evaluate.load(name)
    except Exception as exc:  # evaluate raises anything from FileNotFoundError to ConnectionError
        raise BertkitError(f"cannot load metric {name!r} from the evaluate library: {exc}", hint) from exc
    as_list = [p.tolist() if isinstance(p, np.ndarray) else p for p in (predictions, references)]
    try:
        result = metric.compute(predictions=as_list[0], references=as_list[1], **kwargs)
    except Exception as exc:  # the metric script's own validation; its message says what is wrong
        hint = "check that predictions and references have the types this metric expects"
        raise BertkitError(f"metric {name!r} failed: {exc}", hint) from exc
    return json_safe(result or {})


def per_class_report(preds: np.ndarray, labels: np.ndarray, label_names: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support for each class (or each label, given 0/1 indicator rows)."""
    from sklearn.metrics import precision_recall_fscore_support

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(
            np.asarray(labels),
            np.asarray(preds),
            labels=list(range(len(label_names))),
            average=None,
            zero_division=0,
        )
    rows = zip(label_names, p.tolist(), r.tolist(), f.tolist(), s.tolist(), strict=True)
    return [dict(label=n, precision=pi, recall=ri, f1=fi, support=si) for n, pi, ri, fi, si in rows]


def confusion(preds: np.ndarray, labels: np.ndarray, num_labels: int) -> list[list[int]]:
    """Confusion counts: row = true class, column = predicted class."""
    preds = np.asarray(preds, dtype=int).reshape(-1)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    for what, ids in (("predicted", preds), ("true", labels)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
            raise ValueError(
                f"{what} class ids must lie in [0, {num_labels}), found {ids.min()}..{ids.max()}"
            )
    matrix = np.zeros((num_labels, num_labels), dtype=int)
    np.add.at(matrix, (labels, preds), 1)
    return matrix.tolist()
