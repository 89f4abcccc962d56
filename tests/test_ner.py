"""NER end to end on the tiny BERT: finetune, check, eval, predict, export; refusals and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bertkit.recipe import load_recipe

WORKS = ["film", "movie", "book", "show", "story", "music"]
DISHES = ["food", "meal"]
OTHERS = ["i", "loved", "the", "was", "good", "it", "and", "we", "liked", "very", "time", "people"]


def _sentence(i: int) -> list[tuple[str, str]]:
    """A short sentence of vocabulary words: works and dishes are entities, sometimes two-word ones."""
    work, dish, verb = WORKS[i % len(WORKS)], DISHES[i % len(DISHES)], ["loved", "liked"][i % 2]
    words = [("i", "O"), (verb, "O"), ("the", "O"), (work, "B-WORK")]
    if i % 3 == 0:
        words.append(("show" if work != "show" else "book", "I-WORK"))  # a two-word title
    if i % 2:
        words += [("and", "O"), ("the", "O"), (dish, "B-DISH")]
    return [*words, (".", "O")]


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text(
        "\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ner-data")
    write_conll(folder / "train.conll", [_sentence(i) for i in range(48)])
    write_conll(folder / "validation.conll", [_sentence(i) for i in range(48, 60)])
    long = [w for i in range(8) for w in _sentence(60 + i)]  # 50+ words: several windows at max_length 24
    write_conll(folder / "test.conll", [long, *(_sentence(i) for i in range(70, 80))])
    return folder


def ner_recipe(folder: Path, model: Path, data: Path, **sections) -> Path:
    recipe = {
        "task": "ner",
        "model": {"name": str(model)},
        "data": {
            "train": str(data / "train.conll"),
            "validation": str(data / "validation.conll"),
            "test": str(data / "test.conll"),
            "max_length": 24,
            "stride": 6,
        },
        "train": {"epochs": 8, "batch_size": 8, "learning_rate": 0.005, "seed": 7, "logging_steps": 1},
        "output": {"root": str(folder / "runs")},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    path = folder / "ner.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, tiny_model_dir, ner_files):
    from bertkit.training.run import train_recipe

    folder = tmp_path_factory.mktemp("ner-run")
    recipe = ner_recipe(folder, tiny_model_dir, ner_files)
    result = train_recipe(load_recipe(recipe))
    return SimpleNamespace(run=result.run.path, metrics=result.metrics, recipe=recipe, folder=folder)


def test_the_model_records_its_task_tags_and_windows(ner_run):
    config = json.loads((ner_run.run / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "O", "1": "B-DISH", "2": "I-DISH", "3": "B-WORK", "4": "I-WORK"}
    assert config["bertkit"] == {
        "task": "ner", "max_length": 24, "stride": 6, "align": "first", "scheme": "iob2",
        "position_suffix": False,
    }  # fmt: skip


def test_training_learns_the_entities(ner_run):
    # Works and dishes are always the same few words in the same places: easy to learn.
    assert ner_run.metrics["validation"]["f1"] > 0.9
    assert set(ner_run.metrics["test"]) >= {"f1", "precision", "recall", "accuracy", "f1/WORK", "f1/DISH"}


def test_eval_scores_the_saved_model_as_training_did(run_cli, ner_run):
    # The test split holds a sentence read in several windows: both merge them the same way.
    result = run_cli("eval", "--model", ner_run.run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for name in ("f1", "precision", "recall", "accuracy"):
        assert payload["metrics"][name] == pytest.approx(ner_run.metrics["test"][name])
    report = Path(payload["report"])
    summary = json.loads((report / "metrics.json").read_text())
    errors = (report / "errors.jsonl").read_text().splitlines()
    assert sum(summary["errors"].values()) == len(errors)
    assert "## Type confusion" in (report / "report.md").read_text()


def test_predict_gives_entities_with_character_offsets(run_cli, ner_run):
    texts = ["I loved the film and the meal.", "", "we liked the   book show"]
    result = run_cli("predict", "--model", ner_run.run, *texts, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["text"] for row in rows] == texts
    assert rows[1]["entities"] == []
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]
            assert entity["type"] in {"WORK", "DISH"}
    assert [(e["text"], e["type"]) for e in rows[0]["entities"]] == [("film", "WORK"), ("meal", "DISH")]


def test_predict_a_file_to_jsonl_and_csv(run_cli, ner_run, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [
        {"id": 1, "text": "i loved the film ."},
        {"id": 2, "text": ""},
        {"id": 3, "text": ["we", "liked", "the", "film", "and", "the", "meal"]},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", "--model", ner_run.run, "--input", source, "--output", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert rows[0]["entities"][0]["text"] == "film"
    assert rows[1]["entities"] == []
    # A list of words is tagged word by word: offsets are word positions.
    assert [(e["type"], e["start"], e["end"], e["text"]) for e in rows[2]["entities"]] == [
        ("WORK", 3, 4, "film"),
        ("DISH", 6, 7, "meal"),
    ]
    table = tmp_path / "out.csv"
    assert run_cli("predict", "--model", ner_run.run, "--input", source, "--output", table).exit_code == 0
    with table.open(newline="", encoding="utf-8") as handle:
        cells = list(csv.DictReader(handle))
    assert json.loads(cells[0]["entities"]) == rows[0]["entities"]


def test_options_that_do_not_apply_are_refused(run_cli, ner_run, tiny_model_dir):
    refused = run_cli("predict", "--model", ner_run.run, "the film", "--top-k", "3")
    assert refused.exit_code == 2
    assert "--top-k: does not apply to `bertkit predict` on a ner model" in refused.stderr


def test_check_reports_the_scheme_types_and_windows(run_cli, ner_run):
    result = run_cli("check", "--recipe", ner_run.recipe, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["splits"]["test"]["windowed"] == 1
    assert report["splits"]["train"]["labels"] == {"DISH": 24, "WORK": 48}
    assert any("tag scheme IOB2" in line for line in report["notes"])


def test_a_broken_tag_stops_training_with_its_line_and_leaves_nothing(
    run_cli, tmp_path, tiny_model_dir, ner_files
):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("validation", "test"):
        (data / f"{split}.conll").write_text((ner_files / f"{split}.conll").read_text())
    broken = [_sentence(i) for i in range(10)]
    broken[2][3] = (broken[2][3][0], "I-WORK")  # an entity that starts with I- after O
    write_conll(data / "train.conll", broken)
    recipe = ner_recipe(tmp_path, tiny_model_dir, data)
    result = run_cli("finetune", "--recipe", recipe)
    assert result.exit_code == 1
    line = sum(len(s) + 1 for s in broken[:2]) + 4
    assert f"train.conll:{line}: I-WORK follows O: an entity must start with B-WORK" in result.stderr
    assert "tags.repair: true" in result.stderr
    assert not (tmp_path / "runs").exists()
    repaired = run_cli("check", "--recipe", recipe, "--set", "tags.repair=true", "--json")
    assert repaired.exit_code == 0, repaired.output


def test_eval_reads_another_scheme(run_cli, ner_run, tmp_path):
    bioes = [
        [("i", "O"), ("loved", "O"), ("the", "O"), ("film", "B-WORK"), ("show", "E-WORK"), ("meal", "S-DISH")]
    ]
    path = write_conll(tmp_path / "bioes.conll", bioes)
    result = run_cli("eval", "--model", ner_run.run, "--data", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads((Path(json.loads(result.stdout)["report"]) / "metrics.json").read_text())
    assert report["per_type"]["WORK"]["support"] == 1
    assert report["per_type"]["DISH"]["support"] == 1


def test_the_onnx_export_tags_as_the_model_does(run_cli, ner_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "onnx"
    exported = run_cli("export", "--model", ner_run.run, "--output", out, "--quantize", "int8", "--json")
    assert exported.exit_code == 0, exported.output
    info = json.loads((out / "export.json").read_text())
    assert info["parity"]["fp32"]["passed"] is True
    assert info["parity"]["fp32"]["agreement_of"] == "word tags"
    texts = ["I loved the film and the meal.", "we liked the book"]
    torch_rows = json.loads(run_cli("predict", "--model", ner_run.run, *texts, "--json").stdout)
    onnx_rows = json.loads(run_cli("predict", "--model", out, "--backend", "onnx", *texts, "--json").stdout)
    assert [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in onnx_rows] == [
        [(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in torch_rows
    ]


def test_two_processes_score_windows_as_one_model_does(run_cli, tmp_path, tiny_model_dir, ner_files):
    """Two processes (gloo) at default settings: evaluation gathers both halves back in order.

    The test split's first sentence is read in several windows; if the gathered
    predictions came back out of order, training's scores would differ from an
    evaluation of the saved model in one process.
    """
    import os
    import subprocess
    import sys

    recipe = ner_recipe(tmp_path, tiny_model_dir, ner_files, train={"epochs": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BERTKIT_CACHE": str(tmp_path / "cache")}
    env.pop("BERTKIT_DEBUG", None)
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bertkit", "finetune", "--recipe", str(recipe), "--set", f"output.dir={run}",
         "--num-processes", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert json.loads((run / "environment.json").read_text())["ran"]["processes"] == 2
    result = run_cli("eval", "--model", run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)["metrics"]
    for name in ("f1", "precision", "recall", "accuracy"):
        assert evaluated[name] == pytest.approx(trained[name])
