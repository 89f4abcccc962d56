"""The parts of a recipe every task shares: sections, data sources, training and output.

Every section forbids unknown keys, so a typo is an error and never a silently
ignored setting, and a section of another task's recipe is an error too (each task's
recipe declares only what applies to it). Every field has a description: `bertkit
recipes validate` and the docs read them. This module imports only pydantic, so the
CLI stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Precision = Literal["auto", "fp32", "bf16", "fp16"]
FileFormat = Literal["csv", "tsv", "json", "jsonl", "parquet", "txt", "conll"]


class Section(BaseModel):
    """Base of every recipe section: closed, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSource(Section):
    """Where one split comes from: a local file (or folder/glob) or a Hub dataset.

    In YAML a bare string is a local path; a mapping names a Hub dataset
    (`{hub: stanfordnlp/sst2, split: train}`) or a file with options.
    """

    path: str | None = Field(
        None,
        description="Local file, folder or glob. Relative paths resolve against the recipe's folder.",
    )
    hub: str | None = Field(None, description="Hugging Face Hub dataset id, e.g. `stanfordnlp/sst2`.")
    config: str | None = Field(None, description="Hub dataset configuration name, if it has several.")
    split: str | None = Field(None, description="Hub split to read (e.g. `train`, `validation[:10%]`).")
    format: FileFormat | None = Field(
        None, description="File format; by default taken from the file extension."
    )
    revision: str | None = Field(None, description="Hub dataset revision (branch, tag or commit).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of `path` (a local file) or `hub` (a Hub dataset id)")
        if self.hub is not None and self.split is None:
            raise ValueError("a Hub dataset needs a `split`, e.g. {hub: stanfordnlp/sst2, split: train}")
        if self.path is not None and (self.split or self.config or self.revision):
            raise ValueError("`split`, `config` and `revision` apply to Hub datasets, not local files")
        return self

    def describe(self) -> str:
        """A short human-readable origin, for tables and model cards."""
        if self.hub is not None:
            config = f"/{self.config}" if self.config else ""
            return f"{self.hub}{config} [{self.split}] (Hub)"
        return str(self.path)


class ModelSection(Section):
    name: str | None = Field(
        None,
        description=(
            "What to start from: a Hub id (`google-bert/bert-base-uncased`), a local model "
            "directory, a bertkit run directory, or a bundled alias (`minilm`)."
        ),
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to load.")
    tokenizer: str | None = Field(
        None, description="Tokenizer to use when it differs from `model.name` (id or directory)."
    )
    trust_remote_code: bool = Field(
        False,
        description="Run custom model code shipped with a Hub repository. Off: it executes code.",
    )
    allow_pickle: bool = Field(
        False,
        description=(
            "Allow loading pickle-based weights (`pytorch_model.bin`). Off: unpickling can "
            "execute code; prefer safetensors."
        ),
    )


class DataSection(Section):
    """Where the splits come from and how long a sequence may be; tasks add their columns."""

    train: DataSource | None = Field(None, description="Training data.")
    validation: DataSource | None = Field(
        None,
        description="Validation data, used for evaluation during training and model selection.",
    )
    test: DataSource | None = Field(None, description="Optional held-out test data.")
    validation_split: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Carve this share of train off as validation (stratified, seeded) when no "
        "validation data is given.",
    )
    max_length: int = Field(
        128, ge=8, le=8192, description="Longest sequence in tokens; longer texts are truncated."
    )
    limit: int | None = Field(
        None, ge=1, description="Use only the first N rows of each split (to try a recipe quickly)."
    )


class EarlyStopping(Section):
    patience: int = Field(3, ge=1, description="Stop after this many evaluations without improvement.")
    threshold: float = Field(0.0, ge=0, description="Smallest change that counts as improvement.")


class TrainSection(Section):
    epochs: float = Field(3.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides `epochs`)."
    )
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        32, description="Examples per device per step, or `auto` to find the largest that fits."
    )
    eval_batch_size: int | None = Field(
        None, ge=1, description="Examples per device at evaluation; default twice `batch_size`."
    )
    gradient_accumulation: int = Field(
        1, ge=1, description="Accumulate gradients over this many steps before an update."
    )
    learning_rate: float = Field(5e-5, gt=0, lt=1, description="Peak learning rate.")
    warmup: float = Field(
        0.1,
        ge=0,
        description="Linear warmup: a ratio of all steps when below 1, else a number of steps.",
    )
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warmup."
    )
    weight_decay: float = Field(0.01, ge=0, lt=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(42, ge=0, description="Seed for weights, data order and dropout.")
    precision: Precision = Field(
        "auto",
        description="`auto`: bf16 on GPUs with bf16 in hardware (Ampere and newer), else fp16 with "
        "loss scaling on CUDA, fp32 on CPU and MPS.",
    )
    tf32: Literal["auto"] | bool = Field(
        "auto",
        description="TensorFloat-32 matmuls on Ampere and newer GPUs. `auto`: on for bf16/fp16 runs "
        "(for what stays in fp32), off for fp32 runs, which stay IEEE fp32 unless this is true.",
    )
    pad_to_multiple_of: Literal["auto"] | Annotated[int, Field(ge=1)] | None = Field(
        "auto",
        description="Pad each batch's length up to a multiple of this. `auto`: 8 under bf16/fp16 "
        "(tensor-core shapes), none in fp32; null: never.",
    )
    group_by_length: bool = Field(
        True,
        description="Run each random batch as length-sorted micro-batches (gradients accumulated): "
        "the same examples per step, far less padding.",
    )
    eval_every: Literal["epoch", "steps", "no"] = Field(
        "epoch", description="When to evaluate on validation data."
    )
    eval_steps: int | None = Field(
        None, ge=1, description="With `eval_every: steps`, evaluate every N steps."
    )
    metric: str | None = Field(
        None,
        description="Metric that picks the best model and drives early stopping; default per "
        "task (classification: accuracy, f1_micro for multi-label, pearson for regression; "
        "masked-LM: loss).",
    )
    early_stopping: EarlyStopping | None = Field(
        None, description="Stop when the main metric stops improving."
    )
    logging_steps: int = Field(10, ge=1, description="Record training loss every N steps.")
    save_steps: int | None = Field(
        None, ge=1, description="Also checkpoint every N steps (checkpoints are saved each epoch)."
    )
    save_total_limit: int = Field(2, ge=1, description="Checkpoints to keep.")
    torch_compile: bool = Field(False, description="Compile the model with torch.compile.")
    gradient_checkpointing: bool = Field(
        False, description="Trade compute for memory by recomputing activations."
    )
    dataloader_workers: int = Field(0, ge=0, description="Background data-loading processes.")
    report_to: list[str] = Field(
        default_factory=list,
        description="Experiment trackers (tensorboard, wandb, mlflow, ...). Empty: none.",
    )
    accelerate_config: str | None = Field(
        None, description="Accelerate config file (FSDP, DeepSpeed, multi-node) for launches."
    )


class OutputSection(Section):
    dir: str | None = Field(
        None,
        description="Run directory. Default: `runs/<recipe name>-<timestamp>`.",
    )
    root: str = Field("runs", description="Folder that holds runs and the `latest` pointer.")


class PaddingFreeTrain(TrainSection):
    """The training section of tasks whose heads can read padding-free rows (training/packing.py)."""

    padding_free: Literal["auto"] | bool = Field(
        "auto",
        description="Train on each batch as one row of its real tokens, attention kept inside each "
        "example: the same model and loss, no compute spent on padding. `auto`: on CPU for BERT "
        "models (on GPUs the length-sorted micro-batches are used).",
    )


class RecipeBase(Section):
    """What every task's recipe holds: what to train, on which data, how, and where to write it.

    Each task subclasses it with `task: Literal[name]` and its own sections (see
    bertkit/tasks/<task>/recipe.py); `bertkit.recipe.schema.Recipe` is their union.
    """

    task: str = Field(description="What to train; decides the sections the recipe has.")
    name: str | None = Field(None, description="Run name; default: the recipe file's name without extension.")
    description: str | None = Field(None, description="One line shown by `bertkit recipes list`.")
    model: ModelSection = Field(description="The model to start from.")
    data: DataSection = Field(default_factory=DataSection, description="Data and columns.")
    train: TrainSection = Field(default_factory=TrainSection, description="Optimisation.")
    output: OutputSection = Field(default_factory=OutputSection, description="Where runs go.")

    # The file the recipe was read from (None when built in Python or bundled-less).
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def run_name(self) -> str:
        """The name runs of this recipe carry: `name`, else the file stem, else the task."""
        if self.name:
            return self.name
        return self._source.stem if self._source else self.task

    def cross_field_problems(self) -> list[tuple[str, str]]:
        """Problems that involve several keys, as (dotted key, message) pairs.

        Tasks add their own (`super().cross_field_problems()` first).
        """
        problems = []
        if self.data.train is None:
            problems.append(("data.train", "every recipe needs training data"))
        if self.data.validation is not None and self.data.validation_split is not None:
            problems.append(("data.validation_split", "give validation data or a validation_split, not both"))
        if self.train.eval_every == "steps" and self.train.eval_steps is None:
            problems.append(("train.eval_steps", "`eval_every: steps` needs eval_steps"))
        if self.model.name is None and self.needs_model_name:
            problems.append(("model.name", "name the model to start from"))
        return problems

    @property
    def needs_model_name(self) -> bool:
        """Whether `model.name` is required (a task that can build a model from scratch says no)."""
        return True
