"""The one place where a recipe becomes Hugging Face `TrainingArguments`.

Every training command goes through `training_arguments`, so a setting means the
same thing in fine-tuning and pretraining, and defaults are decided once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bertkit.devices import Placement
from bertkit.errors import RecipeError
from bertkit.recipe.base import TrainSection

if TYPE_CHECKING:
    from transformers import TrainingArguments

# On CPU there is no memory limit worth probing; this is where `batch_size: auto` starts.
_AUTO_BATCH_CPU = 32
_AUTO_BATCH_GPU = 128
# Accelerate's names for bertkit's precisions, and the variable its launchers set.
ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
PRECISION_VARIABLE = "ACCELERATE_MIXED_PRECISION"


@dataclass(frozen=True)
class Selection:
    """How the best checkpoint is chosen: metric name (without `eval_`) and direction."""

    metric: str
    greater_is_better: bool


def batch_size(train: TrainSection, device: str) -> int:
    """The per-device batch size to start from (`auto` starts high on GPUs and searches down).

    Raises:
        RecipeError: `auto` under several processes: each would search alone, settle on
            a different size, and the processes would then wait for each other forever.
    """
    if train.batch_size != "auto":
        return train.batch_size
    from bertkit.training.distributed import world_size

    if world_size() > 1:
        raise RecipeError(
            f"train.batch_size: auto searches for the largest batch that fits on one process; "
            f"under {world_size()} processes each would settle on its own",
            hint="give a number per device, e.g. --set train.batch_size=32 (find it with one process first)",
        )
    return _AUTO_BATCH_GPU if device == "cuda" else _AUTO_BATCH_CPU


def micro_batch_splits(train: TrainSection, device: str) -> int:
    """Micro-batches per batch when `train.group_by_length` is on (else 1); see sampling.py."""
    from bertkit.training.sampling import micro_batches

    if not train.group_by_length or train.batch_size == "auto":
        return 1
    return micro_batches(train.batch_size, device)


def training_arguments(
    train: TrainSection,
    output_dir: Path,
    placement: Placement,
    *,
    evaluate: bool,
    selection: Selection | None,
    keep_columns: bool = False,
    label_names: list[str] | None = None,
) -> TrainingArguments:
    """Build TrainingArguments from the recipe's train section.

    Args:
        train: the recipe's train section.
        output_dir: where checkpoints go (the run's `checkpoints/`).
        placement: resolved device and precision.
        evaluate: whether there is validation data to evaluate on.
        selection: metric that picks the best model; None keeps the last one.
        keep_columns: pass every dataset column to the collator (it drops what the
            model does not take), instead of the Trainer removing unknown ones.
        label_names: the model inputs that are labels, when not just `labels`.
    """
    from transformers import TrainingArguments

    if train.gradient_checkpointing and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise RecipeError(
            "train.gradient_checkpointing: under FSDP it gathers every layer's weights again in the "
            "backward pass",
            hint="set fsdp_activation_checkpointing: true in the Accelerate config, and "
            "train.gradient_checkpointing: false",
        )
    per_device = batch_size(train, placement.device)
    # Each batch runs as `splits` length-sorted micro-batches (BertkitTrainer): the
    # Trainer sees the micro-batch size and accumulates over them.
    splits = micro_batch_splits(train, placement.device)
    eval_strategy = train.eval_every if evaluate else "no"
    # Checkpoints follow evaluations, so the best one is always on disk; without
    # evaluation they are saved each epoch (or every save_steps) for resuming.
    if eval_strategy != "no":
        save_strategy, save_steps = eval_strategy, train.eval_steps
    elif train.save_steps:
        save_strategy, save_steps = "steps", train.save_steps
    else:
        save_strategy, save_steps = "epoch", None
    keep_best = eval_strategy != "no" and selection is not None
    cuda = placement.device == "cuda"
    with recipe_precision(placement.precision):
        return TrainingArguments(
            output_dir=str(output_dir),
            num_train_epochs=train.epochs,
            max_steps=train.max_steps or -1,
            per_device_train_batch_size=per_device // splits,
            per_device_eval_batch_size=train.eval_batch_size or per_device * 2,
            auto_find_batch_size=train.batch_size == "auto" and cuda,
            gradient_accumulation_steps=train.gradient_accumulation * splits,
            learning_rate=train.learning_rate,
            weight_decay=train.weight_decay,
            warmup_steps=train.warmup,  # below 1: a ratio of all steps (transformers 5)
            lr_scheduler_type=train.scheduler,
            max_grad_norm=train.max_grad_norm,
            # Fused AdamW (on CPU too, torch >= 2.4) takes several times less per step. Under
            # fp16 loss scaling it steps on overflow itself, so Accelerate cannot tell a
            # skipped step and the schedule would advance: the foreach AdamW lets it skip.
            optim="adamw_torch" if placement.precision == "fp16" else "adamw_torch_fused",
            seed=train.seed,
            data_seed=train.seed,
            bf16=placement.precision == "bf16",
            fp16=placement.precision == "fp16",
            tf32=placement.tf32 if cuda else None,  # False: IEEE fp32, whatever the default
            use_cpu=placement.device == "cpu",
            # Length grouping is BertkitTrainer's (bertkit/training/sampling.py), not the Trainer's.
            train_sampling_strategy="random",
            eval_strategy=eval_strategy,
            eval_steps=train.eval_steps if eval_strategy == "steps" else None,
            save_strategy=save_strategy,
            save_steps=save_steps,
            save_total_limit=train.save_total_limit,
            load_best_model_at_end=keep_best,
            metric_for_best_model=selection.metric if keep_best else None,
            greater_is_better=selection.greater_is_better if keep_best else None,
            logging_strategy="steps",
            logging_steps=train.logging_steps,
            logging_first_step=True,
            logging_nan_inf_filter=False,  # a NaN loss must be seen, so training can stop on it
            report_to=list(train.report_to) or "none",
            disable_tqdm=True,  # bertkit draws its own progress bar
            torch_compile=train.torch_compile,
            activation_checkpointing=train.gradient_checkpointing,
            dataloader_num_workers=train.dataloader_workers,
            dataloader_pin_memory=cuda,
            remove_unused_columns=not keep_columns,
            # BERT uses every parameter in every step: DDP need not search the graph for
            # unused ones, and its buffers (position ids) never change.
            ddp_find_unused_parameters=False,
            ddp_broadcast_buffers=False,
            label_names=label_names,
        )


@contextlib.contextmanager
def recipe_precision(precision: str) -> Iterator[None]:
    """Let the recipe's precision, not a launcher's setting, reach TrainingArguments.

    TrainingArguments starts from ACCELERATE_MIXED_PRECISION, which an Accelerate
    config or `accelerate launch --mixed_precision` sets, and only fp16/bf16 override
    it, so `precision: fp32` would silently train in bf16 under a bf16 config. The
    recipe decides; a disagreeing setting from the user's launcher is named.
    """
    from bertkit.console import warn
    from bertkit.training.launch import LAUNCHED, PLAIN_LAUNCH

    wanted = ACCELERATE_PRECISION[precision]
    given = os.environ.get(PRECISION_VARIABLE)
    # bertkit's own launcher passes a placeholder when no Accelerate config is named.
    from_user = given is not None and os.environ.get(LAUNCHED) != PLAIN_LAUNCH
    if from_user and given != wanted:
        warn(
            f"the Accelerate launcher asks for mixed precision {given!r}; the recipe's train.precision "
            f"resolves to {precision}, and that is what runs (set train.precision to change it)"
        )
    os.environ[PRECISION_VARIABLE] = wanted
    try:
        yield
    finally:
        if given is None:
            os.environ.pop(PRECISION_VARIABLE, None)
        else:
            os.environ[PRECISION_VARIABLE] = given


def pad_multiple(train: TrainSection, placement: Placement) -> int | None:
    """What batch lengths are padded up to a multiple of (`train.pad_to_multiple_of`).

    auto: 8 under bf16/fp16, where tensor cores want shapes in multiples of 8, and
    none in fp32, where it would only add padding.
    """
    if train.pad_to_multiple_of == "auto":
        return 8 if placement.precision != "fp32" else None
    return train.pad_to_multiple_of
