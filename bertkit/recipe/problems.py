"""Saying what is wrong with a recipe: each problem with its file:line, dotted key and nearest key.

Also what a recipe may carry that its task does not have: another task's section
(an error that names the task it belongs to), or, in recipes older runs recorded,
another task's section at its defaults (left out: it changes nothing).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from bertkit.recipe.base import RecipeBase


def where_of(key: str, where: Mapping[str, str], label: str) -> str:
    """The origin of `key`, or of its nearest ancestor that has one."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    while parts:
        origin = where.get(".".join(parts))
        if origin:
            return origin
        parts.pop()
    return label


def describe_errors(
    exc: ValidationError,
    data: dict[str, Any],
    where: Mapping[str, str],
    label: str,
    model: type[RecipeBase],
    recipes: Mapping[str, type[RecipeBase]],
) -> list[str]:
    valid = set(schema_keys(model))
    by_key: dict[str, list[str]] = {}
    for error in exc.errors():
        key = _dotted(error["loc"])
        if error["type"] == "extra_forbidden":
            message = (
                _elsewhere(key, model, recipes) or f"unknown key{_suggestion(key, error.get('input'), valid)}"
            )
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = _tidy(error["msg"])
            if error["type"] not in ("value_error", "assertion_error"):
                message += f" (got {_short(error.get('input'))})"
        by_key.setdefault(key, [])
        if message not in by_key[key]:
            by_key[key].append(message)
    # A union whose branch got further (e.g. into a list item) explains the problem
    # better than the branches that failed at the top: keep only the deepest.
    deepest = {
        key: messages
        for key, messages in by_key.items()
        if not any(other.startswith((key + "[", key + ".")) for other in by_key if key)
    }
    problems = [
        (where_of(key, where, label), key or "(top level)", " or ".join(messages))
        for key, messages in deepest.items()
    ]
    problems.sort(key=lambda p: _origin_order(p[0]))
    return [f"{origin}: {key}: {message}" for origin, key, message in problems]


def drop_foreign_defaults(
    data: dict[str, Any], model: type[RecipeBase], recipes: Mapping[str, type[RecipeBase]]
) -> None:
    """Remove sections and keys of other tasks that hold only their defaults.

    Recipes written before each task declared its own sections (bertkit 0.1 wrote
    every section of every task, at its defaults, into a run's recipe.yaml) still
    load: such values change nothing. A non-default value of another task's section
    stays, and is reported as not applying.
    """
    for name, value in list(data.items()):
        if not isinstance(name, str):
            continue  # not a key any recipe has: validation reports it
        if name in model.model_fields:
            if isinstance(value, dict):
                section = section_class(model.model_fields[name].annotation)
                if section is not None:
                    for key in [k for k in value if isinstance(k, str) and k not in section.model_fields]:
                        if _is_foreign_default(f"{name}.{key}", value[key], model, recipes):
                            del value[key]
        elif _is_foreign_default(name, value, model, recipes):
            del data[name]


def _is_foreign_default(
    key: str, value: Any, model: type[RecipeBase], recipes: Mapping[str, type[RecipeBase]]
) -> bool:
    """Whether another task's recipe has `key` and `value` is (within) its default."""
    for other in recipes.values():
        if other is model:
            continue
        default = _default_of(other, key.split("."))
        if default is not _MISSING and _within(value, default):
            return True
    return False


_MISSING = object()


def _default_of(model: type[BaseModel], parts: list[str]) -> Any:
    """The default of a dotted key of a recipe class, as plain data (_MISSING if none)."""
    field = model.model_fields.get(parts[0])
    if field is None:
        return _MISSING
    if len(parts) > 1:
        section = section_class(field.annotation)
        return _default_of(section, parts[1:]) if section is not None else _MISSING
    if field.default_factory is not None:
        made = field.default_factory()
        return made.model_dump(mode="json") if isinstance(made, BaseModel) else made
    return _MISSING if field.is_required() else field.default


def _within(value: Any, default: Any) -> bool:
    if isinstance(value, dict) and isinstance(default, dict):
        return all(key in default and _within(item, default[key]) for key, item in value.items())
    return value == default


def section_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _elsewhere(key: str, model: type[RecipeBase], recipes: Mapping[str, type[RecipeBase]]) -> str | None:
    """`applies to task X` for a key that another task's recipe has, else None."""
    task = model.model_fields["task"].annotation.__args__[0]
    owners = [name for name, other in recipes.items() if name != task and key in schema_keys(other)]
    if not owners:
        return None
    tasks = " or ".join(f"`task: {name}`" for name in owners)
    return f"applies to {tasks} recipes, not to `task: {task}`: remove it"


def _origin_order(origin: str) -> tuple[int, int]:
    """Sort file lines first, in order, then `--set` overrides."""
    _, _, line = origin.rpartition(":")
    return (0, int(line)) if line.isdigit() else (1, 0)


_UNION_TAG = re.compile(r"^(int|float|str|bool|list|dict|none|(function|constrained)-\w+|literal)\b|[\[\]'(]")


def _dotted(loc: tuple[Any, ...]) -> str:
    """Dotted key from a pydantic location, dropping union-branch tags like `int`."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item}]"
        elif not _UNION_TAG.search(str(item)):
            parts.append(str(item))
    return ".".join(parts)


def _suggestion(key: str, value: Any, valid: set[str]) -> str:
    """`; did you mean X?` for an unknown dotted key, or an empty string."""
    prefix, _, last = key.rpartition(".")
    siblings = sorted({k.rpartition(".")[2] for k in valid if k.rpartition(".")[0] == prefix})
    close = difflib.get_close_matches(last, siblings, n=1, cutoff=0.6)
    if close:
        fixed = f"{prefix}.{close[0]}" if prefix else close[0]
        if isinstance(value, dict) and value:
            child = f"{fixed}.{next(iter(value))}"
            if child in valid:
                fixed = child
        return f"; did you mean `{fixed}`?"
    elsewhere = sorted(k for k in valid if k.rpartition(".")[2] == last)
    if elsewhere:
        return f"; did you mean `{elsewhere[0]}`?"
    return ""


def _tidy(message: str) -> str:
    message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every valid dotted key of a recipe class (sections and leaves), for typo hints."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        section = section_class(field.annotation)
        if section is not None:
            keys.extend(schema_keys(section, dotted + "."))
    return sorted(set(keys))
