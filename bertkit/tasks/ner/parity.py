"""Sentences to check an exported or half-precision NER model against the original on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.export.parity import BUILTIN_TEXTS
from bertkit.tasks.ner.words import split_words

# Names, places and organisations, for a model trained on entities to find some in.
BUILTIN_SENTENCES = (
    "Angela Merkel visited Paris on Tuesday to meet Emmanuel Macron .",
    "Apple opened a new office in Berlin , close to the Brandenburg Gate .",
    "The United Nations held its climate summit in Glasgow last November .",
    "Serena Williams won her first title at the US Open in New York .",
    "Researchers at the University of Tokyo published the study in Nature .",
    "Lionel Messi joined Inter Miami after leaving Paris Saint-Germain .",
)


@dataclass
class SentenceSample:
    """Sentences (as words) to compare two models on, and where they came from."""

    sentences: list[list[str]]
    where: str


def sample_sentences(recipe: Any, data: Path | None, count: int) -> SentenceSample:
    """The `data` file's sentences, else the run's validation data, else built-in sentences.

    Raises:
        DataError: the `data` file cannot be read.
    """
    from bertkit.console import warn
    from bertkit.errors import DataError
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.ner.data import read_sentences
    from bertkit.tasks.ner.recipe import NerData

    source = DataSource(path=str(data)) if data is not None else (recipe.data.validation if recipe else None)
    if source is not None:
        try:
            sentences = read_sentences(source, recipe.data if recipe else NerData()).head(count)
        except DataError as exc:
            if data is not None:
                raise
            warn(f"checking on built-in sentences: the run's validation data cannot be read ({exc.message})")
        else:
            return SentenceSample(sentences.tokens, f"{len(sentences)} sentences from {source.describe()}")
    texts = [*BUILTIN_SENTENCES, *BUILTIN_TEXTS][:count]
    words = [[text[a:b] for a, b in split_words(text)] for text in texts]
    return SentenceSample(words, "built-in sentences")
