"""Recipes: the shared sections (base), the union of task recipes (schema), and loading.

`load_recipe` and friends are imported on first use: the task packages import
bertkit.recipe.base, and the loader imports the task registry, so importing them
here at once would go in a circle.
"""

from __future__ import annotations

from typing import Any

_LOADING = ("dump_recipe", "find_recipe", "load_recipe", "recipe_from_dict")
__all__ = ["Recipe", *_LOADING]


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        from bertkit.recipe import loading

        return getattr(loading, name)
    if name == "Recipe":
        from bertkit.recipe.schema import Recipe

        return Recipe
    raise AttributeError(f"module 'bertkit.recipe' has no attribute {name!r}")
