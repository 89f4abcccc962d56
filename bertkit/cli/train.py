"""`bertkit finetune` (and later `pretrain`): train from a recipe into a run directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import DeviceOption, RecipeOption, SetOption

LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit",
        help="Use only the first N rows of each split, to try a recipe quickly "
        "(the same as --set data.limit=N: recorded in the run, so a resume uses the same rows).",
        min=1,
        show_default=False,
    ),
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue the run at output.dir from its latest checkpoint.")
]
ResumeFromOption = Annotated[
    Path | None,
    typer.Option(
        "--resume-from",
        help="Continue a run: its directory (latest checkpoint) or a checkpoint-N folder.",
        show_default=False,
    ),
]
ProcessesOption = Annotated[
    int | None,
    typer.Option(
        "--num-processes",
        min=1,
        help="Launch N processes (one per GPU) through Accelerate; uses train.accelerate_config if set.",
        show_default=False,
    ),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace what output.dir holds instead of refusing.")
]


@app.command("finetune")
def finetune(
    recipe: RecipeOption,
    overrides: SetOption = None,
    limit: LimitOption = None,
    resume: ResumeOption = False,
    resume_from: ResumeFromOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = None,
    num_processes: ProcessesOption = None,
) -> None:
    """Fine-tune a BERT model for the task the recipe names (classification, ...).

    Writes a run directory (model, card, metrics, curves, recipe) and points
    runs/latest at it, so `bertkit eval` and `bertkit predict` find it.

    \b
    Examples:
      bertkit finetune --recipe quickstart
      bertkit finetune --recipe sentiment --set train.epochs=2 --set train.batch_size=64
      bertkit finetune --recipe my.yaml --limit 200       # a quick dry run
      bertkit finetune --recipe my.yaml --set output.dir=runs/exp1 --resume
      bertkit finetune --recipe sentiment --num-processes 4      # 4 GPUs
    """
    _train("finetune", recipe, overrides, limit, resume, resume_from, overwrite, device, num_processes)


def _train(
    command: str,
    recipe: str,
    overrides: list[str] | None,
    limit: int | None,
    resume: bool,
    resume_from: Path | None,
    overwrite: bool,
    device: str | None,
    num_processes: int | None,
) -> None:
    """Load the recipe, launch more processes if asked, train, and print the summary."""
    from bertkit.errors import UsageError
    from bertkit.recipe import load_recipe
    from bertkit.tasks import get_task
    from bertkit.training.launch import narrow_devices, plan_launch, relaunch

    if resume and resume_from is not None:
        raise UsageError(
            "--resume and --resume-from both say where to resume from",
            hint="give one: --resume (the run at output.dir) or --resume-from RUN_DIR",
        )
    # --limit is recorded in the run like any recipe key: a resume then reads the same rows.
    loaded = load_recipe(recipe, [*(overrides or []), *([f"data.limit={limit}"] if limit else [])])
    task = get_task(loaded.task)
    if task.command != command:
        raise UsageError(
            f"{recipe}: `task: {loaded.task}` is trained with `bertkit {task.command}`, not {command}",
            hint=f"bertkit {task.command} --recipe {recipe}",
        )
    plan = plan_launch(num_processes, loaded.train.accelerate_config, device=device, gpu_count=_gpu_count)
    if not plan.in_process:
        raise typer.Exit(relaunch(sys.argv, plan))
    narrow_devices(plan)
    device = plan.device or device
    from bertkit.training.run import train_recipe

    result = train_recipe(
        loaded,
        resume=resume,
        resume_from=resume_from,
        overwrite=overwrite,
        device=device,
        command=sys.argv,
    )
    render_result(result)


def _gpu_count() -> int:
    """GPUs this process sees (counting them does not start CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def render_result(result) -> None:
    """The end-of-run summary: a metrics table and where everything went (main process only)."""
    from bertkit.cli.render import metrics_table, positive_class
    from bertkit.console import is_main_process, out

    if not is_main_process():
        return
    evaluated = {s: result.metrics[s] for s in ("validation", "test") if s in result.metrics}
    if evaluated:
        positive = positive_class(result.run.model_dir)
        out.print(metrics_table(evaluated, result.main_metric, f"Run {result.run.path}", positive))
    train = result.metrics.get("train", {})
    out.print(_training_line(train))
    out.print(f"model: {result.run.model_dir}")
    # Name the run: `runs/latest` is another run's when output.root is not the default.
    from bertkit.tasks import TASKS

    task = TASKS.get(result.run.info().get("task", ""))
    example = task.predict_arguments() if task else '"some text"'
    run = result.run.path
    out.print(f"next:  bertkit eval --model {run}    |    bertkit predict --model {run} {example}")


def _training_line(train: dict[str, float]) -> str:
    """`trained 2 epochs in 41.0s, ...` (or how the run was finished from a checkpoint)."""
    loss = train.get("loss", float("nan"))
    if "runtime" not in train:
        return f"finished from its last checkpoint, nothing trained again; final loss {loss:.4f}"
    epochs = train.get("epoch", 0.0)
    shown = f"{epochs:.2f}".rstrip("0").rstrip(".")
    return (
        f"trained {shown} epoch{'' if shown == '1' else 's'} in {train['runtime']:.1f}s, "
        f"{train.get('samples_per_second', 0):.1f} samples/s, final loss {loss:.4f}"
    )


@app.command("pretrain")
def pretrain(
    recipe: RecipeOption,
    overrides: SetOption = None,
    limit: LimitOption = None,
    resume: ResumeOption = False,
    resume_from: ResumeFromOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = None,
    num_processes: ProcessesOption = None,
) -> None:
    """Masked-LM pretraining on your text: continue a BERT, or start from scratch.

    Writes a run directory like finetune does; a fine-tuning recipe can start from
    it (model.name: runs/<run>).

    \b
    Examples:
      bertkit pretrain --recipe quickstart-mlm
      bertkit pretrain --recipe mlm --set data.train=corpus/*.txt
      bertkit pretrain --recipe scratch-tiny --set train.max_steps=200
    """
    _train("pretrain", recipe, overrides, limit, resume, resume_from, overwrite, device, num_processes)
