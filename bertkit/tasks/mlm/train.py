"""Masked-LM pretraining: continue a BERT on your text, or train one from scratch.

Same shape as fine-tuning: cheap checks first (recipe, corpus files, tokenizer with
a mask token), then the run directory, then sequences, model and Trainer.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.console import is_main_process, note
from bertkit.errors import DataError, ModelError, RecipeError
from bertkit.recipe.schema import Recipe
from bertkit.runs import RunDirectory
from bertkit.tasks.mlm.corpus import SequenceStats, build_sequences, load_corpus
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

MAIN_METRIC = "loss"


def pretrain(
    recipe: Recipe,
    *,
    resume: bool = False,
    resume_from: Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
    command: list[str] | None = None,
) -> TrainingResult:
    """Masked-LM pretraining from a recipe into a complete run directory.

    Args:
        recipe: a validated `task: mlm` recipe.
        resume: continue the run at output.dir from its latest checkpoint.
        resume_from: a run directory or checkpoint folder to continue.
        overwrite: replace an existing run directory at output.dir.
        device: force cpu, cuda or mps.
        command: the command line, recorded in the run.

    Raises:
        BertkitError: bad recipe, corpus or tokenizer (before anything is written),
            or a training failure.
    """
    if recipe.task != "mlm":
        raise RecipeError(
            f"task is {recipe.task!r}; pretrain trains masked language models",
            hint="use `bertkit finetune` for classification recipes",
        )
    quiet_libraries()
    from bertkit.devices import resolve_placement

    tokenizer = None if recipe.tokenizer.train else _existing_tokenizer(recipe)
    preflight(recipe, tokenizer)
    corpus = _load_splits(recipe)
    placement = resolve_placement(recipe.train.precision, device, recipe.train.tf32)
    join_processes(placement.device)
    run, checkpoint = start_run(recipe, resume=resume, resume_from=resume_from, overwrite=overwrite)
    with cleanup_on_failure(run, created=checkpoint is None):
        if tokenizer is None:
            tokenizer = _tokenizer_for_scratch(recipe, corpus["train"], run, checkpoint)
        return _train(recipe, corpus, tokenizer, placement, run, checkpoint, command or sys.argv)


def _load_splits(recipe: Recipe) -> dict[str, Any]:
    data = recipe.data
    limit = data.limit
    splits = {}
    for split in ("train", "validation"):
        source = getattr(data, split)
        if source is not None:
            corpus = load_corpus(source, data, recipe.mlm)
            splits[split] = corpus.select(range(min(limit, len(corpus)))) if limit else corpus
    if "validation" not in splits and data.validation_split:
        parts = splits["train"].train_test_split(test_size=data.validation_split, seed=recipe.train.seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
        note(
            f"validation: {len(parts['test']):,} documents held out from train ({data.validation_split:.0%})"
        )
    return splits


def _existing_tokenizer(recipe: Recipe) -> Any:
    from bertkit.models import load_tokenizer

    source = recipe.model.tokenizer or recipe.model.name
    tokenizer = load_tokenizer(
        str(source), revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
    )
    if tokenizer.mask_token is None:
        raise ModelError(
            f"{source}: the tokenizer has no mask token, so it cannot be used for masked-LM training",
            hint="use a BERT tokenizer (it has [MASK]) or train one with tokenizer.train: true",
        )
    return tokenizer


def _tokenizer_for_scratch(recipe: Recipe, train: Any, run: RunDirectory, checkpoint: Path | None) -> Any:
    """Train the run's WordPiece tokenizer (once: a resumed run reuses it)."""
    from bertkit.models import load_tokenizer
    from bertkit.tasks.mlm.wordpiece import train_wordpiece
    from bertkit.training.distributed import barrier

    folder = run.path / "tokenizer"
    if checkpoint is not None and (folder / "tokenizer_config.json").is_file():
        return load_tokenizer(str(folder))
    settings = recipe.tokenizer
    if is_main_process():
        note(
            f"training a WordPiece tokenizer: vocabulary {settings.vocab_size:,}, "
            f"{'uncased' if settings.lowercase else 'cased'}"
        )

        def texts() -> Any:
            for batch in train.iter(batch_size=1000):
                yield from batch["text"]

        train_wordpiece(
            texts(),
            folder,
            vocab_size=settings.vocab_size,
            lowercase=settings.lowercase,
            min_frequency=settings.min_frequency,
            model_max_length=recipe.data.max_length,
        )
    barrier()  # the other processes load what the main one trained
    return load_tokenizer(str(folder))


def _train(
    recipe: Recipe,
    corpus: dict[str, Any],
    tokenizer: Any,
    placement: Any,
    run: RunDirectory,
    checkpoint: Path | None,
    command: list[str],
) -> TrainingResult:
    from transformers import set_seed

    from bertkit.files import atomic_write_text
    from bertkit.recipe.loading import dump_recipe
    from bertkit.tasks.mlm.masking import MlmCollator, premask
    from bertkit.training.arguments import micro_batch_splits, pad_multiple, training_arguments
    from bertkit.training.callbacks import JsonlLog, RichProgress
    from bertkit.training.outputs import write_run_outputs
    from bertkit.training.trainer import BertkitTrainer

    if is_main_process():
        atomic_write_text(run.recipe_file, dump_recipe(recipe))
    max_length = recipe.data.max_length
    sequences: dict[str, Any] = {}
    notes: list[str] = []
    for split, texts in corpus.items():
        with local_main_first():  # one process per machine builds them into the cache, the others read it
            built, stats = build_sequences(texts, tokenizer, recipe.mlm, max_length, seed=recipe.train.seed)
        if len(built) == 0:
            raise DataError(f"data.{split}: no sequences could be built", hint="check the corpus has text")
        sequences[split] = built
        notes.append(stats.describe(split))
        if split == "train" and is_main_process():
            _record_stats(run, stats)
    how = "whole words" if recipe.mlm.whole_word else "tokens"
    notes.append(f"masking {recipe.mlm.probability:.0%} of {how}; objective {recipe.mlm.objective}")
    for line in notes:
        note(line)

    set_seed(recipe.train.seed)
    model, ref = _model(recipe, tokenizer)
    # BERT heads average their loss over the local batch and ignore `num_items_in_batch`,
    # but their forward takes **kwargs, so the Trainer would treat the loss as already
    # normalised over accumulation steps and devices: gradients would grow with
    # gradient_accumulation and with the number of processes. Say what is true.
    model.accepts_loss_kwargs = False
    pad = pad_multiple(recipe.train, placement)
    collator = MlmCollator(tokenizer, recipe.mlm.probability, recipe.mlm.whole_word, pad_to_multiple_of=pad)
    if "validation" in sequences:
        sequences["validation"] = premask(sequences["validation"], collator)

    has_eval = "validation" in sequences
    selection = Selection(MAIN_METRIC, greater_is_better=False) if has_eval else None
    nsp = recipe.mlm.objective == "mlm+nsp"
    # Packed blocks all have the same length: sorting them into micro-batches saves nothing.
    packed = recipe.mlm.sequences == "packing" and not nsp
    train_settings = recipe.train.model_copy(update={"group_by_length": False}) if packed else recipe.train
    args = training_arguments(
        train_settings,
        run.checkpoints,
        placement,
        evaluate=has_eval,
        selection=selection,
        keep_columns=True,
        label_names=["labels", "next_sentence_label"] if nsp else None,
    )
    trainer = BertkitTrainer(
        model=model,
        args=args,
        train_dataset=sequences["train"],
        eval_dataset=sequences.get("validation"),
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=masked_lm_metrics,
        preprocess_logits_for_metrics=predicted_tokens,
        callbacks=[RichProgress.for_args(args), JsonlLog(run.path / "log.jsonl")],
        micro_batches=micro_batch_splits(train_settings, placement.device),
    )
    output = train(trainer, run, recipe, checkpoint, "pretrain")

    metrics: dict[str, dict[str, float]] = {"train": strip_prefix(output.metrics, "train_")}
    if has_eval:
        scores = strip_prefix(trainer.evaluate(metric_key_prefix="validation"), "validation_")
        # With next-sentence prediction the loss is the sum of both tasks: no perplexity.
        metrics["validation"] = scores if nsp else with_perplexity(scores)
    staging = save_model(trainer, run)
    if is_main_process():
        write_run_outputs(
            run,
            staging=staging,
            trainer=trainer,
            recipe=recipe,
            metrics=metrics,
            labels=None,
            main_metric=MAIN_METRIC if has_eval else None,
            placement=placement,
            model_ref=ref,
            data_notes=notes,
            command=command,
        )
    return TrainingResult(run, metrics, MAIN_METRIC if has_eval else None, notes)


def _model(recipe: Recipe, tokenizer: Any) -> tuple[Any, Any]:
    """The model to train (continued or from scratch) and where it came from."""
    from transformers import AutoModelForMaskedLM, BertForMaskedLM, BertForPreTraining

    from bertkit.models import ModelRef, load_model, resolve_model
    from bertkit.tasks.mlm.wordpiece import scratch_config

    nsp = recipe.mlm.objective == "mlm+nsp"
    if recipe.model.init == "scratch":
        config = scratch_config(recipe.model.size, recipe.model.config, tokenizer, recipe.data.max_length)
        model = BertForPreTraining(config) if nsp else BertForMaskedLM(config)
        size = f"{recipe.model.size} " if recipe.model.size else ""
        params = sum(p.numel() for p in model.parameters())
        note(
            f"new {size}BERT from scratch: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
            f"{params / 1e6:.1f}M parameters"
        )
        return model, ModelRef("scratch", f"scratch ({recipe.model.size or 'custom'})", True)

    ref = resolve_model(str(recipe.model.name))
    model, missing = load_model(
        BertForPreTraining if nsp else AutoModelForMaskedLM,
        ref,
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
        allow_pickle=recipe.model.allow_pickle,
    )
    heads = sorted({key.split(".")[0] for key in missing if not key.startswith("bert.")})
    if heads:
        note(f"{ref.shown} has no pretraining head ({', '.join(heads)}): it starts from random weights")
    if len(tokenizer) > model.config.vocab_size:
        note(f"growing the vocabulary from {model.config.vocab_size:,} to {len(tokenizer):,} tokens")
        model.resize_token_embeddings(len(tokenizer))
    return model, ref


def predicted_tokens(logits: Any, labels: Any) -> Any:
    """Keep only argmax predictions (not vocabulary-sized logits) for evaluation."""
    if isinstance(logits, tuple):  # BertForPreTraining: (token logits, next-sentence logits)
        return tuple(item.argmax(dim=-1) for item in logits[:2])
    return logits.argmax(dim=-1)


def masked_lm_metrics(prediction: Any) -> dict[str, float]:
    """Accuracy on masked positions (and on next-sentence labels when present)."""
    predictions, labels = prediction.predictions, prediction.label_ids
    nsp_predictions = nsp_labels = None
    if isinstance(predictions, tuple):
        predictions, nsp_predictions = predictions[0], predictions[1]
    if isinstance(labels, tuple):
        labels, nsp_labels = labels[0], labels[1]
    mask = labels != -100
    metrics = {"masked_accuracy": float((predictions[mask] == labels[mask]).mean()) if mask.any() else 0.0}
    if nsp_predictions is not None and nsp_labels is not None:
        metrics["nsp_accuracy"] = float((np.asarray(nsp_predictions) == np.asarray(nsp_labels)).mean())
    return metrics


def with_perplexity(metrics: dict[str, float]) -> dict[str, float]:
    """Add perplexity, exp(loss), to evaluation metrics (loss is the masked-token loss)."""
    if "loss" in metrics:
        metrics["perplexity"] = math.exp(min(metrics["loss"], 50.0))
    return metrics


def _record_stats(run: RunDirectory, stats: SequenceStats) -> None:
    from dataclasses import asdict

    from bertkit.files import atomic_write_json

    atomic_write_json(run.path / "sequences.json", {**asdict(stats), "dropped_tokens": stats.dropped_tokens})
