"""What a task is to the rest of bertkit: a name, a recipe, and the functions that run it.

A task package (bertkit/tasks/<name>/) holds everything that knows the task: its
recipe sections, data reading and checks, model head, metrics, evaluation, predictor,
export and model card. Its `__init__.py` defines one `Task` (names, recipe class,
options); the `Task` methods reach the package's modules by convention, importing
them only when called, so the registry (bertkit.tasks.TASKS) and the recipe schema
load without torch and the CLI starts fast:

    checks.check_data(recipe, limit, tokenizer, report)
    train.read(recipe) and train.prepare(recipe, data, tokenizer, placement)
    commands.evaluate(model, options) and commands.predict(model, texts, options)
    serve.ENDPOINT: the Endpoint that serves its models over HTTP (bertkit.serving)
    export.export_checks(folder, run, tmp, quantize, optimize, data, limits, step)

Training goes through one orchestrator (bertkit.training.run) that asks the task, in
this order: `load_tokenizer` and `check` (before anything is written), `read` (the
data, decided and validated), then, in the run directory, `run_tokenizer` and
`prepare` (tokenized splits, the model, its collator, metrics and card facts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from bertkit.checks.report import CheckReport
    from bertkit.devices import Placement
    from bertkit.models import ModelRef
    from bertkit.recipe.base import RecipeBase
    from bertkit.runs import RunDirectory
    from bertkit.training.arguments import Selection


@dataclass(frozen=True)
class CardFacts:
    """What a task says about its model in the model card.

    Attributes:
        summary: one sentence: what the model is and where it started from.
        sections: Markdown lines placed before the data section (e.g. the labels).
        example: a call of the pipeline on a typical input, e.g. `model("a text")`.
        usage: Python lines that use the model, when a Transformers pipeline does not
            (default: the pipeline of the task's tag, then `example`).
        bertkit: the bertkit command that uses it.
    """

    summary: str
    sections: list[str] = field(default_factory=list)
    example: str = 'model("what a wonderful film")'
    usage: list[str] | None = None
    bertkit: str = 'bertkit predict --model RUN_DIR "..."'


@dataclass
class Prepared:
    """What a task hands the training orchestrator once its data is tokenized.

    Attributes:
        datasets: split name -> tokenized dataset (train, and validation/test if any).
        model: the model to train (its head fitted to the task).
        model_ref: where its weights came from (the run's lineage).
        collator: batches features for the model.
        selection: the metric that picks the best checkpoint (None: keep the last).
        compute_metrics, preprocess_logits: the Trainer hooks for evaluation.
        metrics_for: the `compute_metrics` of one split, for tasks whose scores need
            more than the model outputs (NER merges a sentence's windows back).
        compute_loss: a Trainer `compute_loss_func` (e.g. class-weighted), or None.
        label_names: the model inputs that are labels, when not just `labels`.
        keep_columns: give every dataset column to the collator.
        sorted_batches: whether batches run as length-sorted micro-batches (packed
            blocks of one length gain nothing from it).
        train_collator: batches training features when they are batched otherwise than
            for evaluation (padding-free rows, see training/packing.py), else None.
        callbacks: task callbacks for the Trainer.
        notes: decisions and counts to show the user and the card.
        config: what to record in config.json under `bertkit` besides the task.
        card: what the model card says.
        finish_metrics: turns a split's evaluation metrics into the reported ones.
        sequences: statistics to record in the run directory as sequences.json.
        hf_model: the Transformers model whose config.json records the task, when
            `model` wraps one (a sentence-transformers model); default `model`.
        make_trainer: builds the Trainer from the keyword arguments bertkit would give
            its own (a task that trains with a library's Trainer subclass); default
            BertkitTrainer.
        select_split: called with the trainer before the final evaluation of a split
            (a task whose evaluation is not `compute_metrics`, e.g. an evaluator).
    """

    datasets: dict[str, Any]
    model: Any
    model_ref: ModelRef
    collator: Any
    selection: Selection | None
    card: CardFacts
    compute_metrics: Callable[[Any], dict[str, float]] | None = None
    metrics_for: Callable[[str], Callable[[Any], dict[str, float]]] | None = None
    preprocess_logits: Callable[[Any, Any], Any] | None = None
    compute_loss: Callable[..., Any] | None = None
    label_names: list[str] | None = None
    keep_columns: bool = False
    sorted_batches: bool = True
    train_collator: Any = None
    callbacks: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    finish_metrics: Callable[[dict[str, float]], dict[str, float]] | None = None
    sequences: dict[str, Any] | None = None
    hf_model: Any = None
    make_trainer: Callable[[dict[str, Any]], Any] | None = None
    select_split: Callable[[Any, str], None] | None = None


@dataclass
class Outcome:
    """What `bertkit eval` computed, for the command to show.

    Attributes:
        metrics: metric name -> value.
        main_metric: the metric shown first and in bold.
        title: a line saying what was evaluated.
        report_dir: where the report went.
        data: the data evaluated on (a file, or a Hub dataset and split).
        examples: how many examples (rows, sequences) it held.
        baseline: metrics of a comparison model on the same data, if any.
        baseline_name: that model's name.
        positive: the class binary metrics score, for two-class models.
    """

    metrics: dict[str, float]
    main_metric: str | None
    title: str
    report_dir: Path
    data: str = ""
    examples: int = 0
    baseline: dict[str, float] | None = None
    baseline_name: str | None = None
    positive: str | None = None


class Task:
    """A task bertkit trains. Subclasses set the class attributes and implement the methods.

    Attributes:
        name: the recipe's `task:` value, recorded in every model's config.json.
        recipe: the task's recipe class (`task: Literal[name]` and its sections).
        command: the command that trains it: `finetune` or `pretrain`.
        pipeline_tag: the Hugging Face pipeline tag of its models (model cards).
        architectures: suffixes of `config.architectures` that mark a model of this
            task in folders bertkit did not write (a plain Hub model).
        unit: what one example of its data is called (rows, documents, ...).
        eval_options, predict_options: the `bertkit eval` / `bertkit predict` options
            that apply to its models; the commands refuse the others.
        example: a typical input, shown in hints.
    """

    name: ClassVar[str]
    recipe: ClassVar[type[RecipeBase]]
    command: ClassVar[str] = "finetune"
    pipeline_tag: ClassVar[str]
    architectures: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str] = "row"
    eval_options: ClassVar[frozenset[str]] = frozenset()
    predict_options: ClassVar[frozenset[str]] = frozenset()
    example: ClassVar[str] = "some text"

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def predict_arguments(self) -> str:
        """The arguments of a typical `bertkit predict` call on this task's models, for hints."""
        return f'"{self.example}"'

    # ----------------------------------------------------------------- training

    def load_tokenizer(self, recipe: Any) -> Any:
        """The tokenizer training uses, or None when the run trains its own."""
        from bertkit.models import load_tokenizer

        source = recipe.model.tokenizer or recipe.model.name
        return load_tokenizer(
            str(source), revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
        )

    def check(self, recipe: Any, tokenizer: Any, report: CheckReport) -> None:
        """Add what the recipe's data holds to a `bertkit check` report (never raises)."""
        self._part("checks").check_data(recipe, report.limit, tokenizer, report)

    def read(self, recipe: Any) -> Any:
        """Read and decide the recipe's data, cheaply, before a run directory exists."""
        return self._part("train").read(recipe)

    def run_tokenizer(self, recipe: Any, data: Any, run: RunDirectory, resuming: bool, tokenizer: Any) -> Any:
        """The tokenizer for the run (a task that trains its own does it here)."""
        return tokenizer

    def prepare(self, recipe: Any, data: Any, tokenizer: Any, placement: Placement) -> Prepared:
        """Tokenize the data and build the model and everything the Trainer needs."""
        return self._part("train").prepare(recipe, data, tokenizer, placement)

    # ----------------------------------------------------------------- use

    def evaluate(self, model: Path | None, options: dict[str, Any]) -> Outcome:
        """`bertkit eval` on a model of this task."""
        return self._part("commands").evaluate(model, options)

    def predict(self, model: Path | None, texts: list[str], options: dict[str, Any]) -> None:
        """`bertkit predict` on a model of this task (prints or writes the predictions)."""
        self._part("commands").predict(model, texts, options)

    def export(
        self,
        folder: Path,
        run: Any,
        tmp: Path,
        quantize: str | None,
        optimize: bool,
        data: Path | None,
        limits: Any,
        step: Callable[[str], None],
    ) -> Any:
        """Write the ONNX graphs of a model into `tmp` and check them against it (an ExportResult)."""
        return self._part("export").export_checks(folder, run, tmp, quantize, optimize, data, limits, step)

    def endpoint(self) -> Any:
        """The `bertkit.serving.endpoint.Endpoint` subclass that serves this task's models."""
        return self._part("serve").ENDPOINT

    def _part(self, module: str) -> Any:
        """A module of the task's package, imported when first needed (they import torch)."""
        import importlib

        return importlib.import_module(f"{type(self).__module__}.{module}")


CONFIG_KEY = "bertkit"  # the section of a model's config.json that bertkit writes


def recorded_task(folder: Path) -> str | None:
    """The task bertkit recorded in a model folder's config.json, if any (no imports, no errors)."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    section = config.get(CONFIG_KEY) if isinstance(config, dict) else None
    return section.get("task") if isinstance(section, dict) else None
