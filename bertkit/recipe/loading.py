"""Read a recipe: find the file, parse YAML safely, apply `--set` overrides, validate.

Errors are collected, not raised one at a time: a user with three typos sees three
lines, each naming the file, the YAML line, the dotted key, and the nearest valid key.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bertkit.errors import RecipeError
from bertkit.recipe.base import RecipeBase
from bertkit.recipe.bundled import bundled_names, bundled_path
from bertkit.recipe.parsing import parse_override, parse_yaml, to_yaml
from bertkit.recipe.problems import (
    describe_errors,
    drop_foreign_defaults,
    schema_keys,
    section_class,
    where_of,
)

__all__ = [
    "dump_recipe",
    "find_recipe",
    "load_recipe",
    "parse_yaml",
    "read_run_recipe",
    "recipe_from_dict",
    "schema_keys",
]

_DATA_SPLITS = ("train", "validation", "test")


def find_recipe(ref: str | Path) -> Path:
    """Turn `--recipe` into a file: a path, or the name of a bundled recipe.

    Raises:
        RecipeError: neither a file nor a bundled recipe name.
    """
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise RecipeError(f"{ref}: is a folder, not a recipe file", hint="name a .yaml file")
    bundled = bundled_path(str(ref))
    if bundled is not None:
        return bundled
    names = bundled_names()
    close = difflib.get_close_matches(str(ref), names, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise RecipeError(
        f"{ref}: no such recipe file or bundled recipe",
        hint=f"{hint}bundled recipes: {', '.join(names)} (see `bertkit recipes list`)",
    )


def load_recipe(
    ref: str | Path, overrides: Iterable[str] = (), *, recipes: Mapping[str, type[RecipeBase]]
) -> RecipeBase:
    """Load, override and validate a recipe from a path or bundled name.

    Args:
        ref: a YAML file path, or a bundled recipe name such as `quickstart`.
        overrides: `key=value` strings, applied in order after the file.
        recipes: task name -> recipe class: the tasks the recipe may be for
            (`bertkit.recipe.schema.RECIPES` for every task bertkit has).

    Raises:
        RecipeError: listing every problem, with file, line and key.
    """
    path = find_recipe(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from None
    raw, lines = parse_yaml(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(
            f"{path}: a recipe is a YAML mapping of sections (task:, model:, data:, ...), "
            f"not a {type(raw).__name__}",
            hint="see `bertkit recipes show quickstart` for an example",
        )
    origins = {key: f"{path}:{line}" for key, line in lines.items()}
    _resolve_paths(raw, path.parent)
    return recipe_from_dict(raw, overrides, recipes=recipes, origins=origins, source=path, label=str(path))


def recipe_from_dict(
    raw: Mapping[str, Any],
    overrides: Iterable[str] = (),
    *,
    recipes: Mapping[str, type[RecipeBase]],
    origins: Mapping[str, str] | None = None,
    source: Path | None = None,
    label: str = "recipe",
) -> RecipeBase:
    """Apply overrides to a recipe mapping and validate it.

    Args:
        raw: the recipe as plain data (already path-resolved).
        overrides: `key=value` strings.
        recipes: task name -> recipe class (see `load_recipe`).
        origins: dotted key -> "file:line", for error messages.
        source: the recipe file, if any; recorded on the returned recipe.
        label: what to call the recipe in messages when a key has no origin.

    Raises:
        RecipeError: listing every problem.
    """
    data = copy.deepcopy(dict(raw))  # alias bombs were refused when the YAML was parsed
    where = dict(origins or {})
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value, item)
        split = key.removeprefix("data.")
        if isinstance(value, str) and split in _DATA_SPLITS:
            _resolve_paths(data, Path.cwd(), only=split)  # a path given on the command line
        elif isinstance(value, str) and key == "train.accelerate_config":
            _resolve_paths(data, Path.cwd(), only="accelerate_config")
        for known in [k for k in where if k == key or k.startswith(key + ".")]:
            del where[known]
        where[key] = f"--set {item}"
        _record_override_children(value, key, item, where)

    model, task_problem = _recipe_class(data, where, label, recipes)
    drop_foreign_defaults(data, model, recipes)
    problems = [task_problem] if task_problem else []
    try:
        recipe = model.model_validate({**data, "task": model.model_fields["task"].annotation.__args__[0]})
    except ValidationError as exc:
        problems += describe_errors(exc, data, where, label, model, recipes)
    if problems:
        raise RecipeError(
            f"{label}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the recipe",
            hint="fix the keys above; `bertkit recipes show quickstart` has every section",
            problems=problems,
        ) from None
    cross = recipe.cross_field_problems()
    if cross:
        problems = [f"{where_of(key, where, label)}: {key}: {msg}" for key, msg in cross]
        raise RecipeError(
            f"{label}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the recipe",
            hint="fix the keys above",
            problems=problems,
        )
    recipe._source = source
    return recipe


def _recipe_class(
    data: dict[str, Any], where: Mapping[str, str], label: str, recipes: Mapping[str, type[RecipeBase]]
) -> tuple[type[RecipeBase], str | None]:
    """The recipe class of the recipe's `task`, and the problem with `task`, if any.

    A misspelt or missing task is a problem, and the rest of the recipe is still
    checked (against the nearest task, else the first), so every problem shows at once.
    """
    task = data.get("task")
    if isinstance(task, str) and task in recipes:
        return recipes[task], None
    tasks = ", ".join(recipes)
    close = difflib.get_close_matches(str(task), list(recipes), n=1) if task is not None else []
    if task is None:
        message = f"required key is missing; tasks: {tasks}"
    else:
        message = f"unknown task {task!r}" + (
            f"; did you mean `{close[0]}`?" if close else f"; tasks: {tasks}"
        )
    model = recipes[close[0]] if close else next(iter(recipes.values()))
    return model, f"{where_of('task', where, label)}: task: {message}"


def dump_recipe(recipe: RecipeBase) -> str:
    """The recipe as YAML, every default written out, so it reruns as is."""
    data = recipe.model_dump(mode="json", exclude_none=True)
    if data.get("name") is None:
        data["name"] = recipe.run_name
    return to_yaml(data)


def _resolve_paths(raw: dict[str, Any], base: Path, only: str | None = None) -> None:
    """Make relative local paths (data splits, the Accelerate config) absolute against `base`."""
    train = raw.get("train")
    config = train.get("accelerate_config") if isinstance(train, dict) else None
    if only in (None, "accelerate_config") and isinstance(config, str):
        train["accelerate_config"] = _absolute(config, base)
    data = raw.get("data")
    if not isinstance(data, dict) or only == "accelerate_config":
        return
    for split in _DATA_SPLITS if only is None else (only,):
        value = data.get(split)
        if isinstance(value, str):
            data[split] = _absolute(value, base)
        elif isinstance(value, dict) and isinstance(value.get("path"), str):
            value["path"] = _absolute(value["path"], base)


def _absolute(value: str, base: Path) -> str:
    try:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())
    except (RuntimeError, ValueError) as exc:  # `~nosuchuser/...`, or a NUL byte in the path
        raise RecipeError(
            f"data path {value!r}: not a usable path ({exc})", hint="check the data paths in the recipe"
        ) from None


def _set_dotted(data: dict[str, Any], key: str, value: Any, item: str) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise RecipeError(
                f"--set {item}: `{prefix}` is a value, not a section",
                hint=f"set it whole, e.g. --set '{prefix}={{...}}'",
            )
        node = child
    node[parts[-1]] = value


def _record_override_children(value: Any, key: str, item: str, where: dict[str, str]) -> None:
    if isinstance(value, dict):
        for child_key, child_value in value.items():
            dotted = f"{key}.{child_key}"
            where[dotted] = f"--set {item}"
            _record_override_children(child_value, dotted, item, where)


def read_run_recipe(path: Path, model: type[RecipeBase]) -> RecipeBase:
    """The recipe a run directory records, read for what applies to its task.

    It is a record the run wrote, not a recipe being written: keys its task's recipe
    does not have (bertkit 0.1 recorded every task's sections) are left out rather
    than refused, so runs written by any version still evaluate and predict.

    Raises:
        RecipeError: the file cannot be read, or its task's settings are invalid.
    """
    try:
        raw, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the run's recipe: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: the run's recipe is not a YAML mapping", hint="check the run directory")
    name = model.model_fields["task"].annotation.__args__[0]
    data = _kept(raw, model)
    origins = {key: f"{path}:{line}" for key, line in lines.items()}
    recipe = recipe_from_dict(data, recipes={name: model}, origins=origins, source=path, label=str(path))
    return recipe


def _kept(value: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """`value` without the keys `model` (a recipe class or section) does not have."""
    kept = {}
    for key, item in value.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue
        section = section_class(field.annotation)
        kept[key] = _kept(item, section) if section is not None and isinstance(item, dict) else item
    return kept
