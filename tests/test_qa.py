"""Question answering end to end on the tiny BERT: finetune, eval, predict, check, export; bad data.

The tiny data is learnable by a 2-layer model in seconds: every context is two short
clauses about nouns, and the answer is its one positive word; a context with only
negative words holds no answer (SQuAD 2.0 style).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bertkit.recipe import load_recipe

NOUNS = ["film", "movie", "food", "service", "book", "show", "meal", "place", "staff", "story"]
GOOD = ["good", "great", "excellent", "wonderful", "lovely", "fun", "nice", "tasty", "friendly"]
BAD = ["bad", "terrible", "awful", "boring", "dull", "poor", "rude", "cold", "slow"]


def _question(i: int, answerable: bool = True) -> dict:
    """A SQuAD question about one context; the answer is the context's positive word."""
    first, second = NOUNS[i % len(NOUNS)], NOUNS[(i * 3 + 1) % len(NOUNS)]
    bad = BAD[i % len(BAD)]
    word = GOOD[i % len(GOOD)] if answerable else BAD[(i + 4) % len(BAD)]
    # 0-3 clauses of filler first, so answers sit anywhere in a window and some contexts need two.
    filler = "".join(
        f"the {NOUNS[(i + k) % len(NOUNS)]} was {BAD[(i + k) % len(BAD)]} . " for k in range(i % 4)
    )
    if i % 2:
        context = f"{filler}the {first} was {word} and the {second} was {bad} ."
    else:
        context = f"{filler}the {second} was {bad} but the {first} was {word} ."
    qa = {"id": f"q{i}", "question": f"what was the {first} like ?"}
    if answerable:
        qa["answers"] = [{"text": word, "answer_start": context.index(f" {word} ") + 1}]
    else:
        qa.update(answers=[], is_impossible=True)
    return {"context": context, "qas": [qa]}


def squad(paragraphs: list[dict]) -> dict:
    return {"version": "v2.0", "data": [{"title": "tiny", "paragraphs": paragraphs}]}


def write_json(path: Path, payload: dict) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def long_paragraph() -> dict:
    """A context of about 90 tokens whose answer is near its end: read in several 32-token windows."""
    filler = " ".join(f"the {NOUNS[k % len(NOUNS)]} was {BAD[k % len(BAD)]} ." for k in range(16))
    context = f"{filler} the music was lovely and the film was dull ."
    return {
        "context": context,
        "qas": [
            {
                "id": "long",
                "question": "what was the music like ?",
                "answers": [{"text": "lovely", "answer_start": context.index("lovely")}],
            }
        ],
    }


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qa-data")
    train = [_question(i, answerable=i % 8 != 0) for i in range(96)]
    validation = [_question(i, answerable=i % 4 != 0) for i in range(96, 120)]
    test = [long_paragraph(), *(_question(i, answerable=i % 4 != 0) for i in range(120, 140))]
    for name, paragraphs in (("train", train), ("validation", validation), ("test", test)):
        write_json(folder / f"{name}.json", squad(paragraphs))
    return folder


def qa_recipe(folder: Path, model: Path, data: Path, **sections) -> Path:
    recipe = {
        "task": "qa",
        "model": {"name": str(model)},
        "data": {
            "train": str(data / "train.json"),
            "validation": str(data / "validation.json"),
            "test": str(data / "test.json"),
            "max_length": 32,
            "doc_stride": 8,
        },
        "train": {"epochs": 10, "batch_size": 8, "learning_rate": 0.005, "seed": 7, "logging_steps": 4},
        "output": {"root": str(folder / "runs")},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    path = folder / "qa.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_model_dir, qa_files):
    from bertkit.training.run import train_recipe

    folder = tmp_path_factory.mktemp("qa-run")
    recipe = qa_recipe(folder, tiny_model_dir, qa_files)
    result = train_recipe(load_recipe(recipe))
    return SimpleNamespace(run=result.run.path, metrics=result.metrics, recipe=recipe, folder=folder)


def test_the_model_records_its_windows_and_no_answer_threshold(qa_run):
    config = json.loads((qa_run.run / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    saved = config["bertkit"]
    assert {k: saved[k] for k in ("task", "max_length", "doc_stride", "unanswerable", "n_best")} == {
        "task": "qa", "max_length": 32, "doc_stride": 8, "unanswerable": True, "n_best": 20,
    }  # fmt: skip
    # The tuned threshold lies between the best one and the next question's margin.
    validation = qa_run.metrics["validation"]
    assert saved["null_threshold"] > validation["best_f1_threshold"]
    assert validation["f1"] == pytest.approx(validation["best_f1"])


def test_training_learns_to_answer_and_to_abstain(qa_run):
    validation, test = qa_run.metrics["validation"], qa_run.metrics["test"]
    assert validation["f1"] > 80
    assert validation["has_answer_total"] == 18 and validation["no_answer_total"] == 6
    assert validation["no_answer_exact_match"] > 50
    assert test["has_answer_f1"] > 80


def test_eval_scores_the_saved_model_as_training_did(run_cli, qa_run):
    result = run_cli("eval", "--model", qa_run.run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    trained = qa_run.metrics["test"]
    for name in ("f1", "exact_match", "has_answer_f1", "no_answer_f1", "best_f1"):
        assert payload["metrics"][name] == pytest.approx(trained[name])
    report = Path(payload["report"])
    results = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    assert len(results) == 21
    long = next(r for r in results if r["id"] == "long")
    assert long["references"] == ["lovely"]
    misses = [r for r in results if r["exact_match"] < 1]
    assert f"## The {len(misses)} worst misses" in (report / "report.md").read_text()


def test_predict_answers_with_character_offsets_over_a_long_document(run_cli, qa_run, tmp_path):
    document = tmp_path / "document.txt"
    context = long_paragraph()["context"]
    document.write_text(context, encoding="utf-8")
    result = run_cli(
        "predict", "--model", qa_run.run, "--context", document, "what was the music like ?", "--top-k", "3",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    answer = row["answer"]
    assert answer["text"] == "lovely"
    assert context[answer["start"] : answer["end"]] == "lovely"
    assert answer["start"] > 200  # past the first window: the document was read in windows
    assert len(row["alternatives"]) == 2
    for alternative in row["alternatives"]:
        assert context[alternative["start"] : alternative["end"]] == alternative["text"]
        assert alternative["score"] <= answer["score"]


def test_an_unanswerable_question_gets_no_answer(run_cli, qa_run):
    result = run_cli(
        "predict", "--model", qa_run.run, "-q", "what was the film like ?", "-c",
        "the film was dull and the food was cold .", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["answer"] is None


def test_predict_a_file_of_questions_and_contexts(run_cli, qa_run, tmp_path):
    source = tmp_path / "in.jsonl"
    rows = [
        {
            "id": 1,
            "question": "what was the book like ?",
            "context": "the book was great and the food was cold .",
        },
        {"id": 2, "question": "", "context": "the film was good ."},
        {"id": 3, "question": "what was the show like ?", "context": "the show was fun ."},
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", "--model", qa_run.run, "--input", source, "--output", out)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["answer"]["text"] == "great"
    assert answers[1]["answer"] is None  # an empty question is not asked
    assert answers[2]["answer"]["text"] == "fun"
    table = tmp_path / "out.csv"
    result = run_cli("predict", "--model", qa_run.run, "--input", source, "--output", table)
    assert result.exit_code == 0, result.output
    with table.open(newline="", encoding="utf-8") as handle:
        cells = list(csv.DictReader(handle))
    assert cells[0]["answer_text"] == "great"
    assert rows[0]["context"][int(cells[0]["answer_start"]) : int(cells[0]["answer_end"])] == "great"


def test_options_that_do_not_apply_are_refused(run_cli, qa_run):
    refused = run_cli(
        "predict", "--model", qa_run.run, "-c", "the film was good .", "what ?", "--threshold", "0.5"
    )
    assert refused.exit_code == 2
    assert "--threshold: does not apply to `bertkit predict` on a qa model" in refused.stderr
    no_context = run_cli("predict", "--model", qa_run.run, "what was the film like ?")
    assert no_context.exit_code == 2
    assert "needs a question and a context" in no_context.stderr


def test_check_reports_windows_without_the_answer(run_cli, qa_run):
    result = run_cli("check", "--recipe", qa_run.recipe, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # The long paragraph, and the five contexts with three clauses of filler (25 tokens, 23 fit).
    assert report["splits"]["test"]["windowed"] == 6
    assert report["splits"]["train"]["labels"] == {"answered": 84, "no answer": 12}
    (line,) = [n for n in report["notes"] if n.startswith("test:") and "windows" in n]
    assert "do not hold the answer" in line


def _broken(folder: Path, files: Path) -> Path:
    """Training data where question q3's answer_start is off and q5's answer is nowhere in the context."""
    data = json.loads((files / "train.json").read_text())
    paragraphs = data["data"][0]["paragraphs"]
    paragraphs[3]["qas"][0]["answers"][0]["answer_start"] = -1
    paragraphs[5]["qas"][0]["answers"][0]["text"] = "music"
    folder.mkdir()
    for split in ("validation", "test"):
        (folder / f"{split}.json").write_text((files / f"{split}.json").read_text())
    return write_json(folder / "train.json", data)


def test_answers_not_in_their_context_are_found_dropped_or_refused(
    run_cli, tmp_path, tiny_model_dir, qa_files
):
    train = _broken(tmp_path / "data", qa_files)
    recipe = qa_recipe(tmp_path, tiny_model_dir, tmp_path / "data")
    searched = json.loads(run_cli("check", "--recipe", recipe, "--json").stdout)
    # search: q3's text is in its context (moved there); q5's is nowhere (dropped, reported).
    assert searched["splits"]["train"]["used"] == 95
    assert any("1 answer not at their answer_start, found elsewhere" in n for n in searched["notes"])
    (warning,) = [f for f in searched["findings"] if f["code"] == "answer_not_in_context"]
    assert f"{train}, question q5: answer 'music' is not at answer_start" in warning["message"]
    dropped = json.loads(
        run_cli("check", "--recipe", recipe, "--set", "qa.bad_answers=drop", "--json").stdout
    )
    assert dropped["splits"]["train"]["used"] == 94
    refused = run_cli("finetune", "--recipe", recipe, "--set", "qa.bad_answers=error")
    assert refused.exit_code == 1
    # The checks before training list both answers, each with its file and question id.
    assert "training would fail or mean nothing (2 problems)" in refused.stderr
    assert f"{train}, question q3: answer " in refused.stderr
    assert f"{train}, question q5: answer " in refused.stderr
    assert not (tmp_path / "runs").exists()


def test_unanswerable_questions_are_refused_when_the_recipe_says_there_are_none(
    run_cli, tmp_path, tiny_model_dir, qa_files
):
    recipe = qa_recipe(tmp_path, tiny_model_dir, qa_files, qa={"unanswerable": False})
    result = run_cli("finetune", "--recipe", recipe)
    assert result.exit_code == 1
    assert "12 questions with no answer, but qa.unanswerable: false" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_onnx_export_answers_as_the_model_does(run_cli, qa_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "onnx"
    exported = run_cli("export", "--model", qa_run.run, "--output", out, "--json")
    assert exported.exit_code == 0, exported.output
    info = json.loads((out / "export.json").read_text())
    assert info["parity"]["fp32"]["passed"] is True
    assert info["parity"]["fp32"]["agreement"] == 1.0
    args = ("-c", long_paragraph()["context"], "what was the music like ?", "--top-k", "2", "--json")
    torch_rows = json.loads(run_cli("predict", "--model", qa_run.run, *args).stdout)
    onnx_rows = json.loads(run_cli("predict", "--model", out, "--backend", "onnx", *args).stdout)
    for theirs, ours in zip(onnx_rows, torch_rows, strict=True):
        answers = zip(
            [theirs["answer"], *theirs["alternatives"]], [ours["answer"], *ours["alternatives"]], strict=True
        )
        for a, b in answers:
            assert (a["text"], a["start"], a["end"]) == (b["text"], b["start"], b["end"])
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_two_processes_score_windows_as_one_model_does(run_cli, tmp_path, tiny_model_dir, qa_files):
    """Two processes (gloo) at default settings: the windows' logits are gathered back in order.

    The test split has contexts read in several windows; gathered out of order, the
    answers of training's test scores would differ from one process evaluating the
    saved model.
    """
    import os
    import subprocess
    import sys

    recipe = qa_recipe(tmp_path, tiny_model_dir, qa_files, train={"epochs": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BERTKIT_CACHE": str(tmp_path / "cache")}
    env.pop("BERTKIT_DEBUG", None)
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bertkit", "finetune", "--recipe", str(recipe), "--set", f"output.dir={run}",
         "--num-processes", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "environment.json").read_text())["ran"]["processes"] == 2
    for split in ("validation", "test"):
        result = run_cli("eval", "--model", run, "--split", split, "--json")
        assert result.exit_code == 0, result.output
        evaluated = json.loads(result.stdout)["metrics"]
        for name in ("f1", "exact_match", "best_f1", "threshold"):
            assert evaluated[name] == pytest.approx(trained[split][name]), (split, name)


def test_a_context_path_that_does_not_exist_is_refused(run_cli, qa_run):
    result = run_cli("predict", "--model", qa_run.run, "--context", "reprot.txt", "what was the film like ?")
    assert result.exit_code == 1
    assert "--context reprot.txt: no such file" in result.stderr


def test_a_later_row_without_its_columns_names_its_line(run_cli, qa_run, tmp_path):
    source = tmp_path / "in.jsonl"
    rows = [
        {"question": "what was the film like ?", "context": "the film was good ."},
        {"question": "what ?"},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli("predict", "--model", qa_run.run, "--input", source, "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 1
    assert f"{source}:2: no column 'context'" in result.stderr
    skipped = run_cli(
        "predict", "--model", qa_run.run, "--input", source, "-o", tmp_path / "o.jsonl", "--on-error", "skip"
    )
    assert skipped.exit_code == 0, skipped.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1
