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
        help="Use only the first N rows of each split, to try a recipe quickly.",
        min=1,
        show_default=False,
    ),
]
ResumeOption = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue a run: its directory (latest checkpoint) or a checkpoint-N folder.",
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
    resume: ResumeOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = None,
) -> None:
    """Fine-tune a BERT model for text classification from a recipe.

    Writes a run directory (model, card, metrics, curves, recipe) and points
    runs/latest at it, so `bertkit eval` and `bertkit predict` find it.

    Examples:

      bertkit finetune --recipe quickstart

      bertkit finetune --recipe sentiment --set train.epochs=2 --set train.batch_size=64

      bertkit finetune --recipe my.yaml --limit 200       # a quick dry run

      bertkit finetune --recipe my.yaml --set output.dir=runs/exp1 --resume runs/exp1
    """
    from bertkit.recipe import load_recipe
    from bertkit.training.finetune import finetune as run_finetune

    loaded = load_recipe(recipe, overrides or [])
    result = run_finetune(
        loaded, limit=limit, resume=resume, overwrite=overwrite, device=device, command=sys.argv
    )
    render_result(result)


def render_result(result) -> None:
    """The end-of-run summary: a metrics table and where everything went."""
    from rich.table import Table

    from bertkit.console import out

    table = Table(title=f"Run {result.run.path}", title_justify="left")
    splits = [s for s in ("validation", "test") if s in result.metrics]
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    names: list[str] = []
    for split in splits:
        names += [n for n in result.metrics[split] if n not in names and _shown(n)]
    for name in names:
        label = f"[bold]{name}[/bold]" if name == result.main_metric else name
        table.add_row(label, *[_fmt(result.metrics[s].get(name)) for s in splits])
    train = result.metrics.get("train", {})
    if splits:
        out.print(table)
    out.print(
        f"trained {train.get('epoch', 0):g} epochs in {train.get('runtime', 0):.1f}s, "
        f"{train.get('samples_per_second', 0):.1f} samples/s, final loss {train.get('loss', float('nan')):.4f}"
    )
    out.print(f"model: {result.run.model_dir}")
    out.print('next:  bertkit eval    |    bertkit predict "some text"')


def _shown(name: str) -> bool:
    return "/" not in name and not any(s in name for s in ("runtime", "per_second", "epoch"))


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"
