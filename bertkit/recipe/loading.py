"""Read a recipe: find the file, parse YAML safely, apply `--set` overrides, validate.

Errors are collected, not raised one at a time: a user with three typos sees three
lines, each naming the file, the YAML line, the dotted key, and the nearest valid key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bertkit.errors import RecipeError
from bertkit.recipe.base import RecipeBase
from bertkit.recipe.bundled import bundled_names, bundled_path

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Keys whose values are local paths that resolve against the recipe's folder.
_DATA_SPLITS = ("train", "validation", "test")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars: `3e-5` is a float; only true/false are booleans.

    YAML 1.1 reads `no`, `off` and `yes` as booleans, so `eval_every: no` would
    arrive as False; YAML 1.1 also wants `3.0e-5` for a float.
    """


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes strings `_Loader` would read back as floats (`"3e-5"`)."""


_BOOL = "tag:yaml.org,2002:bool"
# Drop YAML 1.1's yes/no/on/off from the loader (copying the table, which is shared).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
        list("-+0123456789."),
    )


def parse_yaml(text: str, origin: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML text safely and map every dotted key to its 1-based line.

    Raises:
        RecipeError: the text is not valid YAML (names the line and column).
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else origin
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(
            f"{where}: not valid YAML: {problem}",
            hint="check indentation and quoting around that line",
        ) from None
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        # An explicit tag with a value it cannot take (`!!int abc`), or absurd nesting.
        raise RecipeError(
            f"{origin}: not valid YAML: {type(exc).__name__}: {exc}",
            hint="check the values that carry an explicit `!!tag`",
        ) from None
    lines: dict[str, int] = {}
    if node is not None:
        _check_size(node, origin)
        _check_duplicates(node, origin)
        _record_lines(node, "", lines)
    return value, lines


# A recipe is a few dozen values; YAML aliases can expand a small file into billions
# ("billion laughs"), which validating would copy out in full.
_MAX_NODES = 10_000


def _check_size(node: yaml.Node, origin: str) -> None:
    """Refuse YAML whose aliases expand to absurdly many values, before anything expands them.

    Raises:
        RecipeError: more than _MAX_NODES values once aliases are expanded.
    """
    sizes: dict[int, int] = {}

    def size(item: yaml.Node) -> int:
        if id(item) not in sizes:
            sizes[id(item)] = 0  # a node that contains itself counts once
            children: list[yaml.Node] = []
            if isinstance(item, yaml.MappingNode):
                children = [part for pair in item.value for part in pair]
            elif isinstance(item, yaml.SequenceNode):
                children = list(item.value)
            sizes[id(item)] = min(1 + sum(size(child) for child in children), _MAX_NODES + 1)
        return sizes[id(item)]

    if size(node) > _MAX_NODES:
        raise RecipeError(
            f"{origin}: the YAML expands to more than {_MAX_NODES:,} values (aliases that repeat aliases)",
            hint="write the recipe out without nested & and * aliases",
        )


def _check_duplicates(node: yaml.Node, origin: str, prefix: str = "") -> None:
    """Refuse a key given twice in one mapping (YAML loaders keep the last one, silently).

    Raises:
        RecipeError: naming the key and both lines.
    """
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, origin, prefix)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise RecipeError(
                f"{origin}:{line}: {prefix}{key}: given twice (first at line {seen[key]}); "
                "the second would silently replace the first",
                hint="merge the two into one",
            )
        seen[key] = line
        _check_duplicates(value_node, origin, f"{prefix}{key}.")


def _record_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = key_node.start_mark.line + 1
            _record_lines(value_node, dotted + ".", lines)


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value` into the dotted key and the YAML-parsed value.

    Raises:
        RecipeError: no `=`, a malformed key, or a value that is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise RecipeError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key",
            hint="for example: --set train.epochs=2 or --set data.text=[question,passage]",
        )
    if raw.strip() == "":
        return key, None
    value, _ = parse_yaml(raw, f"--set {key}")
    return key, value


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
    data = _deep_copy(raw)
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
    _drop_foreign_defaults(data, model, recipes)
    problems = [task_problem] if task_problem else []
    try:
        recipe = model.model_validate({**data, "task": model.model_fields["task"].annotation.__args__[0]})
    except ValidationError as exc:
        problems += _describe_errors(exc, data, where, label, model, recipes)
    if problems:
        raise RecipeError(
            f"{label}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the recipe",
            hint="fix the keys above; `bertkit recipes show quickstart` has every section",
            problems=problems,
        ) from None
    cross = recipe.cross_field_problems()
    if cross:
        problems = [f"{_where(key, where, label)}: {key}: {msg}" for key, msg in cross]
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
    return model, f"{_where('task', where, label)}: task: {message}"


def dump_recipe(recipe: RecipeBase) -> str:
    """The recipe as YAML, every default written out, so it reruns as is."""
    data = recipe.model_dump(mode="json", exclude_none=True)
    if data.get("name") is None:
        data["name"] = recipe.run_name
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


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


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _where(key: str, where: Mapping[str, str], label: str) -> str:
    """The origin of `key`, or of its nearest ancestor that has one."""
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    while parts:
        origin = where.get(".".join(parts))
        if origin:
            return origin
        parts.pop()
    return label


def _describe_errors(
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
        (_where(key, where, label), key or "(top level)", " or ".join(messages))
        for key, messages in deepest.items()
    ]
    problems.sort(key=lambda p: _origin_order(p[0]))
    return [f"{origin}: {key}: {message}" for origin, key, message in problems]


def _drop_foreign_defaults(
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
                section = _section_class(model.model_fields[name].annotation)
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
        section = _section_class(field.annotation)
        return _default_of(section, parts[1:]) if section is not None else _MISSING
    if field.default_factory is not None:
        made = field.default_factory()
        return made.model_dump(mode="json") if isinstance(made, BaseModel) else made
    return _MISSING if field.is_required() else field.default


def _within(value: Any, default: Any) -> bool:
    if isinstance(value, dict) and isinstance(default, dict):
        return all(key in default and _within(item, default[key]) for key, item in value.items())
    return value == default


def _section_class(annotation: Any) -> type[BaseModel] | None:
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
        section = _section_class(field.annotation)
        if section is not None:
            keys.extend(schema_keys(section, dotted + "."))
    return sorted(set(keys))


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
        section = _section_class(field.annotation)
        kept[key] = _kept(item, section) if section is not None and isinstance(item, dict) else item
    return kept
