"""The embedding recipe: pair, triplet or scored-pair data (or BEIR folders), pooling, loss."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bertkit.recipe.base import DataSection, PaddingFreeTrain, RecipeBase, Section


class EmbeddingData(DataSection):
    texts: list[str] | None = Field(
        None,
        description="The text columns, in order: two (pairs, or scored pairs with data.score) or three "
        "(anchor, positive, negative). Default: found by their usual names (anchor/positive/negative, "
        "query/document, sentence1/sentence2, ...).",
    )
    score: str | None = Field(
        None,
        description="Column of the gold similarity of scored pairs. Default: score, label, "
        "relatedness_score or similarity, when present.",
    )
    qrels: dict[str, str] = Field(
        default_factory=lambda: {"train": "train", "validation": "dev", "test": "test"},
        description="For a split given as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/): which "
        "qrels/<name>.tsv holds its judgements.",
    )
    max_length: int = Field(
        256, ge=8, le=8192, description="Longest text in tokens; longer texts are truncated."
    )

    def qrels_split(self, split: str) -> str:
        return self.qrels.get(split, split)


class EmbeddingSection(Section):
    pooling: Literal["auto", "cls", "mean", "max"] = Field(
        "auto",
        description="How token vectors make one text vector. `auto`: the model's own (a "
        "sentence-transformers folder), else mean over the attention mask.",
    )
    normalize: Literal["auto"] | bool = Field(
        "auto",
        description="Scale vectors to unit length. `auto`: as the model does (a Normalize module), else no.",
    )
    loss: Literal["auto", "mnrl", "cosent", "cosine", "triplet"] = Field(
        "auto",
        description="Training loss. `auto` from the data: pairs and triplets -> mnrl (in-batch "
        "negatives, MultipleNegativesRankingLoss), scored pairs -> cosent (CoSENTLoss). `cosine`: "
        "CosineSimilarityLoss on scored pairs; `triplet`: TripletLoss on triplets.",
    )
    score_range: tuple[float, float] | None = Field(
        None,
        description="Scored pairs: the range of the gold scores (e.g. [0, 5] for STS-B), mapped to "
        "[0, 1] for the cosine loss. Default: the training scores' minimum and maximum.",
    )


class EmbeddingTrain(PaddingFreeTrain):
    learning_rate: float = Field(2e-5, gt=0, lt=1, description="Peak learning rate.")
    group_by_length: bool = Field(
        False,
        description="Not for embeddings: in-batch negatives need each batch whole (sentence-transformers "
        "batches the texts itself).",
    )


class EmbeddingRecipe(RecipeBase):
    """Fine-tune a sentence encoder (sentence-transformers) for similarity and search."""

    task: Literal["embedding"] = Field(description="`embedding` fine-tunes a sentence encoder.")
    data: EmbeddingData = Field(default_factory=EmbeddingData, description="Data and columns.")
    embedding: EmbeddingSection = Field(
        default_factory=EmbeddingSection, description="Pooling, normalisation and loss."
    )
    train: EmbeddingTrain = Field(default_factory=EmbeddingTrain, description="Optimisation.")

    def cross_field_problems(self) -> list[tuple[str, str]]:
        problems = super().cross_field_problems()
        if self.data.texts is not None and not 2 <= len(self.data.texts) <= 3:
            problems.append(("data.texts", "give two columns (pairs) or three (anchor, positive, negative)"))
        if self.data.validation_split is not None:
            problems.append(
                (
                    "data.validation_split",
                    "not for embedding data: give validation data (scored pairs or a BEIR folder)",
                )
            )
        if self.train.group_by_length:
            problems.append(
                (
                    "train.group_by_length",
                    "does not apply to embeddings: in-batch negatives need whole batches",
                )
            )
        if self.train.pad_to_multiple_of not in ("auto", None):
            problems.append(
                ("train.pad_to_multiple_of", "does not apply to embeddings: sentence-transformers pads")
            )
        return problems


def read_run_recipe(path: Path) -> EmbeddingRecipe:
    """The recipe a run of this task was trained with (its recipe.yaml)."""
    from bertkit.recipe.loading import read_run_recipe as read

    return read(path, EmbeddingRecipe)  # type: ignore[return-value]
