"""The recipe schema: one typed, closed description of a run, a union keyed by `task`.

Each task's recipe class lives in its package (bertkit/tasks/<task>/recipe.py) and
declares only the sections that apply to it; the shared ones are in
bertkit.recipe.base. This module, like both, imports only pydantic and the task
registry's light modules, so the CLI stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, Field

from bertkit.recipe.base import RecipeBase
from bertkit.tasks import TASKS

RECIPES: dict[str, type[RecipeBase]] = {name: task.recipe for name, task in TASKS.items()}

# For annotations and pydantic: any task's recipe, chosen by its `task` field.
Recipe = Annotated[Union[tuple(RECIPES.values())], Field(discriminator="task")]  # noqa: UP007


def schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every valid dotted key of a recipe class (sections and leaves), for typo hints."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        for sub in _sub_models(field.annotation):
            keys.extend(schema_keys(sub, dotted + "."))
    return sorted(set(keys))


def _sub_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [
        arg
        for arg in getattr(annotation, "__args__", ())
        if isinstance(arg, type) and issubclass(arg, BaseModel)
    ]
