"""Running a training command: the run directory, the Trainer loop, checkpoints, Ctrl-C.

Fine-tuning and pretraining prepare different data and models; everything around
the Trainer is the same and lives here: where the run goes (agreed by every
process of a multi-process launch), when checkpoints are written and what they
carry, resuming only when asked and only with the same recipe, a clean stop on
Ctrl-C, and the final save.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from bertkit import __version__
from bertkit.console import is_main_process
from bertkit.errors import BertkitError, RunError
from bertkit.files import atomic_write_json
from bertkit.recipe.base import RecipeBase as Recipe
from bertkit.runs import CHECKPOINT_MARKER, MARKER, RunDirectory, new_run_path, prepare_run_dir
from bertkit.training.distributed import barrier, on_main, world_size

# Recipe keys that may change between a checkpoint and its resumption: how long to
# train, where to log, how fast to load data. Anything else would silently change
# the experiment half-way through.
_RESUMABLE_CHANGES = (
    "train.epochs",
    "train.max_steps",
    "train.logging_steps",
    "train.report_to",
    "train.dataloader_workers",
    "train.eval_batch_size",
    "train.save_steps",
    "train.save_total_limit",
    "output.",
    "name",
    "description",
)


@dataclass
class TrainingResult:
    """What a training command produced.

    Attributes:
        run: the (complete) run directory.
        metrics: split name -> metric name -> value (train, validation, test).
        main_metric: the metric that picked the best checkpoint.
        notes: decisions taken on the way (labels, truncation, precision, ...).
    """

    run: RunDirectory
    metrics: dict[str, dict[str, float]]
    main_metric: str | None
    notes: list[str] = field(default_factory=list)


class RunInterrupted(BertkitError):
    """Training stopped on Ctrl-C after saving a checkpoint."""

    exit_code = 130


def start_run(
    recipe: Recipe, *, resume: bool, resume_from: Path | None, overwrite: bool
) -> tuple[RunDirectory, Path | None]:
    """Decide the run directory and checkpoint, check them, create the directory.

    Every process of a multi-process launch gets the same answer; only the main
    process touches the file system.

    Args:
        recipe: the run's recipe.
        resume: continue the run at `output.dir` from its latest checkpoint.
        resume_from: a run directory or checkpoint folder to continue.
        overwrite: replace what `output.dir` holds.

    Raises:
        RunError: nothing to resume, a changed recipe, or a directory that holds a run.
    """

    def prepare() -> tuple[RunDirectory, Path | None]:
        path, checkpoint = run_location(recipe, resume, resume_from)
        if checkpoint is not None:
            check_same_recipe(recipe, checkpoint)
            check_not_finished(recipe, RunDirectory(path), checkpoint)
        run = prepare_run_dir(path, resume=checkpoint is not None, overwrite=overwrite)
        if checkpoint is not None:
            (run.path / MARKER).unlink(missing_ok=True)  # it is being trained again: not complete
        return run, checkpoint

    return on_main(prepare)


def run_location(recipe: Recipe, resume: bool, resume_from: Path | None) -> tuple[Path, Path | None]:
    """The run directory to write, and the checkpoint to resume from (if any).

    Raises:
        RunError: a resume target without checkpoints.
    """
    if resume_from is None and not resume:
        if recipe.output.dir:
            return Path(recipe.output.dir), None
        return new_run_path(Path(recipe.output.root), recipe.run_name), None
    if resume_from is None:
        if not recipe.output.dir:
            raise RunError(
                "--resume continues the run at output.dir, and the recipe sets none",
                hint="use --resume-from RUN_DIR, or --set output.dir=RUN_DIR --resume",
            )
        resume_from = Path(recipe.output.dir)
    resume_from = resume_from.expanduser()
    if resume_from.name.startswith("checkpoint-") and resume_from.is_dir():
        return resume_from.parent.parent, resume_from
    checkpoint = RunDirectory(resume_from).latest_checkpoint()
    if checkpoint is None:
        raise RunError(
            f"{resume_from}: no checkpoint to resume from",
            hint="give a run directory that has checkpoints/, or a checkpoint-N folder",
        )
    return resume_from, checkpoint


def check_same_recipe(recipe: Recipe, checkpoint: Path) -> None:
    """Refuse to resume a checkpoint with a recipe that changes the experiment.

    Raises:
        RunError: names the keys whose values differ.
    """
    state_file = checkpoint / CHECKPOINT_MARKER
    if not state_file.is_file():
        return  # a checkpoint from another tool: nothing to compare
    saved = json.loads(state_file.read_text(encoding="utf-8")).get("recipe", {})
    now = _flatten(recipe.model_dump(mode="json"))
    before = _flatten(saved)
    changed = sorted(
        key
        for key in set(now) | set(before)
        if now.get(key) != before.get(key) and not key.startswith(_RESUMABLE_CHANGES)
    )
    if changed:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed[:4])
        raise RunError(
            f"{checkpoint}: the recipe differs from the one this checkpoint was trained with: {shown}",
            hint="resume with the run's own recipe.yaml, or start a new run",
        )


def steps_left(recipe: Recipe, checkpoint: Path) -> bool:
    """Whether the recipe trains beyond the checkpoint (train.max_steps, else train.epochs)."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # not a Trainer checkpoint we can read: let the Trainer decide
    if recipe.train.max_steps:
        return state.get("global_step", 0) < recipe.train.max_steps
    return (state.get("epoch") or 0.0) < recipe.train.epochs - 1e-9


def check_not_finished(recipe: Recipe, run: RunDirectory, checkpoint: Path) -> None:
    """Refuse to resume a complete run with nothing left to train.

    The Trainer, resumed at its last step, trains one step more than asked and the
    run is rewritten: a result that differs from the finished one, silently.

    Raises:
        RunError: with how to train further instead.
    """
    if run.complete and not steps_left(recipe, checkpoint):
        steps, epochs = recipe.train.max_steps, recipe.train.epochs
        longer = f"train.max_steps={steps * 2}" if steps else f"train.epochs={epochs * 2:g}"
        raise RunError(
            f"{run.path}: the run is complete ({checkpoint.name} is its last step); nothing is left to train",
            hint=f"to train further, resume with more steps (e.g. --set {longer}), or start a new run",
        )


def finish_from(trainer: Any, checkpoint: Path) -> Any:
    """End a run whose last checkpoint was written but which stopped before finishing.

    The weights come from the checkpoint (the best one, when the run keeps the best)
    and nothing is trained again, so the run ends exactly as an uninterrupted one.
    """
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    from bertkit.console import note

    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    best = trainer.state.best_model_checkpoint
    final = Path(best) if trainer.args.load_best_model_at_end and best and Path(best).is_dir() else checkpoint
    # The Trainer's own loader reads every checkpoint layout it writes (safetensors, shards, FSDP).
    trainer._load_from_checkpoint(str(final))
    note(f"{checkpoint.name} is the end of the training: finishing the run from it, without training again")
    losses = [record["loss"] for record in trainer.state.log_history if "loss" in record]
    metrics = {"train_epoch": trainer.state.epoch, "train_loss": losses[-1] if losses else float("nan")}
    return TrainOutput(trainer.state.global_step, metrics["train_loss"], metrics)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


class CheckpointState(TrainerCallback):
    """Checkpoints every N steps and at every epoch end, each carrying bertkit's state.

    The Trainer already saves model, optimizer, scheduler, RNG states and its own
    state (the data position); this adds the recipe and the layout of the run
    (processes and examples per step), so a resume can check both.
    """

    def __init__(self, recipe: Recipe, every_steps: int | None, args: Any) -> None:
        self.recipe = recipe.model_dump(mode="json")
        self.every_steps = every_steps
        self.layout = run_layout(args)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_steps and state.global_step % self.every_steps == 0:
            control.should_save = True

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            record = {
                "bertkit": __version__,
                "recipe": self.recipe,
                "step": state.global_step,
                "layout": self.layout,
            }
            atomic_write_json(folder / CHECKPOINT_MARKER, record)


def run_layout(args: Any) -> dict[str, int]:
    """How a run spreads its work: processes, and examples per optimizer step over all of them."""
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    return {"processes": args.world_size, "examples_per_step": per_step}


def check_same_layout(args: Any, checkpoint: Path) -> None:
    """Refuse to resume with another number of processes or another effective batch.

    The position in the data is counted in steps; with a different layout the same
    step count points elsewhere in the data, and the run would silently train on
    other examples than an uninterrupted one.

    Raises:
        RunError: names both layouts.
    """
    state_file = checkpoint / CHECKPOINT_MARKER
    saved = json.loads(state_file.read_text(encoding="utf-8")).get("layout") if state_file.is_file() else None
    now = run_layout(args)
    if not saved or saved == now:
        return

    def shown(layout: dict[str, int]) -> str:
        processes, examples = layout["processes"], layout["examples_per_step"]
        return f"{processes} process{'es' if processes > 1 else ''}, {examples} examples per step"

    raise RunError(
        f"{checkpoint}: trained with {shown(saved)}; this run has {shown(now)}, so it would not "
        "continue where the checkpoint stopped",
        hint=f"resume with the same layout (--num-processes {saved['processes']}), or start a new run",
    )


def resume_command(command: str, run: RunDirectory) -> str:
    """The command that continues `run` (with as many processes as this one)."""
    processes = f" --num-processes {world_size()}" if world_size() > 1 else ""
    return f"bertkit {command} --recipe {run.recipe_file} --resume-from {run.path}{processes}"


def train(trainer: Any, run: RunDirectory, recipe: Recipe, resume_from: Path | None, command: str) -> Any:
    """Run `trainer.train()` with checkpoints, signal handling and the NaN guard.

    Raises:
        TrainingError: the loss became NaN or infinite.
        RunInterrupted: Ctrl-C or SIGTERM (a checkpoint was saved; the message says how to resume).
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from bertkit.console import note
    from bertkit.devices import apply_tf32
    from bertkit.training.callbacks import DistinctRandomness, EvalBatchFollowsTraining, LossScaleWatch
    from bertkit.training.guard import TrainingGuard

    guard = TrainingGuard()
    schedule = CheckpointState(recipe, recipe.train.save_steps, trainer.args)
    if trainer.args.auto_find_batch_size and recipe.train.eval_batch_size is None:
        trainer.add_callback(EvalBatchFollowsTraining())
    # The guard goes last: it vetoes saves the others ask for once the loss broke.
    for callback in (DistinctRandomness(), schedule, guard):
        trainer.add_callback(callback)
    guard.attach(trainer.model)
    loss_module = getattr(trainer, "loss", None)  # sentence-transformers' trainer computes the loss here
    if hasattr(loss_module, "register_forward_hook"):
        guard.attach(loss_module)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if "tensorboard" in recipe.train.report_to:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    if resume_from is not None:
        check_same_layout(trainer.args, resume_from)
        if not steps_left(recipe, resume_from):
            return finish_from(trainer, resume_from)
        note(f"resuming from {resume_from}")
    scaler = getattr(trainer.accelerator, "scaler", None)
    if scaler is not None:  # fp16 loss scaling: record the steps it skipped
        trainer.add_callback(LossScaleWatch(scaler))
    if trainer.args.tf32 is not None:  # on CUDA: the recipe's TF32, whatever Accelerate set
        apply_tf32(trainer.args.tf32)
    with guard.installed():
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    guard.check()
    if guard.stopped:
        raise RunInterrupted(
            f"stopped ({guard.signal_name or 'a signal to another process'}) at step "
            f"{trainer.state.global_step}; checkpoint saved in {run.checkpoints}",
            hint=f"resume with: {resume_command(command, run)}",
        )
    return output


def save_model(trainer: Any, run: RunDirectory) -> Path:
    """Save the trained model, in fp32, into a staging folder beside `model/` (every process).

    Sharded models (FSDP, DeepSpeed) need every process to take part in the save.
    """
    from bertkit.models import store_in_fp32

    staging = run.path / ".model.tmp"
    if is_main_process():
        shutil.rmtree(staging, ignore_errors=True)
    barrier()
    trainer.save_model(str(staging))
    barrier()
    if is_main_process():
        store_in_fp32(staging)
    return staging


def strip_prefix(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """Trainer metrics without their split prefix (`eval_loss` -> `loss`), numbers only."""
    return {k.removeprefix(prefix): float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def quiet_libraries() -> None:
    """Silence library chatter that bertkit reports better itself."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@contextmanager
def cleanup_on_failure(run: RunDirectory, created: bool) -> Iterator[None]:
    """Release the run directory when training ends; remove it if this command created it
    and failed before any checkpoint."""
    try:
        yield
    except BaseException:
        if created and is_main_process() and run.latest_checkpoint() is None:
            shutil.rmtree(run.path, ignore_errors=True)  # nothing worth keeping
        raise
    finally:
        if is_main_process():
            run.unlock()
