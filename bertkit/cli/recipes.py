"""`bertkit recipes`: list, show, validate and copy recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import SetOption

recipes_app = typer.Typer(
    help="List, show, validate and copy recipes.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(recipes_app, name="recipes")


@recipes_app.command("list")
def list_recipes() -> None:
    """List the bundled recipes with a one-line description.

    \b
    Examples:
      bertkit recipes list
    """
    from rich.table import Table

    from bertkit.console import out
    from bertkit.recipe.bundled import bundled_dir, bundled_names, recipe_summary

    table = Table(title="Bundled recipes", title_justify="left", box=None, pad_edge=False)
    table.add_column("name", style="bold cyan")
    table.add_column("task")
    table.add_column("description")
    for name in bundled_names():
        task, description = recipe_summary(bundled_dir() / f"{name}.yaml")
        table.add_row(name, task, description)
    out.print(table)
    out.print("\nRun one: bertkit finetune --recipe NAME    Copy one: bertkit recipes copy NAME DEST")


@recipes_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Bundled recipe name or recipe file.")],
) -> None:
    """Print a recipe file as written, comments included.

    \b
    Examples:
      bertkit recipes show quickstart
    """
    from bertkit.console import out
    from bertkit.recipe import find_recipe

    path = find_recipe(name)
    out.print(f"# {path}", style="dim")
    out.print(path.read_text(encoding="utf-8"), markup=False, end="")


@recipes_app.command("validate")
def validate(
    paths: Annotated[list[str], typer.Argument(help="Recipe files or bundled names.")],
    overrides: SetOption = None,
    resolved: Annotated[
        bool, typer.Option("--resolved", help="Print each recipe with every default filled in.")
    ] = False,
) -> None:
    """Check recipes against the schema; exit 0 when every one is valid.

    Every problem is reported at once, with file, line, key and the nearest valid key.

    \b
    Examples:
      bertkit recipes validate my.yaml
      bertkit recipes validate my.yaml --set train.epochs=2 --resolved
    """
    from rich.markup import escape

    from bertkit.console import err, out
    from bertkit.errors import RecipeError
    from bertkit.recipe import dump_recipe, load_recipe

    failed: list[RecipeError] = []
    for ref in paths:
        try:
            recipe = load_recipe(ref, overrides or [])
        except RecipeError as exc:
            failed.append(exc)
            err.print(f"[red]✗[/red] {escape(str(exc))}")
            continue
        err.print(f"[green]✓[/green] {escape(ref)}: valid {recipe.task} recipe")
        if resolved:
            out.print(dump_recipe(recipe), markup=False, end="")
    if failed:
        raise RecipeError(
            f"{len(failed)} of {len(paths)} recipe{'s' if len(paths) > 1 else ''} invalid",
            hint=failed[0].hint,
        )


@recipes_app.command("copy")
def copy(
    name: Annotated[str, typer.Argument(help="Bundled recipe name (or any recipe file).")],
    dest: Annotated[Path, typer.Argument(help="Where to write the copy (file or folder).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Copy a recipe to start your own, with the local data files it uses.

    Data files the recipe names by relative path are copied beside it, keeping the
    same relative layout, so the copy runs as is.

    \b
    Examples:
      bertkit recipes copy quickstart my-recipe.yaml
    """
    from bertkit.console import out
    from bertkit.recipe import find_recipe
    from bertkit.recipe.bundled import recipe_summary
    from bertkit.recipe.copying import copy_recipe

    source = find_recipe(name)
    target = dest / source.name if dest.is_dir() else dest
    written = copy_recipe(source, target, overwrite=force)
    out.print(f"wrote {target}")
    for extra in written[1:]:
        out.print(f"  + {extra}")
    from bertkit.tasks import TASKS

    task = TASKS.get(recipe_summary(target)[0])
    out.print(f"run it: bertkit {task.command if task else 'finetune'} --recipe {target}")
