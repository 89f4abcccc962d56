"""Offline metrics, checked against values worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from bertkit.errors import BertkitError
from bertkit.tasks.classification.metrics import (
    available_metrics,
    class_probabilities,
    compute_classification_metrics,
    confusion,
    evaluate_library_metric,
    main_metric,
    make_compute_metrics,
    per_class_report,
    predict_labels,
    resolve_metric,
)


def one_hot_logits(preds: list[int], k: int) -> np.ndarray:
    logits = np.zeros((len(preds), k))
    logits[np.arange(len(preds)), preds] = 3.0
    return logits


def assert_plain_finite(metrics: dict) -> None:
    assert all(type(v) is float and math.isfinite(v) for v in metrics.values()), metrics
    json.dumps(metrics, allow_nan=False)


# Binary: labels [0, 1, 1, 0]; logits [0, s] give p(class 1) = sigmoid(s) and predictions [0, 1, 0, 0].
BINARY_LABELS = np.array([0, 1, 1, 0])
BINARY_LOGITS = np.array([[0.0, -2.0], [0.0, 2.0], [0.0, -0.5], [0.0, -0.3]])


def test_binary_metrics_match_hand_computation():
    m = compute_classification_metrics(BINARY_LOGITS, BINARY_LABELS, "single")
    assert_plain_finite(m)
    assert m["accuracy"] == pytest.approx(0.75)
    # class 0: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 0.8; class 1: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3
    assert m["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["precision_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["recall_macro"] == pytest.approx(0.75)
    assert m["f1_micro"] == pytest.approx(0.75)
    assert m["f1_weighted"] == pytest.approx((2 * 0.8 + 2 * 2 / 3) / 4)
    assert m["f1"] == pytest.approx(2 / 3)
    # tp 1, tn 2, fp 0, fn 1: (1*2 - 0*1) / sqrt(1 * 2 * 2 * 3)
    assert m["mcc"] == pytest.approx(2 / math.sqrt(12))
    # positives score {2, -0.5}, negatives {-2, -0.3}: 3 of 4 pairs ranked right
    assert m["roc_auc"] == pytest.approx(0.75)


def test_binary_roc_auc_left_out_when_one_class_present():
    m = compute_classification_metrics(BINARY_LOGITS, np.zeros(4, dtype=int), "single")
    assert "roc_auc" not in m
    assert m["accuracy"] == pytest.approx(0.75)
    assert_plain_finite(m)


def test_single_logit_column_is_read_as_binary():
    m = compute_classification_metrics(BINARY_LOGITS[:, 1:], BINARY_LABELS, "single")
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["roc_auc"] == pytest.approx(0.75)


def test_multiclass_metrics_match_hand_computation():
    labels = np.array([0, 1, 2, 2, 1, 0])
    logits = one_hot_logits([0, 2, 2, 2, 1, 1], 3)
    m = compute_classification_metrics(logits, labels, "single")
    assert_plain_finite(m)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 2/3 (P 1, R 1/2), 1/2 (P 1/2, R 1/2), 0.8 (P 2/3, R 1)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.5 + 0.8) / 3)
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    assert "roc_auc" not in m and "f1" not in m


def test_perfect_predictor():
    labels = np.array([0, 1, 2, 1])
    m = compute_classification_metrics(one_hot_logits(labels.tolist(), 3), labels, "single")
    assert m["mcc"] == pytest.approx(1.0)
    assert m["accuracy"] == m["f1_macro"] == pytest.approx(1.0)


MULTI_LABELS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=float)
# Logits > 0 means probability > 0.5: predictions [[1,0,1], [0,1,1], [1,0,0]].
MULTI_LOGITS = np.array([[2.0, -2.0, 1.5], [-1.0, 3.0, 0.5], [2.0, -0.2, -3.0]])


def test_multi_label_metrics_match_hand_computation():
    m = compute_classification_metrics(
        MULTI_LOGITS, MULTI_LABELS, "multi", label_names=["sport", "politics", "tech"]
    )
    assert_plain_finite(m)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["f1_micro"] == pytest.approx(0.8)  # tp 4, fp 1, fn 1
    assert m["f1/sport"] == pytest.approx(1.0)
    assert m["f1/politics"] == pytest.approx(2 / 3)
    assert m["f1/tech"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_multi_label_threshold_and_default_names():
    # At 0.75 the logit 0.5 (p 0.62) of row 1 is no longer predicted: row 1 becomes exact.
    m = compute_classification_metrics(MULTI_LOGITS, MULTI_LABELS, "multi", threshold=0.75)
    assert m["subset_accuracy"] == pytest.approx(2 / 3)
    assert "f1/LABEL_2" in m


def test_regression_metrics():
    m = compute_classification_metrics(
        np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]), "regression"
    )
    assert_plain_finite(m)
    assert m["mse"] == pytest.approx(0.25)
    assert m["mae"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(0.5)
    linear = compute_classification_metrics(
        np.array([[3.0], [5.0], [7.0], [9.0]]), np.arange(1.0, 5.0), "regression"
    )
    assert linear["pearson"] == pytest.approx(1.0)
    assert linear["spearman"] == pytest.approx(1.0)


def test_regression_constant_predictions_give_zero_correlation_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_classification_metrics(np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 4.0]), "regression")
        one = compute_classification_metrics(np.array([2.0]), np.array([1.0]), "regression")
    assert m["pearson"] == 0.0 and m["spearman"] == 0.0
    assert one["pearson"] == 0.0 and one["mse"] == pytest.approx(1.0)
    assert_plain_finite(m)


def test_non_finite_scores_are_left_out_and_empty_input_gives_nothing():
    m = compute_classification_metrics(np.array([np.inf, 1.0]), np.array([0.0, 1.0]), "regression")
    assert "mse" not in m and "rmse" not in m
    assert_plain_finite(m)
    assert compute_classification_metrics(np.zeros((0, 2)), np.zeros(0), "single") == {}
    diverged = compute_classification_metrics(
        np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]), "single"
    )
    assert "accuracy" in diverged and "roc_auc" not in diverged
    assert_plain_finite(diverged)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="problem"):
        compute_classification_metrics(BINARY_LOGITS, BINARY_LABELS, "ranking")
    with pytest.raises(ValueError, match="4 predictions but 3 labels"):
        compute_classification_metrics(BINARY_LOGITS, BINARY_LABELS[:3], "single")
    with pytest.raises(ValueError, match="label names"):
        compute_classification_metrics(MULTI_LOGITS, MULTI_LABELS, "multi", label_names=["a"])


def test_probabilities_and_predictions():
    probs = class_probabilities(np.array([[0.0, 0.0], [1000.0, 0.0]]), "single")
    np.testing.assert_allclose(probs, [[0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_array_equal(predict_labels(MULTI_LOGITS, "multi"), [[1, 0, 1], [0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(predict_labels(np.array([[1.5], [2.5]]), "regression"), [1.5, 2.5])


def test_main_metric_choices():
    assert main_metric("single", 2) == ("accuracy", True)
    assert main_metric("single", 5) == ("accuracy", True)
    assert main_metric("multi", 4) == ("f1_micro", True)
    assert main_metric("regression", 1) == ("pearson", True)
    for problem, k in (("single", 2), ("single", 5), ("multi", 3), ("regression", 1)):
        assert main_metric(problem, k)[0] in available_metrics(problem, k)


def test_resolve_metric():
    assert resolve_metric("eval_f1_macro", "single", 3) == ("f1_macro", True)
    assert resolve_metric("loss", "single", 3) == ("loss", False)
    assert resolve_metric("hamming_loss", "multi", 3) == ("hamming_loss", False)
    assert resolve_metric("f1/tech", "multi", 2, ["sport", "tech"]) == ("f1/tech", True)
    assert resolve_metric("rmse", "regression", 1) == ("rmse", False)
    with pytest.raises(BertkitError) as caught:
        resolve_metric("f1_marco", "single", 3)
    assert "f1_macro" in caught.value.hint
    with pytest.raises(BertkitError):
        resolve_metric("roc_auc", "single", 3)  # only reported for binary tasks


def test_make_compute_metrics_takes_eval_prediction_like_objects():
    compute = make_compute_metrics("single")
    hidden = np.zeros((4, 2, 8))
    via_object = compute(SimpleNamespace(predictions=(BINARY_LOGITS, hidden), label_ids=BINARY_LABELS))
    via_pair = compute((BINARY_LOGITS, BINARY_LABELS))
    assert via_object == via_pair
    assert via_object["accuracy"] == pytest.approx(0.75)
    multi = make_compute_metrics("multi", threshold=0.75, label_names=["a", "b", "c"])
    assert multi(SimpleNamespace(predictions=MULTI_LOGITS, label_ids=MULTI_LABELS))["subset_accuracy"] == (
        pytest.approx(2 / 3)
    )


def test_per_class_report_and_confusion():
    labels = np.array([0, 1, 2, 2, 1, 0])
    preds = np.array([0, 2, 2, 2, 1, 1])
    rows = per_class_report(preds, labels, ["neg", "neu", "pos"])
    assert [r["label"] for r in rows] == ["neg", "neu", "pos"]
    assert rows[0] == {
        "label": "neg",
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert rows[2]["precision"] == pytest.approx(2 / 3) and rows[2]["recall"] == 1.0
    json.dumps(rows)
    assert confusion(preds, labels, 3) == [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert confusion(np.array([], dtype=int), np.array([], dtype=int), 2) == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="class ids"):
        confusion(np.array([3]), np.array([0]), 3)


def test_evaluate_library_metric_wraps_failures(monkeypatch):
    def failing_load(name):
        raise FileNotFoundError(f"Couldn't find a module script at {name}")

    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=failing_load))
    with pytest.raises(BertkitError, match="cannot load metric 'bleu'") as caught:
        evaluate_library_metric("bleu", ["a"], ["a"])
    assert "Hub" in caught.value.hint and "f1_macro" in caught.value.hint


def test_evaluate_library_metric_returns_plain_values(monkeypatch):
    class Metric:
        def compute(self, predictions, references):
            assert predictions == [1, 0] and references == [1, 1]  # numpy arrays arrive as lists
            return {"score": np.float32(0.5), "per_item": np.array([1.0, 0.0])}

    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=lambda name: Metric()))
    result = evaluate_library_metric("custom", np.array([1, 0]), np.array([1, 1]))
    assert result == {"score": 0.5, "per_item": [1.0, 0.0]}
    assert type(result["score"]) is float


def test_importing_does_not_pull_in_torch_or_sklearn():
    code = (
        "import sys, bertkit.tasks.classification.metrics, bertkit.tasks.classification.report; "
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
