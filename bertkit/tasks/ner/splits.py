"""A NER recipe's data: every split read, its tags decided and converted to IOB2."""

from __future__ import annotations

from dataclasses import dataclass, field

from bertkit.console import plural
from bertkit.tasks.ner.data import Sentences, name_tags, read_sentences
from bertkit.tasks.ner.recipe import NerRecipe
from bertkit.tasks.ner.tagging import TagSpec, convert, decide_tags, raise_first

SPLITS = ("train", "validation", "test")


@dataclass
class NerSplits:
    """The sentences of a run, IOB2-tagged, and the tag decision taken on train.

    Attributes:
        splits: split name -> sentences (only the splits the recipe has).
        tags: the scheme and entity types.
        notes: decisions and counts to show the user.
    """

    splits: dict[str, Sentences]
    tags: TagSpec
    notes: list[str] = field(default_factory=list)


def load_ner_data(recipe: NerRecipe, limit: int | None = None) -> NerSplits:
    """Read every split, decide the scheme and types on train, convert all to IOB2.

    Raises:
        DataError: unreadable files, malformed tags, tags that break the scheme
            (unless tags.repair), entity types that training lacks.
    """
    data, section = recipe.data, recipe.tags
    limit = limit or data.limit
    splits: dict[str, Sentences] = {}
    notes: list[str] = []
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        sentences = name_tags(read_sentences(source, data), section.names)
        count = len(sentences)
        sentences = sentences.head(limit)
        limited = f" (first {len(sentences):,} used: limit)" if len(sentences) < count else ""
        notes.append(f"{split}: {plural(count, 'sentence')} from {sentences.name}{limited}")
        splits[split] = sentences
    spec = decide_tags(splits["train"], section)
    notes.append(spec.reason)
    for split, sentences in splits.items():
        converted, errors, repaired = convert(sentences, spec, section.repair)
        raise_first(errors, sentences.name)
        if repaired:
            notes.append(
                f"{split}: {plural(repaired, 'tag')} that broke {spec.scheme.upper()} repaired (tags.repair)"
            )
        splits[split] = converted
    if data.validation_split and "validation" not in splits:
        splits["train"], splits["validation"] = carve(
            splits["train"], data.validation_split, recipe.train.seed
        )
        notes.append(
            f"validation: {plural(len(splits['validation']), 'sentence')} carved from train "
            f"({data.validation_split:.0%}, seed {recipe.train.seed})"
        )
    return NerSplits(splits, spec, notes)


def carve(sentences: Sentences, share: float, seed: int) -> tuple[Sentences, Sentences]:
    """A seeded random share of the sentences set aside (train, held out), each in file order."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(sentences))
    held = max(1, round(len(sentences) * share))
    return sentences.select(sorted(order[held:])), sentences.select(sorted(order[:held]))
