"""The classification recipe: its columns, its labels section, class weights."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from bertkit.recipe.base import DataSection, PaddingFreeTrain, RecipeBase, Section


class ClassificationData(DataSection):
    text: str | list[str] = Field(
        "text",
        description="Text column, or a list of columns joined into one text.",
    )
    text_pair: str | None = Field(
        None,
        description="Second text column for sentence-pair tasks, encoded as [CLS] a [SEP] b [SEP].",
    )
    label: str = Field("label", description="Label column.")

    @field_validator("text")
    @classmethod
    def _non_empty_columns(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one text column")
        return value

    @property
    def text_columns(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class LabelsSection(Section):
    type: Literal["auto", "single", "multi", "regression"] = Field(
        "auto",
        description="`auto` detects from the label column: ints/strings -> single, lists or "
        "separated strings -> multi, floats -> regression.",
    )
    separator: str | None = Field(
        None,
        description="Split string labels on this separator to make multi-label targets (e.g. `|`).",
    )
    names: list[str] | None = Field(
        None, description="Label names in id order; by default sorted from the training data."
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Multi-label decision threshold on each label's probability."
    )


class ClassificationTrain(PaddingFreeTrain):
    class_weights: Literal["none", "auto"] | list[float] | dict[str, float] = Field(
        "none",
        description="Weight the loss per class: `auto` (inverse frequency), a list in label id "
        "order, or a mapping from label name to weight.",
    )


class ClassificationRecipe(RecipeBase):
    """Fine-tune a text classifier: single-label, multi-label or regression."""

    task: Literal["classification"] = Field(description="`classification` fine-tunes a text classifier.")
    data: ClassificationData = Field(default_factory=ClassificationData, description="Data and columns.")
    labels: LabelsSection = Field(default_factory=LabelsSection, description="Label handling.")
    train: ClassificationTrain = Field(default_factory=ClassificationTrain, description="Optimisation.")


def read_run_recipe(path: Path) -> ClassificationRecipe:
    """The recipe a run of this task was trained with (its recipe.yaml)."""
    from bertkit.recipe.loading import read_run_recipe as read

    return read(path, ClassificationRecipe)  # type: ignore[return-value]
