"""Named-entity recognition (token classification): CoNLL, token lists or entity spans, any tag scheme."""

from __future__ import annotations

from typing import Any

from bertkit.tasks.base import Task
from bertkit.tasks.ner.recipe import NerRecipe


class Ner(Task):
    name = "ner"
    recipe = NerRecipe
    command = "finetune"
    pipeline_tag = "token-classification"
    unit = "sentence"
    example = "Angela Merkel visited Paris"
    eval_options = frozenset(
        {"data", "split", "limit", "batch-size", "output", "device", "precision", "aggregation", "json"}
    )
    predict_options = frozenset(
        {"input", "output", "text-column", "input-format", "batch-size", "on-error", "aggregation", "backend",
         "quantize", "device", "precision", "json"}
    )  # fmt: skip
    architectures = ("ForTokenClassification",)

    def check(self, recipe: Any, tokenizer: Any, report: Any) -> None:
        from bertkit.tasks.ner.checks import check_ner

        check_ner(recipe, report.limit, tokenizer, report)

    def read(self, recipe: Any) -> Any:
        from bertkit.tasks.ner.train import read

        return read(recipe)

    def prepare(self, recipe: Any, data: Any, tokenizer: Any, placement: Any) -> Any:
        from bertkit.tasks.ner.train import prepare

        return prepare(recipe, data, tokenizer, placement)

    def evaluate(self, model: Any, options: dict[str, Any]) -> Any:
        from bertkit.tasks.ner.commands import evaluate

        return evaluate(model, options)

    def predict(self, model: Any, texts: list[str], options: dict[str, Any]) -> None:
        from bertkit.tasks.ner.commands import predict

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
        from bertkit.tasks.ner.export import export_checks

        return export_checks(folder, run, tmp, quantize, optimize, data, limits, step)


TASK = Ner()
