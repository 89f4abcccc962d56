"""Masked-LM pretraining: corpora, packing, masking, WordPiece training, fill-mask and perplexity."""

from __future__ import annotations

from typing import Any

from bertkit.tasks.base import Task
from bertkit.tasks.mlm.recipe import MlmRecipe


class MaskedLM(Task):
    name = "mlm"
    recipe = MlmRecipe
    command = "pretrain"
    pipeline_tag = "fill-mask"
    eval_options = frozenset({"data", "limit", "batch-size", "output", "baseline", "device", "json"})
    predict_options = frozenset({"top-k", "backend", "quantize", "device", "json"})
    architectures = ("ForMaskedLM", "ForPreTraining")
    unit = "document"
    example = "a [MASK] day"

    def load_tokenizer(self, recipe: Any) -> Any:
        if recipe.tokenizer.train:
            return None  # trained on the corpus, in the run directory
        from bertkit.tasks.mlm.train import existing_tokenizer

        return existing_tokenizer(recipe)

    def check(self, recipe: Any, tokenizer: Any, report: Any) -> None:
        if recipe.tokenizer.train:
            report.notes.append(
                "tokenizer.train is on: the tokenizer is trained first, so token counts are skipped"
            )
        super().check(recipe, tokenizer, report)

    def run_tokenizer(self, recipe: Any, data: Any, run: Any, resuming: bool, tokenizer: Any) -> Any:
        if tokenizer is not None:
            return tokenizer
        from bertkit.tasks.mlm.train import tokenizer_for_scratch

        return tokenizer_for_scratch(recipe, data["train"], run, resuming)


TASK = MaskedLM()
