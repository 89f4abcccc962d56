"""Reading recipe YAML safely: YAML 1.2 scalars, no alias bombs, no key given twice, lines kept.

Every key's line is recorded, so a problem found later names `file:line`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from bertkit.errors import RecipeError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Keys whose values are local paths that resolve against the recipe's folder.


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


def to_yaml(data: Any) -> str:
    """YAML text that `parse_yaml` reads back as the same data (floats like 3e-5 quoted)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
