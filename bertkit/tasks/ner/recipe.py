"""The named-entity recipe: where tokens, tags or entity spans are, how tags are read and aligned."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bertkit.recipe.base import DataSection, PaddingFreeTrain, RecipeBase, Section

Scheme = Literal["auto", "iob2", "iob1", "bioes", "bilou", "bmes"]


class NerData(DataSection):
    tokens: str = Field(
        "tokens", description="JSON/JSONL/Hub column holding each sentence's list of tokens (words)."
    )
    tags: str = Field(
        "tags",
        description="JSON/JSONL/Hub column holding each sentence's list of tags (names, or ids with "
        "`tags.names` or a Hub ClassLabel).",
    )
    text: str = Field(
        "text", description="JSONL column of raw text, for data with character-offset entity spans."
    )
    entities: str = Field(
        "entities",
        description='JSONL column of entity spans: [{"start": 0, "end": 5, "label": "PER"}, ...] '
        '(end exclusive) or [[0, 5, "PER"], ...].',
    )
    conll_columns: tuple[int, int] = Field(
        (0, -1),
        description="CoNLL files: the field of the token and of the tag on each line (0 = first, "
        "-1 = last; fields split on tabs, else on spaces).",
    )
    position_suffix: bool = Field(
        False,
        description="Tokens end in their position inside a segmented word, as in Weibo NER "
        "(`科0`, `技1`): strip the digits to get the characters.",
    )
    max_length: int = Field(
        128,
        ge=8,
        le=8192,
        description="Longest window in tokens; longer sentences are read in overlapping windows, never cut.",
    )
    stride: int | None = Field(
        None,
        ge=0,
        description="Tokens two windows of a long sentence share, so each word is read with context "
        "on both sides; default a quarter of max_length.",
    )

    @property
    def overlap(self) -> int:
        """The stride in effect."""
        return self.max_length // 4 if self.stride is None else self.stride


class TagsSection(Section):
    scheme: Scheme = Field(
        "auto",
        description="How the data writes entities: iob2 (BIO), iob1, bioes, bilou or bmes; `auto` "
        "detects it from the training tags. Every scheme is converted to IOB2 for training.",
    )
    repair: bool = Field(
        False,
        description="Read tags that break the scheme (an I-X after O in IOB2) as conlleval does, "
        "starting an entity there, instead of stopping with the file and line.",
    )
    align: Literal["first", "all"] = Field(
        "first",
        description="Which sub-tokens of a word carry its tag in the loss: `first` (others ignored, "
        "as run_ner.py does) or `all` (continuations get I-).",
    )
    names: list[str] | None = Field(
        None,
        description="Tag names in id order, for data whose tags are integer ids without a Hub "
        "ClassLabel (e.g. [O, B-PER, I-PER, ...]).",
    )
    types: list[str] | None = Field(
        None,
        description="Entity types in the order the model lists them; default sorted from the training data.",
    )


class NerTrain(PaddingFreeTrain):
    class_weights: Literal["none", "auto"] = Field(
        "none",
        description="Weight the loss per tag: `auto` weighs each tag by the inverse of its share "
        "of labelled tokens, so rare entity types count as much as `O`.",
    )


class NerRecipe(RecipeBase):
    """Fine-tune a named-entity recogniser (token classification)."""

    task: Literal["ner"] = Field(description="`ner` fine-tunes a named-entity recogniser.")
    data: NerData = Field(default_factory=NerData, description="Data, columns and windows.")
    tags: TagsSection = Field(default_factory=TagsSection, description="Tag scheme and alignment.")
    train: NerTrain = Field(default_factory=NerTrain, description="Optimisation.")

    def cross_field_problems(self) -> list[tuple[str, str]]:
        problems = super().cross_field_problems()
        if self.data.stride is not None and self.data.stride >= self.data.max_length // 2:
            problems.append(
                ("data.stride", f"must be under half of data.max_length ({self.data.max_length // 2})")
            )
        return problems


def read_run_recipe(path: Path) -> NerRecipe:
    """The recipe a run of this task was trained with (its recipe.yaml)."""
    from bertkit.recipe.loading import read_run_recipe as read

    return read(path, NerRecipe)  # type: ignore[return-value]
