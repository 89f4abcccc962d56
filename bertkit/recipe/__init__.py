"""Recipes: the schema of a run, and loading it from YAML with overrides."""

from bertkit.recipe.loading import dump_recipe, find_recipe, load_recipe, recipe_from_dict
from bertkit.recipe.schema import Recipe

__all__ = ["Recipe", "dump_recipe", "find_recipe", "load_recipe", "recipe_from_dict"]
