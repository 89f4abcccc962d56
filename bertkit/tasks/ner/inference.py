"""Load a trained NER model and tag words fast: windowed, batched by length, no autograd.

Shared by `bertkit eval`, `bertkit predict` and the export check. A model folder
knows how it was trained: bertkit writes its window length, stride and alignment
into config.json under `bertkit`, so any copy of the folder tags the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bertkit.errors import ModelError
from bertkit.runs import RunDirectory, find_model_dir
from bertkit.tasks.base import CONFIG_KEY
from bertkit.tasks.ner.data import join_words
from bertkit.tasks.ner.metrics import tags_of
from bertkit.tasks.ner.tagging import chunks_of
from bertkit.tasks.ner.windows import make_windows, word_scores
from bertkit.tasks.ner.words import split_words

if TYPE_CHECKING:
    from bertkit.tasks.ner.recipe import NerRecipe

AGGREGATIONS = ("first", "average", "max")
_DEFAULT_MAX_LENGTH = 512


@dataclass
class Entity:
    """One entity found in a text: its type, where it is, its text and how sure the model is.

    `start` and `end` are character offsets into the text (end exclusive) when the
    input was raw text, else word positions.
    """

    type: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": self.score,
        }


@dataclass
class Tagger:
    """A token-classification model ready for inference.

    Attributes:
        model: the transformers model, in eval mode on `device`.
        tokenizer: its (fast) tokenizer.
        labels: the model's tags in id order (O, B-X, I-X, ...).
        max_length, stride: the windows it reads long sentences in.
        source: the folder it was loaded from; run and recipe when loaded from a run.
    """

    model: Any
    tokenizer: Any
    labels: list[str]
    max_length: int
    stride: int
    source: Path
    device: str
    run: RunDirectory | None = None
    recipe: NerRecipe | None = None
    precision: str = "fp32"

    @property
    def types(self) -> list[str]:
        return [label[2:] for label in self.labels if label.startswith("B-")]

    def word_scores(
        self,
        sentences: list[list[str]],
        *,
        batch_size: int = 64,
        aggregation: str = "first",
        on_batch: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Per sentence, each word's tag probabilities (words x tags; NaN for words without sub-tokens)."""
        windows = make_windows(self.tokenizer, sentences, self.max_length, self.stride)
        outputs: list[np.ndarray] = [np.empty(0)] * len(windows)
        order = sorted(range(len(windows)), key=lambda i: len(windows.features[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenizer.pad([windows.features[i] for i in index], return_tensors="np")
            logits = self.forward(dict(batch))
            probabilities = _softmax(logits)
            for row, i in enumerate(index):
                outputs[i] = probabilities[row, : len(windows.features[i]["input_ids"])]
            if on_batch is not None:
                on_batch(len(index))
        return word_scores(windows, outputs, aggregation)

    def tag(self, sentences: list[list[str]], **options: Any) -> list[list[str]]:
        """The IOB2 tag of every word of every sentence."""
        return [tags_of(scores, self.labels) for scores in self.word_scores(sentences, **options)]

    def entities(self, texts: list[str], **options: Any) -> list[list[Entity]]:
        """The entities of raw texts, with character offsets (texts are split into words first)."""
        spans = [split_words(text) for text in texts]
        words = [[text[a:b] for a, b in row] for text, row in zip(texts, spans, strict=True)]
        keep = [i for i, row in enumerate(words) if row]
        scores = self.word_scores([words[i] for i in keep], **options) if keep else []
        found: list[list[Entity]] = [[] for _ in texts]
        for i, rows in zip(keep, scores, strict=True):
            for chunk, score in self._chunks(rows):
                start, end = spans[i][chunk.start][0], spans[i][chunk.end - 1][1]
                found[i].append(Entity(chunk.type, start, end, texts[i][start:end], score))
        return found

    def word_entities(self, sentences: list[list[str]], **options: Any) -> list[list[Entity]]:
        """The entities of sentences given as words, with word positions."""
        found = []
        for words, rows in zip(sentences, self.word_scores(sentences, **options), strict=True):
            found.append(
                [
                    Entity(
                        chunk.type, chunk.start, chunk.end, join_words(words[chunk.start : chunk.end]), score
                    )
                    for chunk, score in self._chunks(rows)
                ]
            )
        return found

    def _chunks(self, rows: np.ndarray) -> list[tuple[Any, float]]:
        """A sentence's entities, each with its score: the mean of its words' top probability."""
        top = rows.max(axis=1)  # NaN for a word without sub-tokens, which is tagged O
        return [
            (chunk, round(float(top[chunk.start : chunk.end].mean()), 4))
            for chunk in chunks_of(tags_of(rows, self.labels))
        ]

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of one padded batch (float32, batch x positions x tags); the step a backend changes."""
        import torch

        from bertkit.devices import to_device

        with torch.inference_mode():
            return self.model(**to_device(batch, self.device)).logits.float().cpu().numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def load_tagger(
    model: Path | None, *, root: Path = Path("runs"), device: str | None = None, precision: str = "auto"
) -> Tagger:
    """Load an NER model from a run directory, a model folder, or the latest run.

    Raises:
        BertkitError: nothing to load, not a token classifier, unsafe or broken weights.
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    from bertkit.devices import detect_device, hardware, inference_precision
    from bertkit.models import ModelRef, load_model, load_tokenizer
    from bertkit.tasks.ner.recipe import read_run_recipe

    folder, run = find_model_dir(model, root)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForTokenClassification") for a in architectures):
        raise ModelError(
            f"{folder}: a {architectures[0]} model, not an NER (token classification) model",
            hint="fine-tune one with a `task: ner` recipe first",
        )
    ref = ModelRef(str(folder), str(model or folder), True, run.path if run else None)
    network, _ = load_model(AutoModelForTokenClassification, ref)
    tokenizer = load_tokenizer(str(folder))
    device = detect_device(device)
    precision = inference_precision(precision, hardware(device))
    network.to(device).eval()
    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    tagger = Tagger(
        network,
        tokenizer,
        source=folder,
        device=device,
        run=run,
        recipe=recipe,
        **settings(config, tokenizer),
    )
    if precision != "fp32":
        use_half_precision(tagger, precision)
    return tagger


def settings(config: Any, tokenizer: Any) -> dict[str, Any]:
    """The labels and windows a model was trained with, read back from its config."""
    saved = getattr(config, CONFIG_KEY, None) or {}
    limit = min(tokenizer.model_max_length or _DEFAULT_MAX_LENGTH, _DEFAULT_MAX_LENGTH)
    max_length = int(saved.get("max_length", limit))
    return {
        "labels": [config.id2label[i] for i in sorted(config.id2label)],
        "max_length": max_length,
        "stride": int(saved.get("stride", max_length // 4)),
    }


def use_half_precision(tagger: Tagger, precision: str) -> None:
    """Switch a tagger to bf16 or fp16 if it tags as fp32 does on sample sentences (else stay fp32)."""
    import torch

    from bertkit.console import note, warn
    from bertkit.export.parity import HALF_SAMPLE_TEXTS, INT8_MIN_AGREEMENT
    from bertkit.tasks.ner.parity import sample_sentences

    sample = sample_sentences(tagger.recipe, None, HALF_SAMPLE_TEXTS)
    reference = tagger.tag(sample.sentences)
    tagger.model.to(getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[precision]))
    half = tagger.tag(sample.sentences)
    same = sum(a == b for x, y in zip(reference, half, strict=True) for a, b in zip(x, y, strict=True))
    total = max(sum(len(x) for x in reference), 1)
    if same / total >= INT8_MIN_AGREEMENT:
        tagger.precision = precision
        note(
            f"predicting in {precision}: tags agree with fp32 on {same / total:.1%} of words ({sample.where})"
        )
    else:
        tagger.model.float()
        warn(
            f"predicting in fp32: {precision} changed {1 - same / total:.1%} of the tags of {sample.where} "
            "(use --precision fp32 to skip this check)"
        )
