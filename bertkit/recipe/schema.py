"""The recipe schema: one typed, closed description of a run, a union keyed by `task`.

Each task's recipe class lives in its package (bertkit/tasks/<task>/recipe.py) and
declares only the sections that apply to it; the shared ones are in
bertkit.recipe.base. Here they come together, from the task registry, for the
commands that read recipes of any task. Like both, this imports only pydantic and the
registry's light modules, so the CLI stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field

import bertkit.recipe.loading as loading
from bertkit.recipe.base import RecipeBase
from bertkit.recipe.problems import schema_keys
from bertkit.tasks import TASKS

RECIPES: dict[str, type[RecipeBase]] = {name: task.recipe for name, task in TASKS.items()}

# For annotations and pydantic: any task's recipe, chosen by its `task` field.
Recipe = Annotated[Union[tuple(RECIPES.values())], Field(discriminator="task")]  # noqa: UP007

__all__ = ["RECIPES", "Recipe", "load_recipe", "recipe_from_dict", "schema_keys"]


def load_recipe(ref: str | Path, overrides: Iterable[str] = ()) -> RecipeBase:
    """Load, override and validate a recipe of any task (see `bertkit.recipe.loading.load_recipe`)."""
    return loading.load_recipe(ref, overrides, recipes=RECIPES)


def recipe_from_dict(
    raw: Mapping[str, Any],
    overrides: Iterable[str] = (),
    *,
    origins: Mapping[str, str] | None = None,
    source: Path | None = None,
    label: str = "recipe",
) -> RecipeBase:
    """Validate a recipe mapping of any task (see `bertkit.recipe.loading.recipe_from_dict`)."""
    return loading.recipe_from_dict(
        raw, overrides, recipes=RECIPES, origins=origins, source=source, label=label
    )
