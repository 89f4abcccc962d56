"""Property tests: whatever a user writes, recipe loading answers with a Recipe or a RecipeError."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bertkit.errors import RecipeError
from bertkit.recipe import dump_recipe, load_recipe, recipe_from_dict
from bertkit.recipe.base import RecipeBase
from bertkit.recipe.parsing import parse_override
from bertkit.recipe.schema import RECIPES, schema_keys

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SCHEMA_KEYS = sorted({key for recipe in RECIPES.values() for key in schema_keys(recipe)})
TOP_LEVEL = sorted({key.split(".")[0] for key in SCHEMA_KEYS})
KEY_PARTS = sorted({part for key in SCHEMA_KEYS for part in key.split(".")})
# Values the schema gives meaning to, so generated recipes often get past the first check.
MEANINGFUL = [
    "classification", "mlm", "pretrained", "scratch", "tiny", "auto", "steps", "epoch", "no",
    "single", "multi", "packing", "line_by_line", "fp32", "bf16", "csv", "train.csv",
    "data/train.csv", "~/corpus.txt", "../x.csv", "some/model", "stanfordnlp/sst2", "3e-5", "1e5",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(MEANINGFUL),
)
keys = st.one_of(st.sampled_from(KEY_PARTS), st.text(min_size=1, max_size=8), st.integers(0, 9))
values = st.recursive(
    st.one_of(scalars, st.lists(scalars, max_size=3)),
    lambda children: st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
random_tree = st.dictionaries(st.one_of(st.sampled_from(TOP_LEVEL), keys), values, max_size=6)


@st.composite
def recipes(draw) -> dict:
    """Mostly-valid recipes with random keys mixed in, or free-form mappings."""
    if draw(st.booleans()):
        return draw(random_tree)
    base = {
        "task": draw(st.sampled_from(["classification", "mlm"])),
        "model": {"name": draw(st.sampled_from(["some/model", "tiny"]))},
        "data": {"train": draw(st.sampled_from(["train.csv", "/abs/train.csv"]))},
    }
    for section, tree in draw(st.dictionaries(st.sampled_from(TOP_LEVEL), values, max_size=3)).items():
        if isinstance(base.get(section), dict) and isinstance(tree, dict):
            base[section] = base[section] | tree
        else:
            base[section] = tree
    return base


@pytest.fixture(scope="module")
def scratch_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recipe-properties")


_names = itertools.count()


@SETTINGS
@given(raw=recipes())
@example(raw={"task": "mlm", "model": {"name": "x", "config": {1: 2}}, "data": {"train": "a"}})
@example(raw={1: 2, None: 3, False: 4})
def test_any_mapping_gives_a_recipe_or_a_recipe_error(raw):
    try:
        recipe = recipe_from_dict(raw)
    except RecipeError as exc:
        assert str(exc)
        return
    assert isinstance(recipe, RecipeBase)


@SETTINGS
@given(raw=recipes())
@example(raw={"data": {"train": "~no-such-user-bertkit/x.csv"}})
@example(raw={"data": {"train": {"path": "nul\x00byte.csv"}}})
def test_any_yaml_file_gives_a_recipe_or_a_recipe_error(raw, scratch_dir):
    path = scratch_dir / f"r{next(_names)}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    try:
        recipe = load_recipe(path)
    except RecipeError as exc:
        # Every problem names where it comes from: the file, or the recipe as a whole.
        assert all(problem.startswith(str(path)) for problem in exc.problems), exc.problems
        return
    assert isinstance(recipe, RecipeBase)


@SETTINGS
@given(raw=recipes())
@example(raw={"task": "mlm", "model": {"name": "1e5"}, "data": {"train": "x.txt", "text": "3e-5"}})
def test_a_valid_recipe_survives_a_dump_and_reload(raw):
    try:
        recipe = recipe_from_dict(raw)
    except RecipeError:
        return
    from bertkit.recipe.parsing import _Loader  # the loader recipe files are read with

    def reload(text: str):
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader

    again = recipe_from_dict(reload(dump_recipe(recipe)))

    # Key order aside (a missing `name` is appended), the dumps say the same. They are
    # compared as sorted YAML text because NaN, a valid float here, never equals itself.
    def canonical(r: RecipeBase) -> str:
        return yaml.safe_dump(reload(dump_recipe(r)), sort_keys=True)

    assert canonical(again) == canonical(recipe)


@SETTINGS
@given(text=st.text(max_size=40))
@example(text="train.epochs")
@example(text="a=!!int abc")
@example(text="a=!!timestamp x")
@example(text="a=!!python/object/apply:os.getcwd []")
@example(text="a=" + "[" * 600)
@example(text="a=" + "[" * 600 + "]" * 600)
def test_parse_override_gives_a_pair_or_a_recipe_error(text):
    try:
        key, _value = parse_override(text)
    except RecipeError as exc:
        assert str(exc)
        return
    assert key == text.partition("=")[0].strip()
    assert key


@SETTINGS
@given(
    key=st.sampled_from(KEY_PARTS).map(lambda part: f"train.{part}") | st.sampled_from(SCHEMA_KEYS),
    value=scalars,
)
def test_overrides_of_schema_keys_give_a_recipe_or_a_recipe_error(key, value):
    text = f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
    raw = {"task": "classification", "model": {"name": "m"}, "data": {"train": "/abs/train.csv"}}
    try:
        recipe = recipe_from_dict(raw, [text])
    except RecipeError:
        return
    assert isinstance(recipe, RecipeBase)
