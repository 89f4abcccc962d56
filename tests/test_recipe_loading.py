"""Loading recipes: bundled and repository recipes, paths, `--set` overrides, and errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from bertkit.errors import RecipeError
from bertkit.recipe import dump_recipe, find_recipe, load_recipe, recipe_from_dict
from bertkit.recipe.base import RecipeBase
from bertkit.recipe.bundled import bundled_dir, bundled_names
from bertkit.recipe.parsing import parse_override

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"

MINIMAL = """\
task: classification
model:
  name: some/model
data:
  train: train.csv
"""


def write(folder: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(exc: pytest.ExceptionInfo[RecipeError]) -> list[str]:
    return exc.value.problems


# --------------------------------------------------------------------------- valid recipes


def test_there_are_bundled_recipes():
    assert "quickstart" in bundled_names()


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_recipe_validates(name):
    recipe = load_recipe(name)
    assert isinstance(recipe, RecipeBase)
    assert recipe.source == bundled_dir() / f"{name}.yaml"
    assert recipe.run_name == name


@pytest.mark.parametrize(
    "path", sorted(REPO_RECIPES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(REPO_RECIPES))
)
def test_every_repository_recipe_validates(path):
    assert isinstance(load_recipe(path), RecipeBase)


def test_bundled_recipes_open_with_the_command_to_run_them():
    for name in bundled_names():
        head = (bundled_dir() / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:10]
        assert any(line.startswith("#") and "bertkit " in line for line in head), name


def test_minimal_recipe_gets_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe.task == "classification"
    assert recipe.model.name == "some/model"
    assert recipe.data.text == "text"
    assert recipe.train.batch_size == 32
    assert recipe.run_name == "recipe"


def test_find_recipe_accepts_a_name_with_or_without_yaml():
    assert find_recipe("quickstart") == find_recipe("quickstart.yaml") == bundled_dir() / "quickstart.yaml"


def test_a_local_file_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, MINIMAL, "quickstart.yaml")
    assert find_recipe("quickstart.yaml") == Path("quickstart.yaml")
    assert load_recipe("quickstart.yaml").model.name == "some/model"


# --------------------------------------------------------------------------- data paths


def test_relative_data_paths_resolve_against_the_recipe_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        tmp_path / "project" / "recipes",
        """\
        task: classification
        model: {name: some/model}
        data:
          train: data/train.csv
          validation: {path: ../shared/validation.csv}
          test: /abs/test.csv
        """,
    )
    recipe = load_recipe(path)
    folder = path.parent.resolve()
    assert recipe.data.train.path == str(folder / "data" / "train.csv")
    assert recipe.data.validation.path == str(folder.parent / "shared" / "validation.csv")
    assert recipe.data.test.path == "/abs/test.csv"


def test_hub_sources_are_left_alone(tmp_path):
    path = write(
        tmp_path,
        """\
        task: classification
        model: {name: some/model}
        data:
          train: {hub: stanfordnlp/sst2, split: train}
        """,
    )
    train = load_recipe(path).data.train
    assert (train.hub, train.split, train.path) == ("stanfordnlp/sst2", "train", None)
    assert train.describe() == "stanfordnlp/sst2 [train] (Hub)"


def test_data_path_overrides_resolve_against_the_working_directory(tmp_path, monkeypatch):
    path = write(tmp_path / "recipes", MINIMAL)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    recipe = load_recipe(path, ["data.train=mine.csv"])
    assert recipe.data.train.path == str(work.resolve() / "mine.csv")


def test_bundled_quickstart_data_points_into_the_bundled_folder():
    recipe = load_recipe("quickstart")
    expected = (bundled_dir() / "data" / "sentiment" / "train.csv").resolve()
    assert Path(recipe.data.train.path) == expected


def test_a_data_path_under_an_unknown_home_is_a_recipe_error(tmp_path):
    path = write(tmp_path, MINIMAL.replace("train.csv", "~no-such-user-bertkit/train.csv"))
    with pytest.raises(RecipeError, match="no-such-user-bertkit"):
        load_recipe(path)


def test_tiny_sentiment_recipe_validates(tmp_path, tiny_sentiment_files):
    path = write(
        tmp_path,
        f"""\
        task: classification
        model: {{name: tiny}}
        data:
          train: {tiny_sentiment_files / "train.csv"}
          validation: {tiny_sentiment_files / "validation.csv"}
        """,
    )
    recipe = load_recipe(path)
    assert Path(recipe.data.train.path).is_file()
    assert Path(recipe.data.validation.path).is_file()


# --------------------------------------------------------------------------- --set overrides


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("train.learning_rate=3e-5", "train.learning_rate", 3e-5),
        ("train.learning_rate=2.0e-5", "train.learning_rate", 2e-5),
        ("train.epochs=2", "train.epochs", 2),
        ("data.text=[question,passage]", "data.text", ["question", "passage"]),
        ("train.max_steps=", "train.max_steps", None),
        ("train.max_steps=null", "train.max_steps", None),
        ("train.group_by_length=false", "train.group_by_length", False),
        ("model.name=google-bert/bert-base-uncased", "model.name", "google-bert/bert-base-uncased"),
        ("data.train={hub: x/y, split: train}", "data.train", {"hub": "x/y", "split": "train"}),
        ("description=a=b", "description", "a=b"),
        (" train.seed = 7", "train.seed", 7),
    ],
)
def test_parse_override(text, key, value):
    parsed_key, parsed_value = parse_override(text)
    assert parsed_key == key
    assert parsed_value == value
    assert type(parsed_value) is type(value)


@pytest.mark.parametrize("text", ["train.epochs", "=2", "train..epochs=2", "1train=2", "train epochs=2", ""])
def test_malformed_overrides_are_recipe_errors(text):
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        parse_override(text)


def test_override_with_invalid_yaml_value_is_a_recipe_error():
    with pytest.raises(RecipeError, match="not valid YAML"):
        parse_override("data.text=[a, b")


def test_overrides_apply_in_order_and_reach_the_recipe(tmp_path):
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(
        path,
        ["train.learning_rate=3e-5", "train.epochs=1", "train.epochs=2", "data.text=[question,passage]"],
    )
    assert recipe.train.learning_rate == pytest.approx(3e-5)
    assert isinstance(recipe.train.learning_rate, float)
    assert recipe.train.epochs == 2
    assert recipe.data.text_columns == ["question", "passage"]


def test_empty_override_resets_to_none(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  max_steps: 100\n")
    assert load_recipe(path).train.max_steps == 100
    assert load_recipe(path, ["train.max_steps="]).train.max_steps is None


def test_override_can_create_a_missing_section(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL), ["train.early_stopping.patience=5"])
    assert recipe.train.early_stopping.patience == 5


def test_setting_a_sub_key_of_a_value_is_a_recipe_error(tmp_path):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(RecipeError, match="`data.train` is a value, not a section"):
        load_recipe(path, ["data.train.path.x=1"])


def test_an_invalid_override_is_blamed_on_the_override(tmp_path):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, ["train.epochs=-1"])
    assert problems_of(exc) == [
        "--set train.epochs=-1: train.epochs: input should be greater than 0 (got -1)"
    ]


def test_an_unknown_override_key_gets_a_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, ["train.lerning_rate=1e-4"])
    (problem,) = problems_of(exc)
    assert problem.startswith("--set train.lerning_rate=1e-4: train.lerning_rate: unknown key")
    assert "did you mean `train.learning_rate`?" in problem


# --------------------------------------------------------------------------- YAML values


def test_exponent_without_a_dot_is_a_float_in_yaml(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  learning_rate: 3e-5\n  warmup: 1e2\n")
    recipe = load_recipe(path)
    assert recipe.train.learning_rate == pytest.approx(3e-5)
    assert recipe.train.warmup == 100.0


@pytest.mark.parametrize(
    "value",
    ["!!python/object/apply:os.getcwd []", "!!int abc", "!!float x", "!!bool maybe", "!!timestamp x"],
)
def test_yaml_tags_that_cannot_build_a_value_are_recipe_errors(tmp_path, value):
    path = write(tmp_path, MINIMAL + f"description: {value}\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)


# --------------------------------------------------------------------------- errors


def test_typo_in_a_section_name_suggests_the_section_and_key(tmp_path):
    path = write(tmp_path, MINIMAL + "trian:\n  epochs: 2\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    (problem,) = problems_of(exc)
    assert problem == f"{path}:6: trian: unknown key; did you mean `train.epochs`?"


def test_key_in_the_wrong_section_suggests_the_right_section(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  epochs: 2\n  max_length: 64\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    (problem,) = problems_of(exc)
    assert problem == f"{path}:8: train.max_length: unknown key; did you mean `data.max_length`?"


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    path = write(
        tmp_path,
        """\
        task: clasification
        model:
          name: some/model
          nmae: typo
        data:
          train: train.csv
          max_length: 4
        train:
          learning_rate: 2
          batch_size: 0
        """,
    )
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    problems = problems_of(exc)
    assert [p.split(": ")[0:2] for p in problems] == [
        [f"{path}:1", "task"],
        [f"{path}:4", "model.nmae"],
        [f"{path}:7", "data.max_length"],
        [f"{path}:9", "train.learning_rate"],
        [f"{path}:10", "train.batch_size"],
    ]
    assert "did you mean `model.name`?" in problems[1]
    assert str(exc.value).startswith(f"{path}: 5 problems in the recipe")
    assert exc.value.hint


def test_a_missing_required_key_names_it(tmp_path):
    path = write(tmp_path, "task: mlm\ndata:\n  train: corpus.txt\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert problems_of(exc) == [f"{path}: model: required key is missing"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- task: classification\n- model: x\n", "a recipe is a YAML mapping"),
        ("just a string\n", "a recipe is a YAML mapping"),
    ],
)
def test_a_recipe_that_is_not_a_mapping_is_a_recipe_error(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text))


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_recipe_is_a_recipe_error(tmp_path, text):
    with pytest.raises(RecipeError) as exc:
        load_recipe(write(tmp_path, text))
    assert any("task: required key is missing" in p for p in problems_of(exc))


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "task: classification\nmodel:\n  name: [unclosed\ndata:\n  train: x.csv\n")
    with pytest.raises(RecipeError, match=rf"^{path}:\d+: not valid YAML"):
        load_recipe(path)
    path = write(tmp_path, "task: classification\n  model: x\n", "indent.yaml")
    with pytest.raises(RecipeError, match=rf"^{path}:2: not valid YAML"):
        load_recipe(path)


def test_a_missing_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file or bundled recipe"):
        load_recipe(tmp_path / "nope.yaml")


def test_a_folder_is_not_a_recipe(tmp_path):
    with pytest.raises(RecipeError, match="is a folder"):
        load_recipe(tmp_path)


def test_an_unknown_bundled_name_suggests_a_close_one():
    with pytest.raises(RecipeError) as exc:
        load_recipe("quikstart")
    assert "did you mean `quickstart`?" in exc.value.hint
    assert "quickstart" in exc.value.hint


def test_an_unreadable_recipe_is_a_recipe_error(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(path)


def test_batch_size_must_be_positive_or_auto(tmp_path):
    path = write(tmp_path, MINIMAL)
    assert load_recipe(path, ["train.batch_size=auto"]).train.batch_size == "auto"
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, ["train.batch_size=0"])
    (problem,) = problems_of(exc)
    # The key is the user's key, not pydantic's union branch name.
    assert ": train.batch_size: " in problem
    assert "greater than or equal to 1" in problem


# --------------------------------------------------------------------------- cross-field rules


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (["data.validation=v.csv", "data.validation_split=0.1"], "data.validation_split", "not both"),
        (["train.eval_every=steps"], "train.eval_steps", "needs eval_steps"),
        (["task=mlm", "model.init=scratch"], "model.size", "needs a size preset"),
        (["task=mlm", "tokenizer.train=true"], "tokenizer.train", "only fits a model trained from scratch"),
        (["task=mlm", "model.size=tiny"], "model.size", "only with `model.init: scratch`"),
        (["data.train="], "data.train", "needs training data"),
    ],
)
def test_cross_field_problems(tmp_path, overrides, key, message):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, overrides)
    (problem,) = problems_of(exc)
    assert f": {key}: " in problem
    assert message in problem


def test_cross_field_problem_points_at_the_file_line(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  eval_every: steps\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    # eval_steps is absent, so the problem points at its section, `train:` on line 6.
    assert problems_of(exc) == [f"{path}:6: train.eval_steps: `eval_every: steps` needs eval_steps"]


def test_scratch_with_a_size_is_valid(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL), ["task=mlm", "model.init=scratch", "model.size=tiny"])
    assert (recipe.model.init, recipe.model.size) == ("scratch", "tiny")


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", bundled_names())
def test_dump_recipe_round_trips_through_a_file(tmp_path, name):
    recipe = load_recipe(name)
    dumped = dump_recipe(recipe)
    path = tmp_path / "resolved.yaml"
    path.write_text(dumped, encoding="utf-8")
    again = load_recipe(path)
    expected = recipe.model_dump() | {"name": recipe.run_name}
    assert again.model_dump() == expected
    assert again.run_name == name
    assert yaml.safe_load(dump_recipe(again)) == yaml.safe_load(dumped)


def test_dump_recipe_round_trips_through_a_dict(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  learning_rate: 3e-5\n  early_stopping: {patience: 2}\n")
    recipe = load_recipe(path, ["data.text=[question,passage]", "labels.names=[neg,pos]"])
    again = recipe_from_dict(yaml.safe_load(dump_recipe(recipe)))
    assert again.model_dump() == recipe.model_dump() | {"name": "recipe"}
    assert again.train.learning_rate == pytest.approx(3e-5)


@pytest.mark.parametrize(
    ("task", "extra", "key", "owner"),
    [
        ("mlm", "labels: {type: multi}\n", "labels", "classification"),
        ("mlm", "train: {class_weights: auto}\n", "train.class_weights", "classification` or `task: ner"),
        ("classification", "tags: {scheme: bioes}\n", "tags", "ner"),
        ("ner", "labels: {type: multi}\n", "labels", "classification"),
        ("mlm", "data: {train: t.txt, text_pair: b}\n", "data.text_pair", "classification"),
        ("classification", "mlm: {probability: 0.2}\n", "mlm", "mlm"),
        ("classification", "model: {name: x, init: scratch}\n", "model.init", "mlm"),
    ],
)
def test_a_section_of_another_task_is_an_error_that_names_its_task(tmp_path, task, extra, key, owner):
    """An mlm recipe with labels or class weights used to validate, and then ignore them."""
    sections = {"model": "model: {name: x}\n", "data": "data: {train: t.txt}\n"}
    text = f"task: {task}\n" + "".join(v for k, v in sections.items() if not extra.startswith(k)) + extra
    with pytest.raises(RecipeError) as refused:
        load_recipe(write(tmp_path, text))
    assert f"{key}: applies to `task: {owner}` recipes, not to `task: {task}`" in str(refused.value)


def test_an_unknown_task_names_the_tasks(tmp_path):
    with pytest.raises(RecipeError) as refused:
        load_recipe(write(tmp_path, "task: clasification\nmodel: {name: x}\n"))
    assert "unknown task 'clasification'; did you mean `classification`?" in str(refused.value)
    with pytest.raises(RecipeError) as refused:
        load_recipe(write(tmp_path, "task: translation\nmodel: {name: x}\n"))
    assert "unknown task 'translation'; tasks: classification, mlm" in str(refused.value)
