"""The question-answering recipe: where questions, contexts and answers are, windows, answer rules."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bertkit.recipe.base import DataSection, PaddingFreeTrain, RecipeBase, Section


class QaData(DataSection):
    question: str = Field("question", description="Column of the questions (flat files and Hub data).")
    context: str = Field("context", description="Column of the contexts the answers are spans of.")
    answers: str = Field(
        "answers",
        description="Column of the answers in the SQuAD layout: {text: [...], answer_start: [...]} or a "
        "list of {text, answer_start}. Files whose rows give one answer in two columns use "
        "`answer` and `answer_start` instead.",
    )
    answer: str = Field("answer", description="Column of the answer text, for flat files (one answer a row).")
    answer_start: str = Field(
        "answer_start", description="Column of the answer's first character in the context, for flat files."
    )
    id: str = Field("id", description="Column of the question ids (made from the row number when absent).")
    max_length: int = Field(
        384,
        ge=32,
        le=8192,
        description="Longest window, question and context together, in tokens; longer contexts are read "
        "in overlapping windows, never cut.",
    )
    doc_stride: int = Field(
        128,
        ge=0,
        description="Context tokens two windows of a long context share (the reference recipe's 128).",
    )


class QaSection(Section):
    unanswerable: Literal["auto"] | bool = Field(
        "auto",
        description="Whether questions may have no answer in their context (SQuAD 2.0). `auto`: yes when the "
        "training data has such questions.",
    )
    bad_answers: Literal["search", "drop", "error"] = Field(
        "search",
        description="An answer whose text is not at its answer_start: `search` the context for the text "
        "(nearest occurrence), `drop` the question, or stop with an `error`. Counts are always printed.",
    )
    max_answer_length: int = Field(30, ge=1, description="Longest answer in tokens the model may give.")
    n_best: int = Field(20, ge=1, description="Start and end candidates per window when choosing the answer.")


class QaTrain(PaddingFreeTrain):
    learning_rate: float = Field(
        3e-5, gt=0, lt=1, description="Peak learning rate (the reference recipe's 3e-5)."
    )


class QaRecipe(RecipeBase):
    """Fine-tune an extractive question-answering model (SQuAD style)."""

    task: Literal["qa"] = Field(description="`qa` fine-tunes an extractive question-answering model.")
    data: QaData = Field(default_factory=QaData, description="Data, columns and windows.")
    qa: QaSection = Field(
        default_factory=QaSection, description="Answers: unanswerable questions, checks, length."
    )
    train: QaTrain = Field(default_factory=QaTrain, description="Optimisation.")

    def cross_field_problems(self) -> list[tuple[str, str]]:
        problems = super().cross_field_problems()
        if self.data.doc_stride >= self.data.max_length // 2:
            problems.append(
                ("data.doc_stride", f"must be under half of data.max_length ({self.data.max_length // 2})")
            )
        return problems


def read_run_recipe(path: Path) -> QaRecipe:
    """The recipe a run of this task was trained with (its recipe.yaml)."""
    from bertkit.recipe.loading import read_run_recipe as read

    return read(path, QaRecipe)  # type: ignore[return-value]
