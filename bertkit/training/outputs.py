"""Write a finished training run: model, card, metrics, curves, environment, marker.

The model folder is written beside its final place and renamed into it; run.json,
written last, is what marks the run complete.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from bertkit.cards import model_card
from bertkit.devices import Placement, tf32_in_effect
from bertkit.environment import environment_report
from bertkit.files import atomic_write_json, atomic_write_text
from bertkit.models import ModelRef
from bertkit.recipe.base import RecipeBase
from bertkit.runs import RunDirectory
from bertkit.tasks.base import CardFacts


def write_run_outputs(
    run: RunDirectory,
    *,
    staging: Path,
    trainer: Any,
    recipe: RecipeBase,
    metrics: dict[str, dict[str, float]],
    card: CardFacts,
    pipeline_tag: str,
    command_name: str,
    main_metric: str | None,
    placement: Placement,
    model_ref: ModelRef,
    data_notes: list[str],
    command: list[str],
) -> None:
    """Write everything a finished run holds, then mark it complete (main process only).

    Args:
        run: the run directory.
        staging: the folder the trained model was saved to (see runner.save_model);
            it becomes `model/`.
        trainer: the Trainer that trained the model (its state and tokenizer).
        recipe: the resolved recipe.
        metrics: split -> metrics.
        card: what the task says about its model (see bertkit.cards).
        pipeline_tag: the model's Hugging Face pipeline.
        command_name: the bertkit command that trains the task.
        main_metric: the metric that chose the best checkpoint.
        placement: device and precision used.
        model_ref: where training started from (recorded as lineage).
        data_notes: row counts, truncation and other data facts for the card.
        command: the command line.
    """
    from bertkit.reports import plot_training_curves

    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(str(staging))
    lineage = _lineage(model_ref)
    card = model_card(
        recipe=recipe,
        facts=card,
        pipeline_tag=pipeline_tag,
        command=command_name,
        metrics=metrics,
        main_metric=main_metric,
        lineage=lineage,
        data_notes=data_notes,
        precision=placement.precision,
        device=placement.device,
    )
    atomic_write_text(staging / "README.md", card)
    shutil.rmtree(run.model_dir, ignore_errors=True)
    staging.rename(run.model_dir)

    atomic_write_text(run.path / "README.md", card)
    atomic_write_json(run.path / "metrics.json", metrics)
    plot_training_curves(trainer.state.log_history, run.path / "curves.png")
    environment = environment_report()
    environment.update(
        {
            "seed": recipe.train.seed,
            "precision": placement.precision,
            "device": placement.device,
            "precision_reason": placement.reason,
            "ran": what_ran(trainer, placement),
            "command": command,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    atomic_write_json(run.path / "environment.json", environment)
    run.mark_complete(
        {
            "task": recipe.task,
            "name": recipe.run_name,
            "main_metric": main_metric,
            "started_from": lineage,
            "steps": trainer.state.global_step,
            "best_checkpoint": _relative(trainer.state.best_model_checkpoint, run.path),
        },
        Path(recipe.output.root),
    )


def what_ran(trainer: Any, placement: Placement) -> dict[str, Any]:
    """What the run really computed with, read back from the Trainer after training."""

    accelerator = trainer.accelerator
    ran: dict[str, Any] = {
        "mixed_precision": accelerator.mixed_precision,
        "processes": accelerator.num_processes,
        "distributed": str(accelerator.distributed_type).split(".")[-1],
        "tf32": placement.device == "cuda" and tf32_in_effect(),
        "attention": getattr(getattr(trainer.model, "config", None), "_attn_implementation", None),
        "weights": str(next(trainer.model.parameters()).dtype).removeprefix("torch."),
        "optimizer": type(
            trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        ).__name__,
    }
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None:  # fp16: how loss scaling went
        from bertkit.training.callbacks import LossScaleWatch

        ran["loss_scale"] = float(scaler.get_scale())
        watch = next((c for c in trainer.callback_handler.callbacks if isinstance(c, LossScaleWatch)), None)
        if watch is not None:
            ran["skipped_steps"] = watch.overflows
    return ran


def _lineage(ref: ModelRef) -> list[str]:
    """Where the weights came from, oldest last: this run's start, and that run's start."""
    chain = [ref.shown]
    if ref.run_dir is not None:
        earlier = RunDirectory(ref.run_dir).info().get("started_from") or []
        chain.extend(earlier)
    return chain


def _relative(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return path
