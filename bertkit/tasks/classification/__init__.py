"""Text classification: single-label, multi-label and regression, on single texts or pairs."""

from __future__ import annotations

from bertkit.tasks.base import Task
from bertkit.tasks.classification.recipe import ClassificationRecipe


class Classification(Task):
    name = "classification"
    recipe = ClassificationRecipe
    command = "finetune"
    pipeline_tag = "text-classification"
    eval_options = frozenset(
        {"data", "split", "text-column", "text-pair", "label-column", "limit", "batch-size", "output",
         "metric", "device", "precision", "json"}
    )  # fmt: skip
    predict_options = frozenset(
        {"input", "output", "text-column", "text-pair", "input-format", "top-k", "threshold", "batch-size",
         "on-error", "backend", "quantize", "device", "precision", "json"}
    )  # fmt: skip
    architectures = ("ForSequenceClassification",)


TASK = Classification()
