"""The masked-LM recipe: corpus, masking and sequences, a model from scratch, a new tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bertkit.recipe.base import DataSection, ModelSection, PaddingFreeTrain, RecipeBase, Section


class MlmModel(ModelSection):
    """The model section of a masked-LM recipe: continue a model, or build one from scratch."""

    init: Literal["pretrained", "scratch"] = Field(
        "pretrained",
        description="`pretrained` loads the weights of `model.name`; `scratch` builds a new BERT.",
    )
    size: Literal["tiny", "mini", "small", "medium", "base"] | None = Field(
        None,
        description="With `init: scratch`, a BERT miniature size preset (Turc et al. 2019).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="With `init: scratch`, BertConfig fields that override the size preset.",
    )


class MlmData(DataSection):
    text: str = Field(
        "text", description="The text column of CSV/JSONL/Parquet corpora (plain text has none)."
    )

    @property
    def text_columns(self) -> list[str]:
        return [self.text]


class MlmSection(Section):
    objective: Literal["mlm", "mlm+nsp"] = Field(
        "mlm", description="`mlm` masked-LM only; `mlm+nsp` adds next-sentence prediction."
    )
    probability: float = Field(
        0.15, gt=0, lt=1, description="Share of tokens selected for masking (80/10/10 replacement)."
    )
    whole_word: bool = Field(
        False, description="Mask all sub-tokens of a word together (whole-word masking)."
    )
    documents: Literal["lines", "paragraphs"] = Field(
        "lines",
        description="In plain-text corpora, a document is each non-empty line (`lines`) or each "
        "blank-line separated paragraph (`paragraphs`).",
    )
    word_segmentation: Literal["tokenizer", "whitespace"] = Field(
        "tokenizer",
        description="How whole-word masking finds words: `tokenizer` (WordPiece `##` pieces join "
        "their word; each Chinese character is a word) or `whitespace` (the corpus is "
        "pre-segmented with spaces, e.g. Chinese words from a segmenter).",
    )
    sequences: Literal["packing", "line_by_line"] = Field(
        "packing",
        description="`packing` concatenates documents into full blocks (no padding waste); "
        "`line_by_line` keeps one line per sequence.",
    )
    attention: Literal["block", "document"] = Field(
        "block",
        description="With packing: `block` lets every token attend to its whole block (as BERT was "
        "trained); `document` keeps attention inside each document's part of the block, with "
        "positions counted from each part's start (as MosaicBERT and ModernBERT train).",
    )
    prediction: Literal["auto", "sparse", "dense"] = Field(
        "auto",
        description="`sparse` runs the output head in training only at the masked positions (the same "
        "loss and gradients, a fraction of the compute; BERT models); `dense` at every position, as "
        "Transformers' BertForMaskedLM does. `auto`: sparse for BERT models, else dense.",
    )


class TokenizerSection(Section):
    train: bool = Field(False, description="Train a new WordPiece tokenizer on the corpus first.")
    vocab_size: int = Field(30522, ge=100, description="Vocabulary size of a trained tokenizer.")
    lowercase: bool = Field(True, description="Lowercase and strip accents (an uncased tokenizer).")
    min_frequency: int = Field(2, ge=1, description="Drop tokens seen fewer times than this.")


class MlmTrain(PaddingFreeTrain):
    padding_free: Literal["auto"] | bool = Field(
        "auto",
        description="Train each batch as one row of its real tokens, attention kept inside each "
        "sequence: the same model and loss, no compute spent on padding. `auto`: line-by-line "
        "sequences on CPU for BERT models (packed blocks are full: they have next to no padding).",
    )


class MlmRecipe(RecipeBase):
    """Masked-LM pretraining: continue a BERT on your text, or train one from scratch."""

    task: Literal["mlm"] = Field(description="`mlm` does masked-LM pretraining.")
    model: MlmModel = Field(description="The model to start from, or how to build one.")
    data: MlmData = Field(default_factory=MlmData, description="The corpus.")
    mlm: MlmSection = Field(default_factory=MlmSection, description="Masking and sequences.")
    train: MlmTrain = Field(default_factory=MlmTrain, description="Optimisation.")
    tokenizer: TokenizerSection = Field(
        default_factory=TokenizerSection, description="Tokenizer training (from scratch)."
    )

    @property
    def needs_model_name(self) -> bool:
        return self.model.init != "scratch"

    def cross_field_problems(self) -> list[tuple[str, str]]:
        problems = super().cross_field_problems()
        model = self.model
        if model.init == "scratch" and model.size is None and not model.config:
            problems.append(("model.size", "`init: scratch` needs a size preset or model.config"))
        if model.init == "scratch" and not (self.tokenizer.train or model.tokenizer or model.name):
            problems.append(
                (
                    "tokenizer.train",
                    "a model from scratch needs a tokenizer: `tokenizer.train: true`, "
                    "or an existing one in model.tokenizer",
                )
            )
        if self.tokenizer.train and model.init != "scratch":
            problems.append(("tokenizer.train", "a new tokenizer only fits a model trained from scratch"))
        if model.init != "scratch" and (model.size or model.config):
            problems.append(("model.size", "size and config apply only with `model.init: scratch`"))
        if self.train.padding_free is True and self.mlm.objective == "mlm+nsp":
            problems.append(
                ("train.padding_free", "not with mlm+nsp: next-sentence prediction reads each pair's [CLS]")
            )
        if self.mlm.attention == "document" and (
            self.mlm.sequences != "packing" or self.mlm.objective != "mlm"
        ):
            problems.append(
                (
                    "mlm.attention",
                    "`document` applies to packed blocks (mlm.sequences: packing, objective: mlm); "
                    "other sequences hold one document each",
                )
            )
        return problems


def read_run_recipe(path: Path) -> MlmRecipe:
    """The recipe a run of this task was trained with (its recipe.yaml)."""
    from bertkit.recipe.loading import read_run_recipe as read

    return read(path, MlmRecipe)  # type: ignore[return-value]
