"""Text classification: single-label, multi-label and regression, on single texts or pairs."""

from __future__ import annotations

from typing import Any

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

    def check(self, recipe: Any, tokenizer: Any, report: Any) -> None:
        from bertkit.tasks.classification.checks import check_classification

        check_classification(recipe, report.limit, tokenizer, report)

    def read(self, recipe: Any) -> Any:
        from bertkit.tasks.classification.train import read

        return read(recipe)

    def prepare(self, recipe: Any, data: Any, tokenizer: Any, placement: Any) -> Any:
        from bertkit.tasks.classification.train import prepare

        return prepare(recipe, data, tokenizer, placement)

    def evaluate(self, model: Any, options: dict[str, Any]) -> Any:
        from bertkit.tasks.classification.commands import evaluate

        return evaluate(model, options)

    def predict(self, model: Any, texts: list[str], options: dict[str, Any]) -> None:
        from bertkit.tasks.classification.commands import predict

        predict(model, texts, options)

    def export(
        self,
        folder: Any,
        run: Any,
        tmp: Any,
        quantize: Any,
        optimize: bool,
        data: Any,
        limits: Any,
        step: Any,
    ) -> Any:
        from bertkit.tasks.classification.export import export_checks

        return export_checks(folder, run, tmp, quantize, optimize, data, limits, step)


TASK = Classification()
