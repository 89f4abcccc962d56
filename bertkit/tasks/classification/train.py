"""Fine-tune a BERT checkpoint for text classification, from a recipe to a run directory.

The order matters: everything that can be checked cheaply (recipe, data files,
columns, labels, tokenizer, precision, the run directory) is checked before the
model is loaded, so a mistake costs seconds and leaves nothing behind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bertkit.console import is_main_process, note, warn
from bertkit.errors import RecipeError
from bertkit.recipe.schema import Recipe
from bertkit.runs import RunDirectory
from bertkit.tasks.classification.data import ClassificationData, load_classification_data
from bertkit.training.arguments import Selection
from bertkit.training.distributed import join_processes, local_main_first
from bertkit.training.runner import (
    TrainingResult,
    cleanup_on_failure,
    preflight,
    quiet_libraries,
    save_model,
    start_run,
    strip_prefix,
    train,
)


def finetune(
    recipe: Recipe,
    *,
    resume: bool = False,
    resume_from: Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
    command: list[str] | None = None,
) -> TrainingResult:
    """Fine-tune `recipe.model.name` on the recipe's data and write a complete run directory.

    Args:
        recipe: a validated classification recipe.
        resume: continue the run at output.dir from its latest checkpoint.
        resume_from: a run directory (its latest checkpoint) or a checkpoint folder.
        overwrite: replace an existing run directory at output.dir.
        device: force cpu, cuda or mps (default: the best available).
        command: the command line, recorded in the run.

    Raises:
        BertkitError: bad recipe, data or model (before anything is written), or a
            training failure (the run directory keeps its checkpoints for resuming).
    """
    if recipe.task != "classification":
        raise RecipeError(
            f"task is {recipe.task!r}; finetune trains classifiers",
            hint="use `bertkit pretrain` for masked-LM recipes",
        )
    quiet_libraries()
    from bertkit.devices import resolve_placement
    from bertkit.models import load_tokenizer, resolve_model

    # 1. Cheap checks first: model and tokenizer, every data problem at once, labels,
    #    settings, precision, the run directory.
    ref = resolve_model(str(recipe.model.name))
    tokenizer = load_tokenizer(
        str(recipe.model.tokenizer or recipe.model.name),
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
    )
    preflight(recipe, tokenizer)
    data = load_classification_data(recipe.data, recipe.labels, seed=recipe.train.seed)
    class_weights = resolve_class_weights(recipe, data)
    selection = select_metric(recipe, data)  # a train.metric the data cannot give fails now, not later
    placement = resolve_placement(recipe.train.precision, device, recipe.train.tf32)
    join_processes(placement.device)
    run, checkpoint = start_run(recipe, resume=resume, resume_from=resume_from, overwrite=overwrite)

    # 2. Inputs are sound: tokenize, load the model, train.
    notes = [*data.notes, data.labels.reason, f"precision: {placement.reason}"]
    with cleanup_on_failure(run, created=checkpoint is None):
        return _train(
            recipe,
            data,
            tokenizer,
            ref,
            placement,
            run,
            checkpoint,
            class_weights,
            selection,
            notes,
            command or sys.argv,
        )


def _train(
    recipe: Recipe,
    data: ClassificationData,
    tokenizer: Any,
    ref: Any,
    placement: Any,
    run: RunDirectory,
    checkpoint: Path | None,
    class_weights: list[float] | None,
    selection: Selection,
    notes: list[str],
    command: list[str],
) -> TrainingResult:
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, set_seed
    from transformers.trainer_callback import EarlyStoppingCallback

    from bertkit.files import atomic_write_text
    from bertkit.models import load_model
    from bertkit.recipe.loading import dump_recipe
    from bertkit.tasks.classification.inference import CONFIG_KEY, inputs_config
    from bertkit.tasks.classification.metrics import make_compute_metrics
    from bertkit.training.arguments import micro_batch_splits, pad_multiple, training_arguments
    from bertkit.training.callbacks import JsonlLog, RichProgress
    from bertkit.training.outputs import write_run_outputs
    from bertkit.training.trainer import BertkitTrainer

    spec = data.labels
    if is_main_process():
        atomic_write_text(run.recipe_file, dump_recipe(recipe))

    with local_main_first():  # one process per machine tokenizes into the cache, the others read it
        tokenized = _tokenize(recipe, data, tokenizer, notes)
    for line in notes:
        note(line)

    set_seed(recipe.train.seed)
    model, missing = load_model(
        AutoModelForSequenceClassification,
        ref,
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
        allow_pickle=recipe.model.allow_pickle,
        num_labels=spec.num_labels,
        id2label=spec.id2label(),
        label2id={name: i for i, name in spec.id2label().items()},
        problem_type=spec.problem_type,
        ignore_mismatched_sizes=True,
    )
    model.config.update({CONFIG_KEY: inputs_config(recipe)})  # predict as trained, from any copy
    # BERT heads average their loss over the local batch and ignore `num_items_in_batch`,
    # but their forward takes **kwargs, so the Trainer would treat the loss as already
    # normalised over accumulation steps and devices: gradients would grow with
    # gradient_accumulation and with the number of processes. Say what is true.
    model.accepts_loss_kwargs = False
    if any(key.startswith("classifier") for key in missing):
        outputs = f"{spec.num_labels} output{'s' if spec.num_labels > 1 else ''}"
        note(f"{ref.shown}: new classification head ({outputs}), randomly initialised")

    has_eval = "validation" in tokenized
    args = training_arguments(
        recipe.train, run.checkpoints, placement, evaluate=has_eval, selection=selection if has_eval else None
    )
    callbacks = [
        RichProgress.for_args(args, selection.metric if has_eval else None),
        JsonlLog(run.path / "log.jsonl"),
    ]
    if recipe.train.early_stopping and has_eval:
        callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=recipe.train.early_stopping.patience,
                early_stopping_threshold=recipe.train.early_stopping.threshold,
            )
        )
    elif recipe.train.early_stopping:
        warn("train.early_stopping needs validation data; it is off for this run")

    trainer = BertkitTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=pad_multiple(recipe.train, placement)
        ),
        compute_metrics=make_compute_metrics(
            spec.problem, threshold=recipe.labels.threshold, label_names=list(spec.names) or None
        ),
        compute_loss_func=weighted_loss(class_weights) if class_weights else None,
        callbacks=callbacks,
        micro_batches=micro_batch_splits(recipe.train, placement.device),
    )
    output = train(trainer, run, recipe, checkpoint, "finetune")

    metrics: dict[str, dict[str, float]] = {"train": strip_prefix(output.metrics, "train_")}
    for split in ("validation", "test"):
        if split in tokenized:
            result = trainer.evaluate(tokenized[split], metric_key_prefix=split)
            metrics[split] = strip_prefix(result, f"{split}_")

    staging = save_model(trainer, run)
    if is_main_process():
        write_run_outputs(
            run,
            staging=staging,
            trainer=trainer,
            recipe=recipe,
            metrics=metrics,
            labels=spec,
            main_metric=selection.metric,
            placement=placement,
            model_ref=ref,
            data_notes=notes,
            command=command,
        )
    return TrainingResult(run, metrics, selection.metric, notes)


def _tokenize(recipe: Recipe, data: ClassificationData, tokenizer: Any, notes: list[str]) -> dict[str, Any]:
    """Every split tokenized (or read from the cache), with its truncation share noted."""
    from bertkit.tokenization import tokenize_texts

    tokenized = {}
    for split in data.tables:
        texts, pairs = data.texts(split, recipe.data)
        result = tokenize_texts(
            tokenizer, texts, pairs, data.targets[split], max_length=recipe.data.max_length
        )
        tokenized[split] = result.dataset
        cached = " (cached)" if result.cached else ""
        notes.append(
            f"{split}: {result.truncated:,} of {len(result.dataset):,} examples "
            f"({result.truncated_share:.1%}) truncated at {recipe.data.max_length} tokens{cached}"
        )
    return tokenized


def select_metric(recipe: Recipe, data: ClassificationData) -> Selection:
    """The metric that picks the best checkpoint: `train.metric`, else the task's default.

    Raises:
        BertkitError: `train.metric` is not a metric this task reports, or one the
            validation data cannot give (ROC AUC needs both classes).
    """
    from bertkit.tasks.classification.metrics import main_metric, resolve_metric

    spec = data.labels
    if not recipe.train.metric:
        return Selection(*main_metric(spec.problem, spec.num_labels))
    name, greater = resolve_metric(recipe.train.metric, spec.problem, spec.num_labels, list(spec.names))
    validation = data.targets.get("validation")
    if name == "roc_auc" and validation is not None and len(set(validation)) < 2:
        raise RecipeError(
            "train.metric: roc_auc is undefined on validation data that holds a single class",
            hint="use another train.metric (accuracy, f1_macro, mcc), or validation data with both classes",
        )
    return Selection(name, greater)


def resolve_class_weights(recipe: Recipe, data: ClassificationData) -> list[float] | None:
    """Per-class loss weights from `train.class_weights`, in label id order.

    `auto` weighs each class by n_examples / (n_classes * n_class_examples), the
    usual "balanced" weighting.

    Raises:
        RecipeError: weights for a problem other than single-label, or not matching the labels.
    """
    setting = recipe.train.class_weights
    if setting == "none":
        return None
    spec = data.labels
    if spec.problem != "single":
        raise RecipeError(
            f"train.class_weights: applies to single-label classification, not {spec.problem}",
            hint="remove train.class_weights",
        )
    names = list(spec.names)
    if setting == "auto":
        targets = data.targets["train"]
        counts = [targets.count(i) for i in range(len(names))]
        weights = [len(targets) / (len(names) * max(c, 1)) for c in counts]
    elif isinstance(setting, dict):
        unknown = sorted(set(setting) - set(names))
        if unknown:
            raise RecipeError(
                f"train.class_weights: unknown labels {unknown}; labels are {names}",
                hint="name every weight by a label of the training data",
            )
        weights = [float(setting.get(name, 1.0)) for name in names]
    else:
        if len(setting) != len(names):
            raise RecipeError(
                f"train.class_weights: {len(setting)} weights for {len(names)} labels {names}",
                hint="give one weight per label, in label id order, or a mapping label: weight",
            )
        weights = [float(w) for w in setting]
    if any(w <= 0 for w in weights):
        raise RecipeError("train.class_weights: weights must be positive", hint="use values > 0")
    return weights


def weighted_loss(weights: list[float]) -> Any:
    """A Trainer `compute_loss_func`: cross-entropy with per-class weights."""
    import torch
    from torch.nn import functional

    table = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs["logits"].float()
        total = functional.cross_entropy(logits, labels, weight=table.to(logits.device), reduction="sum")
        # The Trainer expects the loss normalised by the items in the whole
        # accumulated batch when it passes that count (gradient accumulation).
        count = num_items_in_batch if num_items_in_batch is not None else labels.numel()
        return total / count

    return loss
