"""Extractive question answering (SQuAD 1.1 and 2.0 style): answers as spans of contexts of any length."""

from __future__ import annotations

from bertkit.tasks.base import Task
from bertkit.tasks.qa.recipe import QaRecipe


class QuestionAnswering(Task):
    name = "qa"
    recipe = QaRecipe
    command = "finetune"
    pipeline_tag = "question-answering"
    unit = "question"
    example = "who founded the company?"
    eval_options = frozenset({"data", "split", "limit", "batch-size", "output", "device", "json"})
    predict_options = frozenset(
        {"question", "context", "input", "output", "text-column", "text-pair", "input-format", "top-k",
         "batch-size", "on-error", "backend", "quantize", "device", "json"}
    )  # fmt: skip
    architectures = ("ForQuestionAnswering",)

    def predict_arguments(self) -> str:
        return f'--context document.txt "{self.example}"'


TASK = QuestionAnswering()
