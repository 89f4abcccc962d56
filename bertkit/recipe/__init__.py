"""Recipes: the shared sections (base), loading and overrides (loading), the union of tasks (schema).

`load_recipe` and `recipe_from_dict` here read a recipe of any task; they are
imported on first use, because the union needs the task registry, whose task
packages import bertkit.recipe.base.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Recipe", "dump_recipe", "find_recipe", "load_recipe", "recipe_from_dict"]


def __getattr__(name: str) -> Any:
    if name in ("dump_recipe", "find_recipe"):
        from bertkit.recipe import loading

        return getattr(loading, name)
    if name in ("Recipe", "load_recipe", "recipe_from_dict"):
        from bertkit.recipe import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'bertkit.recipe' has no attribute {name!r}")
