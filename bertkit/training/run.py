"""The one training orchestrator: from a recipe of any task to a complete run directory.

The order matters: everything that can be checked cheaply (recipe, tokenizer, every
data problem at once, the task's decisions, precision, the run directory) is checked
before the model is loaded, so a mistake costs seconds and leaves nothing behind.
Then the task prepares its data and model, the Trainer trains, every held-out split
is evaluated, and the run directory is written, complete, last. Nothing here knows a
task by name: the task (bertkit.tasks) supplies what differs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bertkit.console import is_main_process, note, warn
from bertkit.recipe.base import RecipeBase
from bertkit.runs import RunDirectory
from bertkit.training.distributed import join_processes, local_main_first
from bertkit.training.runner import (
    TrainingResult,
    cleanup_on_failure,
    quiet_libraries,
    save_model,
    start_run,
    strip_prefix,
    train,
)


def train_recipe(
    recipe: RecipeBase,
    *,
    resume: bool = False,
    resume_from: Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
    command: list[str] | None = None,
    callbacks: list[Any] | None = None,
) -> TrainingResult:
    """Train the recipe's task and write a complete run directory.

    Args:
        recipe: a validated recipe of any task.
        resume: continue the run at output.dir from its latest checkpoint.
        resume_from: a run directory (its latest checkpoint) or a checkpoint folder.
        overwrite: replace an existing run directory at output.dir.
        device: force cpu, cuda or mps (default: the best available).
        command: the command line, recorded in the run.
        callbacks: more Trainer callbacks (from Python: measurements, logging).

    Raises:
        BertkitError: bad recipe, data or model (before anything is written), or a
            training failure (the run directory keeps its checkpoints for resuming).
    """
    from bertkit.devices import resolve_placement
    from bertkit.tasks import get_task

    quiet_libraries()
    task = get_task(recipe.task)
    tokenizer = task.load_tokenizer(recipe)
    preflight(recipe, task, tokenizer)
    data = task.read(recipe)
    placement = resolve_placement(recipe.train.precision, device, recipe.train.tf32)
    join_processes(placement.device)
    run, checkpoint = start_run(recipe, resume=resume, resume_from=resume_from, overwrite=overwrite)
    with cleanup_on_failure(run, created=checkpoint is None):
        tokenizer = task.run_tokenizer(recipe, data, run, checkpoint is not None, tokenizer)
        return _train(
            task, recipe, data, tokenizer, placement, run, checkpoint, command or sys.argv, callbacks
        )


def _train(
    task: Any,
    recipe: RecipeBase,
    data: Any,
    tokenizer: Any,
    placement: Any,
    run: RunDirectory,
    checkpoint: Path | None,
    command: list[str],
    extra_callbacks: list[Any] | None,
) -> TrainingResult:
    from transformers import set_seed

    from bertkit.files import atomic_write_json, atomic_write_text
    from bertkit.recipe.loading import dump_recipe
    from bertkit.tasks import CONFIG_KEY
    from bertkit.training.outputs import write_run_outputs

    if is_main_process():
        atomic_write_text(run.recipe_file, dump_recipe(recipe))
    set_seed(recipe.train.seed)
    # One process per machine tokenizes into the cache (and fetches the weights), the others read them.
    with local_main_first():
        prepared = task.prepare(recipe, data, tokenizer, placement)
    prepared.notes.append(f"precision: {placement.reason}")
    for line in prepared.notes:
        note(line)
    if prepared.sequences is not None and is_main_process():
        atomic_write_json(run.path / "sequences.json", prepared.sequences)
    model = prepared.model
    # Every copy of the model says what it is and how it reads its input.
    hf_model = prepared.hf_model if prepared.hf_model is not None else model
    hf_model.config.update({CONFIG_KEY: {"task": task.name, **prepared.config}})
    # BERT heads average their loss over the local batch and ignore `num_items_in_batch`,
    # but their forward takes **kwargs, so the Trainer would treat the loss as already
    # normalised over accumulation steps and devices: gradients would grow with
    # gradient_accumulation and with the number of processes. Say what is true.
    model.accepts_loss_kwargs = False

    trainer = _trainer(recipe, prepared, tokenizer, placement, run, extra_callbacks or [])
    output = train(trainer, run, recipe, checkpoint, task.command)

    metrics: dict[str, dict[str, float]] = {"train": strip_prefix(output.metrics, "train_")}
    _record_token_rate(metrics["train"], prepared.datasets["train"])
    for split, dataset in prepared.datasets.items():
        if split != "train":
            if prepared.metrics_for is not None:
                trainer.compute_metrics = prepared.metrics_for(split)
            if prepared.select_split is not None:
                prepared.select_split(trainer, split)
            scores = strip_prefix(trainer.evaluate(dataset, metric_key_prefix=split), f"{split}_")
            metrics[split] = prepared.finish_metrics(scores) if prepared.finish_metrics else scores
    selection = prepared.selection
    main_metric = selection.metric if selection is not None else None
    staging = save_model(trainer, run)
    if is_main_process():
        write_run_outputs(
            run,
            staging=staging,
            trainer=trainer,
            recipe=recipe,
            metrics=metrics,
            card=prepared.card,
            pipeline_tag=task.pipeline_tag,
            command_name=task.command,
            main_metric=main_metric,
            placement=placement,
            model_ref=prepared.model_ref,
            data_notes=prepared.notes,
            command=command,
        )
    return TrainingResult(run, metrics, main_metric, prepared.notes)


def _trainer(
    recipe: RecipeBase, prepared: Any, tokenizer: Any, placement: Any, run: RunDirectory, extra: list[Any]
) -> Any:
    """The Trainer for a prepared task: arguments, callbacks, sorted micro-batches."""
    from transformers.trainer_callback import EarlyStoppingCallback

    from bertkit.training.arguments import micro_batch_splits, training_arguments
    from bertkit.training.callbacks import JsonlLog, RichProgress
    from bertkit.training.trainer import BertkitTrainer

    train_settings = recipe.train
    if not prepared.sorted_batches:  # blocks of one length, or padding-free rows: nothing to sort
        train_settings = train_settings.model_copy(update={"group_by_length": False})
    evaluate = "validation" in prepared.datasets
    selection = prepared.selection if evaluate else None
    compute_metrics = prepared.compute_metrics
    if evaluate and prepared.metrics_for is not None:
        compute_metrics = prepared.metrics_for("validation")
    args = training_arguments(
        train_settings,
        run.checkpoints,
        placement,
        evaluate=evaluate,
        selection=selection,
        keep_columns=prepared.keep_columns,
        label_names=prepared.label_names,
    )
    callbacks = [
        RichProgress.for_args(args, selection.metric if selection else None),
        JsonlLog(run.path / "log.jsonl"),
        *prepared.callbacks,
        *extra,
    ]
    if train_settings.early_stopping and evaluate:
        stopping = train_settings.early_stopping
        callbacks.append(EarlyStoppingCallback(stopping.patience, stopping.threshold))
    elif train_settings.early_stopping:
        warn("train.early_stopping needs validation data; it is off for this run")
    trainer_arguments = dict(
        model=prepared.model,
        args=args,
        train_dataset=prepared.datasets["train"],
        eval_dataset=prepared.datasets.get("validation"),
        processing_class=tokenizer,
        data_collator=prepared.collator,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=prepared.preprocess_logits,
        compute_loss_func=prepared.compute_loss,
        callbacks=callbacks,
    )
    if prepared.make_trainer is not None:
        return prepared.make_trainer(trainer_arguments)
    return BertkitTrainer(
        **trainer_arguments,
        micro_batches=micro_batch_splits(train_settings, placement.device),
        train_collator=prepared.train_collator,
    )


def preflight(recipe: RecipeBase, task: Any, tokenizer: Any) -> None:
    """Check the recipe's data before any compute: warnings printed, errors raised, all at once.

    Raises:
        BertkitError: every problem that would make training fail or meaningless.
    """
    from bertkit.checks import check_recipe, raise_for_errors
    from bertkit.console import warn

    report = check_recipe(recipe, task, tokenizer=tokenizer)
    for finding in report.warnings:
        if finding.code != "trust_remote_code":  # loading the tokenizer said so already
            warn(finding.message + (f" ({finding.hint})" if finding.hint else ""))
    raise_for_errors(report)


def _record_token_rate(train: dict[str, float], dataset: Any) -> None:
    """Real (non-padding) tokens per second of training: samples/s x a training example's mean length.

    What a benchmark turns into useful FLOP/s (tokens x 6 x parameters), whatever padding
    a batch layout adds. Left out when the examples carry no length (embeddings).
    """
    from bertkit.training.trainer import LENGTH_COLUMN

    rate = train.get("samples_per_second")
    if (
        rate is None
        or LENGTH_COLUMN not in (getattr(dataset, "column_names", None) or [])
        or not len(dataset)
    ):
        return
    lengths = dataset[LENGTH_COLUMN]
    train["tokens_per_second"] = rate * sum(lengths) / len(lengths)
