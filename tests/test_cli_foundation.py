"""The command line's foundation: help, version, `recipes`, `env`, and how errors are shown."""

from __future__ import annotations

import csv
import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

import bertkit
import bertkit.cli
from bertkit.errors import RecipeError
from bertkit.recipe import load_recipe
from bertkit.recipe.bundled import bundled_dir, bundled_names

BAD_RECIPE = """\
task: classification
model:
  name: some/model
data:
  train: train.csv
trian:
  epochs: 2
"""


def good_recipe(folder: Path, data_dir: Path) -> Path:
    """A recipe in `folder` whose data files are relative paths to copies of `data_dir`'s CSVs."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        (folder / "data" / f"{split}.csv").write_bytes((data_dir / f"{split}.csv").read_bytes())
    path = folder / "tiny.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            # A tiny recipe for tests.
            #   bertkit finetune --recipe tiny.yaml
            task: classification
            description: tiny sentiment
            model:
              name: tiny
            data:
              train: data/train.csv
              validation: {path: data/validation.csv}
              test: data/test.csv
            train:
              max_steps: 2
            """
        ),
        encoding="utf-8",
    )
    return path


# --------------------------------------------------------------------------- root


def test_help_lists_the_commands(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0, result.output
    assert "recipes" in result.stdout
    assert "env" in result.stdout
    assert "Usage" in result.stdout


def test_short_help_flag_works(run_cli):
    result = run_cli("-h")
    assert result.exit_code == 0
    assert "recipes" in result.stdout


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bertkit {bertkit.__version__}"


def test_unknown_command_is_a_usage_error(run_cli):
    result = run_cli("frobnicate")
    assert result.exit_code == 2
    assert "frobnicate" in result.stderr


def test_ctrl_c_exits_130_without_a_traceback(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(bertkit.cli, "app", interrupted)
    with pytest.raises(SystemExit) as exc:
        bertkit.cli.main()
    assert exc.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


# --------------------------------------------------------------------------- recipes list / show


def test_recipes_list_shows_every_bundled_recipe(run_cli):
    result = run_cli("recipes", "list")
    assert result.exit_code == 0, result.output
    for name in bundled_names():
        assert name in result.stdout
    assert "classification" in result.stdout


def test_recipes_show_prints_the_file_with_its_comments(run_cli):
    result = run_cli("recipes", "show", "quickstart")
    assert result.exit_code == 0, result.output
    text = (bundled_dir() / "quickstart.yaml").read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert comments
    for line in comments:
        assert line in result.stdout
    assert "bertkit finetune --recipe quickstart" in result.stdout
    # The file comes through unchanged (after a one-line header naming it).
    assert result.stdout.endswith(text)


def test_recipes_show_a_file(run_cli, tmp_path, tiny_sentiment_files):
    path = good_recipe(tmp_path, tiny_sentiment_files)
    result = run_cli("recipes", "show", path)
    assert result.exit_code == 0
    assert "# A tiny recipe for tests." in result.stdout
    assert str(path) in result.stdout


def test_recipes_show_an_unknown_name_suggests_one(run_cli):
    result = run_cli("recipes", "show", "quickstrat")
    assert result.exit_code == 2
    assert "did you mean `quickstart`?" in result.stderr


# --------------------------------------------------------------------------- recipes validate


def test_validate_a_good_recipe(run_cli, tmp_path, tiny_sentiment_files):
    path = good_recipe(tmp_path, tiny_sentiment_files)
    result = run_cli("recipes", "validate", path)
    assert result.exit_code == 0, result.output
    assert "valid classification recipe" in result.stderr
    assert result.stdout == ""


def test_validate_every_bundled_recipe_at_once(run_cli):
    result = run_cli("recipes", "validate", *bundled_names())
    assert result.exit_code == 0, result.output
    for name in bundled_names():
        assert f"{name}: valid" in result.stderr


def test_validate_a_bad_recipe_names_file_line_and_fix(run_cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_RECIPE, encoding="utf-8")
    result = run_cli("recipes", "validate", path)
    assert result.exit_code == 2
    assert f"{path}:6: trian: unknown key; did you mean `train.epochs`?" in result.stderr
    assert "Traceback" not in result.output


def test_validate_reports_each_bad_recipe_and_fails(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_RECIPE, encoding="utf-8")
    result = run_cli("recipes", "validate", "quickstart", bad)
    assert result.exit_code == 2
    assert "quickstart: valid" in result.stderr
    assert "1 of 2 recipes invalid" in result.stderr


def test_validate_with_a_bad_override_blames_the_override(run_cli):
    result = run_cli("recipes", "validate", "quickstart", "--set", "train.epochs=0")
    assert result.exit_code == 2
    assert "--set train.epochs=0: train.epochs:" in result.stderr


def test_validate_resolved_prints_yaml_that_loads(run_cli, tmp_path, tiny_sentiment_files):
    path = good_recipe(tmp_path, tiny_sentiment_files)
    result = run_cli("recipes", "validate", path, "--resolved", "--set", "train.learning_rate=3e-5")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["name"] == "tiny"
    assert resolved["train"]["learning_rate"] == pytest.approx(3e-5)
    assert resolved["train"]["max_steps"] == 2
    assert resolved["data"]["train"]["path"] == str((tmp_path / "data" / "train.csv").resolve())
    # The resolved recipe is itself a recipe that validates and means the same thing.
    again = tmp_path / "elsewhere" / "resolved.yaml"
    again.parent.mkdir()
    again.write_text(result.stdout, encoding="utf-8")
    assert load_recipe(again).model_dump() == load_recipe(path, ["train.learning_rate=3e-5"]).model_dump() | {
        "name": "tiny"
    }


# --------------------------------------------------------------------------- recipes copy


def test_copy_a_recipe_with_its_data(run_cli, tmp_path, tiny_sentiment_files):
    source = good_recipe(tmp_path / "src", tiny_sentiment_files)
    dest = tmp_path / "dest" / "mine.yaml"
    dest.parent.mkdir()
    result = run_cli("recipes", "copy", source, dest)
    assert result.exit_code == 0, result.output
    assert dest.read_bytes() == source.read_bytes()
    for split in ("train", "validation", "test"):
        copied = dest.parent / "data" / f"{split}.csv"
        assert copied.read_bytes() == (tiny_sentiment_files / f"{split}.csv").read_bytes()
        assert str(copied) in result.stdout
    assert f"bertkit finetune --recipe {dest}" in result.stdout
    recipe = load_recipe(dest)
    assert recipe.data.train.path == str((dest.parent / "data" / "train.csv").resolve())
    assert run_cli("recipes", "validate", dest).exit_code == 0


def test_copy_into_a_folder_keeps_the_file_name(run_cli, tmp_path, tiny_sentiment_files):
    source = good_recipe(tmp_path / "src", tiny_sentiment_files)
    dest = tmp_path / "dest"
    dest.mkdir()
    result = run_cli("recipes", "copy", source, dest)
    assert result.exit_code == 0, result.output
    assert (dest / "tiny.yaml").is_file()
    assert (dest / "data" / "train.csv").is_file()


def test_copy_refuses_to_overwrite_without_force(run_cli, tmp_path, tiny_sentiment_files):
    source = good_recipe(tmp_path / "src", tiny_sentiment_files)
    dest = tmp_path / "mine.yaml"
    dest.write_text("# my own work\n", encoding="utf-8")
    result = run_cli("recipes", "copy", source, dest)
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert "--force" in result.stderr
    assert dest.read_text(encoding="utf-8") == "# my own work\n"

    result = run_cli("recipes", "copy", source, dest, "--force")
    assert result.exit_code == 0, result.output
    assert dest.read_bytes() == source.read_bytes()


def test_copy_refuses_to_overwrite_a_different_data_file(run_cli, tmp_path, tiny_sentiment_files):
    source = good_recipe(tmp_path / "src", tiny_sentiment_files)
    dest = tmp_path / "dest" / "mine.yaml"
    (dest.parent / "data").mkdir(parents=True)
    (dest.parent / "data" / "train.csv").write_text("text,label\nmine,positive\n", encoding="utf-8")
    result = run_cli("recipes", "copy", source, dest)
    assert result.exit_code == 2
    assert "train.csv" in result.stderr
    assert not dest.exists()


def test_copy_the_same_recipe_twice_is_fine(run_cli, tmp_path, tiny_sentiment_files):
    source = good_recipe(tmp_path / "src", tiny_sentiment_files)
    dest = tmp_path / "mine.yaml"
    assert run_cli("recipes", "copy", source, dest).exit_code == 0
    assert run_cli("recipes", "copy", source, dest).exit_code == 0


def test_copy_quickstart(run_cli, tmp_path):
    result = run_cli("recipes", "copy", "quickstart", tmp_path)
    assert result.exit_code == 0, result.output
    copied = tmp_path / "quickstart.yaml"
    assert copied.read_bytes() == (bundled_dir() / "quickstart.yaml").read_bytes()
    assert run_cli("recipes", "validate", copied).exit_code == 0
    recipe = load_recipe(copied)
    for split in ("train", "validation", "test"):
        bundled = bundled_dir() / "data" / "sentiment" / f"{split}.csv"
        local = Path(getattr(recipe.data, split).path)
        assert local == (tmp_path / "data" / "sentiment" / f"{split}.csv").resolve()
        assert local.read_bytes() == bundled.read_bytes()


def test_bundled_quickstart_data_is_present_and_balanced():
    folder = bundled_dir() / "data" / "sentiment"
    for split in ("train", "validation", "test"):
        with (folder / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows, split
        assert set(rows[0]) >= {"text", "label"}
        labels = [row["label"] for row in rows]
        assert labels.count("positive") == labels.count("negative") == len(labels) / 2, split
        assert all(row["text"].strip() for row in rows), split


# --------------------------------------------------------------------------- env


def test_env_json(run_cli):
    result = run_cli("env", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"python", "packages", "devices", "hub_offline"} <= set(report)
    assert report["bertkit"] == bertkit.__version__
    assert report["hub_offline"] is True  # conftest switches the Hub off
    assert report["packages"]["transformers"]
    assert report["devices"]["device"] in ("cpu", "cuda", "mps")


def test_env_table(run_cli):
    result = run_cli("env")
    assert result.exit_code == 0, result.output
    assert bertkit.__version__ in result.stdout
    assert "transformers" in result.stdout
    assert "hub offline" in result.stdout


# --------------------------------------------------------------------------- errors


def test_errors_show_a_message_and_hint_not_a_traceback(run_cli, tmp_path):
    result = run_cli("recipes", "validate", tmp_path / "missing.yaml")
    assert result.exit_code == 2
    assert "error:" in result.stderr
    assert "no such recipe file" in result.stderr
    assert "hint:" in result.stderr
    assert "BERTKIT_DEBUG=1" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)


def test_bertkit_debug_env_lets_the_error_propagate(run_cli, tmp_path):
    result = run_cli("recipes", "validate", tmp_path / "missing.yaml", env={"BERTKIT_DEBUG": "1"})
    assert isinstance(result.exception, RecipeError)
    assert result.exit_code == 1


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_bertkit_debug_off_values(run_cli, tmp_path, value):
    result = run_cli("recipes", "validate", tmp_path / "missing.yaml", env={"BERTKIT_DEBUG": value})
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)


def test_debug_flag_lets_the_error_propagate(run_cli, tmp_path):
    result = run_cli("--debug", "recipes", "validate", tmp_path / "missing.yaml")
    assert isinstance(result.exception, RecipeError)
    assert "BERTKIT_DEBUG" not in os.environ  # run_cli restores the environment


def test_debug_flag_works_after_the_command(run_cli, tmp_path):
    # Users add --debug at the end when rerunning a failed command.
    result = run_cli("recipes", "validate", tmp_path / "missing.yaml", "--debug")
    assert isinstance(result.exception, RecipeError)


def test_debug_after_double_dash_is_an_argument(run_cli, tmp_path):
    result = run_cli("recipes", "validate", "--", "--debug")
    assert result.exit_code == 2
    assert "--debug" in result.output
    assert "BERTKIT_DEBUG" not in os.environ
