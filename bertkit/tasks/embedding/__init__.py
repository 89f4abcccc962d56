"""Sentence embeddings: encode texts, train for similarity and search, export with pooling inside.

Built on sentence-transformers: a model bertkit trains is a sentence-transformers
folder, and any sentence-transformers or plain BERT model embeds with bertkit.
"""

from __future__ import annotations

from bertkit.tasks.base import Task
from bertkit.tasks.embedding.recipe import EmbeddingRecipe


class Embedding(Task):
    name = "embedding"
    recipe = EmbeddingRecipe
    command = "finetune"
    pipeline_tag = "sentence-similarity"
    unit = "text"
    example = "how do I reset my password?"
    # A plain encoder (no task head): what sentence-transformers folders hold.
    architectures = ("BertModel", "RobertaModel", "XLMRobertaModel", "DistilBertModel", "MPNetModel")
    eval_options = frozenset({"data", "split", "limit", "batch-size", "output", "device", "json"})
    predict_options = frozenset(
        {"corpus", "input", "output", "text-column", "input-format", "top-k", "batch-size", "on-error",
         "device", "json"}
    )  # fmt: skip

    def predict_arguments(self) -> str:
        return f'--corpus documents.jsonl "{self.example}"'


TASK = Embedding()
