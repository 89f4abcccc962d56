"""Named-entity recognition (token classification): CoNLL, token lists or entity spans, any tag scheme."""

from __future__ import annotations

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


TASK = Ner()
