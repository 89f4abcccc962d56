"""`bertkit check` and `check_recipe`: split statistics, findings, JSON and exit codes on tiny data."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bertkit.checks import CheckReport, check_recipe, raise_for_errors
from bertkit.errors import DataError, RecipeError
from bertkit.recipe import load_recipe

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


# --------------------------------------------------------------------------- helpers


def write_csv(path: Path, rows: list[tuple[Any, ...]], header: tuple[str, ...] = ("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [(r["text"], r["label"]) for r in csv.DictReader(handle)]


def write_recipe(folder: Path, model_name: Path, **sections: Any) -> Path:
    """A classification recipe in `folder` whose sections merge over a minimal one."""
    recipe: dict[str, Any] = {"task": "classification", "model": {"name": str(model_name)}}
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    recipe.setdefault("output", {"root": str(folder / "runs")})
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def splits(folder: Path, **files: Path) -> dict[str, str]:
    return {split: str(path) for split, path in files.items()}


def check(path: Path, *overrides: str, **kwargs: Any) -> CheckReport:
    return check_recipe(load_recipe(path, list(overrides)), **kwargs)


def codes(report: CheckReport, level: str | None = None) -> list[str]:
    return [f.code for f in report.findings if level is None or f.level == level]


def finding(report: CheckReport, code: str):
    found = [f for f in report.findings if f.code == code]
    assert found, f"no {code} finding in {codes(report)}"
    return found[0]


@pytest.fixture
def sentiment_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files) -> Path:
    data = {s: str(tiny_sentiment_files / f"{s}.csv") for s in ("train", "validation", "test")}
    return write_recipe(tmp_path, tiny_model_dir, data=data)


# --------------------------------------------------------------------------- clean data


def test_clean_tiny_data_counts_rows_labels_and_tokens(
    sentiment_recipe, tiny_model_dir, tiny_sentiment_files
):
    from transformers import AutoTokenizer

    report = check(sentiment_recipe)
    assert report.ok
    assert report.findings == []
    assert {name: (s.rows, s.used) for name, s in report.splits.items()} == {
        "train": (40, 40),
        "validation": (12, 12),
        "test": (12, 12),
    }
    train = report.splits["train"]
    assert train.labels == {"negative": 20, "positive": 20}
    assert (train.empty_texts, train.duplicates, train.in_train) == (0, 0, None)
    assert report.splits["test"].in_train == 0

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    lengths = sorted(
        len(tokenizer(text)["input_ids"]) for text, _ in read_rows(tiny_sentiment_files / "train.csv")
    )
    assert train.tokens.counted == 40
    assert train.tokens.max == lengths[-1]
    assert train.tokens.p50 == lengths[20]  # the higher of the two middle values of 40
    assert train.tokens.truncated == 0


def test_limit_uses_the_first_rows(sentiment_recipe):
    report = check(sentiment_recipe, limit=10)
    train = report.splits["train"]
    assert (train.rows, train.used) == (40, 10)
    assert train.labels == {"negative": 5, "positive": 5}
    assert train.tokens.counted == 10


def test_validation_split_is_carved_and_reported(tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data={"train": str(tiny_sentiment_files / "train.csv"), "validation_split": 0.25},
    )
    report = check(recipe)
    assert report.ok, report.findings
    assert report.splits["train"].used == 30
    assert report.splits["validation"].used == 10
    assert "carved from train" in report.splits["validation"].source
    assert any("carved from train" in note for note in report.notes)


# --------------------------------------------------------------------------- warnings


def test_duplicates_empty_texts_and_conflicting_labels(tmp_path, tiny_model_dir):
    rows = [
        ("the film was good .", "positive"),
        ("the food was bad .", "negative"),
        ("the film was good .", "positive"),  # line 4: duplicate of line 2
        ("   ", "positive"),  # line 5: whitespace only
        ("the food was bad .", "positive"),  # line 6: duplicate with another label
        ("the show was fun .", "positive"),
        ("the meal was cold .", "negative"),
    ]
    train = write_csv(tmp_path / "train.csv", rows)
    report = check(write_recipe(tmp_path, tiny_model_dir, data={"train": str(train)}))

    assert report.ok  # all of these are warnings
    stats = report.splits["train"]
    assert (stats.rows, stats.empty_texts, stats.duplicates) == (7, 1, 2)
    assert f"{train}:5: 1 empty or whitespace-only text" in finding(report, "empty_texts").message
    duplicates = finding(report, "duplicates").message
    assert "2 rows" in duplicates and f"{train}:4" in duplicates and "first at line 2" in duplicates
    conflict = finding(report, "conflicting_labels").message
    assert (
        "'the food was bad .'" in conflict
        and "negative at line 3" in conflict
        and "positive at line 6" in conflict
    )


def test_leakage_between_train_and_validation(tmp_path, tiny_model_dir, tiny_sentiment_files):
    train_rows = read_rows(tiny_sentiment_files / "train.csv")
    validation_rows = read_rows(tiny_sentiment_files / "validation.csv")
    leaked = validation_rows[:3] + [(f"  {train_rows[5][0]}  ", train_rows[5][1])]  # spaces do not hide it
    validation = write_csv(tmp_path / "validation.csv", validation_rows[3:] + leaked)  # leaks from line 11
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data={
            "train": str(write_csv(tmp_path / "train.csv", train_rows + validation_rows[:3])),
            "validation": str(validation),
        },
    )
    report = check(recipe)
    assert report.ok
    assert report.splits["validation"].in_train == 4
    message = finding(report, "leakage").message
    assert message.startswith(f"{validation}: 4 of 13 rows (30.8%) also appear in train")
    assert f"{validation}:11" in message and "train line 42" in message


def test_heavy_imbalance_suggests_class_weights(tmp_path, tiny_model_dir, tiny_sentiment_files):
    rows = read_rows(tiny_sentiment_files / "train.csv")
    skewed = [r for r in rows if r[1] == "positive"] + [r for r in rows if r[1] == "negative"][:1]
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data={"train": str(write_csv(tmp_path / "train.csv", skewed))}
    )

    report = check(recipe)
    imbalance = finding(report, "imbalance")
    assert imbalance.level == "warning"
    assert "'positive' has 20 rows, 'negative' only 1 (20:1)" in imbalance.message
    assert "train.class_weights: auto" in imbalance.hint

    weighted = check(recipe, "train.class_weights=auto")
    assert "train.class_weights is set" in finding(weighted, "imbalance").hint


def test_mild_imbalance_is_fine(tmp_path, tiny_model_dir, tiny_sentiment_files):
    rows = read_rows(tiny_sentiment_files / "train.csv")
    skewed = [r for r in rows if r[1] == "positive"] + [r for r in rows if r[1] == "negative"][:4]
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data={"train": str(write_csv(tmp_path / "train.csv", skewed))}
    )
    assert "imbalance" not in codes(check(recipe))


def test_truncated_share_with_the_tiny_tokenizer(sentiment_recipe, tiny_model_dir, tiny_sentiment_files):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    texts = [text for text, _ in read_rows(tiny_sentiment_files / "train.csv")]
    expected = sum(len(tokenizer(text)["input_ids"]) > 10 for text in texts)
    assert 0.05 * len(texts) < expected < len(texts)  # the tiny data straddles 10 tokens

    report = check(sentiment_recipe, "data.max_length=10")
    tokens = report.splits["train"].tokens
    assert tokens.truncated == expected
    assert tokens.truncated_share == pytest.approx(expected / 40)
    warning = [f for f in report.findings if f.code == "truncation" and f.split == "train"][0]
    assert f"{expected} of 40 examples" in warning.message and "data.max_length=10" in warning.message
    assert "--set data.max_length=" in warning.hint


def test_a_tokenizer_can_be_passed_in(sentiment_recipe, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert check(sentiment_recipe, tokenizer=tokenizer).splits["train"].tokens.counted == 40


# --------------------------------------------------------------------------- errors


def test_every_error_is_reported_at_once(tmp_path, tiny_model_dir, tiny_sentiment_files):
    rows = read_rows(tiny_sentiment_files / "train.csv")
    train = write_csv(tmp_path / "train.csv", [*rows[:7], (rows[7][0], ""), *rows[8:10]])  # line 9: no label
    lines = train.read_text(encoding="utf-8").splitlines()
    lines[3] = "a,b,c"  # line 4: ragged
    lines[6] = "the film was good ."  # line 7: ragged too (1 field)
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    validation = write_csv(tmp_path / "validation.csv", [(rows[0][0], "positive"), (rows[1][0], "neutral")])
    test = write_csv(tmp_path / "test.csv", [(rows[0][0], "positive")], header=("review", "label"))
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        data={"train": str(train), "validation": str(validation), "test": str(test)},
        train={"metric": "acuracy"},
    )
    report = check(recipe)

    assert not report.ok
    assert codes(report, "error") == [
        "malformed_row",
        "malformed_row",
        "missing_column",
        "empty_label",
        "recipe",
        "unseen_labels",
    ]
    messages = [f.message for f in report.errors]
    assert messages[0].startswith(f"{train}:4: expected 2 fields")
    assert messages[1].startswith(f"{train}:7: expected 2 fields")
    assert messages[2].startswith(f"{test}: no column 'text' (data.text)")
    assert messages[3].startswith(f"{train}:9: empty label in column 'label'")
    assert "acuracy" in messages[4]
    assert "'neutral'" in messages[5] and f"{validation}:3" in messages[5]


def test_single_class_train_is_an_error(tmp_path, tiny_model_dir, tiny_sentiment_files):
    rows = [r for r in read_rows(tiny_sentiment_files / "train.csv") if r[1] == "positive"]
    recipe = write_recipe(
        tmp_path, tiny_model_dir, data={"train": str(write_csv(tmp_path / "train.csv", rows))}
    )
    report = check(recipe)
    assert codes(report, "error") == ["single_class"]
    assert "single label value 'positive'" in report.errors[0].message


def test_all_texts_empty_is_an_error(tmp_path, tiny_model_dir):
    train = write_csv(tmp_path / "train.csv", [("", "a"), (" ", "b"), ("", "a")])
    report = check(write_recipe(tmp_path, tiny_model_dir, data={"train": str(train)}))
    assert codes(report, "error") == ["empty_texts"]
    assert f"{train}: all 3 texts are empty" in report.errors[0].message


def test_model_and_max_length_problems_are_findings(tmp_path, tiny_model_dir, tiny_sentiment_files):
    data = {"train": str(tiny_sentiment_files / "train.csv")}
    recipe = write_recipe(tmp_path, tiny_model_dir, data=data)
    too_long = check(recipe, "data.max_length=512")
    assert codes(too_long, "error") == ["max_length"]
    assert "data.max_length: 512 is above the model's limit of 128" in too_long.errors[0].message
    assert too_long.splits["train"].rows == 40  # the data is still checked

    missing = check(recipe, f"model.name={tmp_path / 'no-model'}")
    assert codes(missing, "error") == ["model"]  # said once, not again for the tokenizer
    assert "no such model folder" in missing.errors[0].message
    assert missing.splits["train"].tokens is None


def test_raise_for_errors_keeps_a_single_error_and_lists_several(
    tmp_path, tiny_model_dir, tiny_sentiment_files
):
    recipe = write_recipe(tmp_path, tiny_model_dir, data={"train": str(tiny_sentiment_files / "train.csv")})
    raise_for_errors(check(recipe))  # no error: nothing raised

    with pytest.raises(RecipeError, match="above the model's limit") as single:
        raise_for_errors(check(recipe, "data.max_length=512"))
    assert single.value.exit_code == 2

    with pytest.raises(DataError) as several:
        raise_for_errors(check(recipe, "data.max_length=512", "data.label=lable"))
    text = str(several.value)
    assert "2 problems" in text and "no column 'lable'" in text and "data.max_length" in text
    assert "bertkit check --recipe" in several.value.hint


# --------------------------------------------------------------------------- masked-LM corpora


def mlm_recipe(folder: Path, model_name: Path, corpus: Path, **sections: Any) -> Path:
    return write_recipe(
        folder, model_name, task="mlm", data={"train": str(corpus), "max_length": 16}, **sections
    )


def test_corpus_tokens_and_sequences(tmp_path, tiny_model_dir, tiny_corpus_file):
    from transformers import AutoTokenizer

    from bertkit.tasks.mlm.corpus import build_sequences, load_corpus

    recipe = load_recipe(mlm_recipe(tmp_path, tiny_model_dir, tiny_corpus_file))
    report = check_recipe(recipe)
    assert report.ok, report.findings
    stats = report.splits["train"]
    assert (stats.rows, stats.used) == (60, 60)

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    lines = tiny_corpus_file.read_text(encoding="utf-8").splitlines()
    corpus_tokens = sum(len(tokenizer(line, add_special_tokens=False)["input_ids"]) for line in lines)
    _, direct = build_sequences(
        load_corpus(recipe.data.train, recipe.data, recipe.mlm), tokenizer, recipe.mlm, 16, seed=0
    )
    assert stats.sequences["corpus_tokens"] == corpus_tokens
    assert stats.sequences["sequences"] == direct.sequences
    assert stats.sequences["dropped_tokens"] == 0  # packing keeps every token
    assert stats.tokens.max == 16


def test_corpus_line_by_line_truncation_duplicates_and_leakage(tmp_path, tiny_model_dir, tiny_corpus_file):
    lines = tiny_corpus_file.read_text(encoding="utf-8").splitlines()
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines + lines[:2]) + "\n", encoding="utf-8")
    validation = tmp_path / "valid.txt"
    validation.write_text("\n".join(lines[:3] + ["the film was very dull ."]) + "\n", encoding="utf-8")
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        task="mlm",
        data={"train": str(train), "validation": str(validation), "max_length": 8},
        mlm={"sequences": "line_by_line"},
    )
    report = check(recipe)
    assert report.ok
    assert report.splits["train"].duplicates == 2
    assert report.splits["validation"].in_train == 3
    assert {"duplicates", "leakage", "truncation"} <= set(codes(report, "warning"))
    seq = report.splits["train"].sequences
    assert seq["sequences"] == 62 and seq["truncated_documents"] > 0 and seq["dropped_tokens"] > 0


def test_corpus_problems(tmp_path, tiny_model_dir, tiny_corpus_file):
    broken = tmp_path / "broken.txt"
    broken.write_bytes(b"the film was good .\nthe caf\xe9 was nice .\n")
    report = check(mlm_recipe(tmp_path, tiny_model_dir, broken))
    assert codes(report, "error") == ["unreadable"]
    assert report.errors[0].message.startswith(f"{broken}:2: not valid UTF-8")

    no_mask = tmp_path / "no-mask"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tokenizer.mask_token = None
    tokenizer.save_pretrained(no_mask)
    report = check(mlm_recipe(tmp_path, tiny_model_dir, tiny_corpus_file, model={"tokenizer": str(no_mask)}))
    assert codes(report, "error") == ["no_mask_token"]
    assert f"{no_mask}: the tokenizer has no mask token" in report.errors[0].message


def test_a_tokenizer_to_be_trained_skips_token_counts(tmp_path, tiny_corpus_file):
    recipe = write_recipe(
        tmp_path,
        tmp_path,
        task="mlm",
        model={"name": None, "init": "scratch", "size": "tiny"},
        data={"train": str(tiny_corpus_file)},
        tokenizer={"train": True, "vocab_size": 200},
    )
    report = check(recipe)
    assert report.ok
    assert report.splits["train"].rows == 60
    assert report.splits["train"].sequences is None
    assert any("tokenizer.train" in note for note in report.notes)


# --------------------------------------------------------------------------- the command


def test_check_command_table_and_exit_code(run_cli, sentiment_recipe):
    result = run_cli("check", "--recipe", sentiment_recipe)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["train", "40", "0"] for line in lines), result.stdout
    assert "negative: 20, positive: 20" in result.stdout
    assert "no problems found" in result.stdout


def test_check_command_errors_exit_1(run_cli, sentiment_recipe):
    result = run_cli("check", "--recipe", sentiment_recipe, "--set", "data.label=lable")
    assert result.exit_code == 1
    assert "error [missing_column]" in result.stdout
    assert "no column 'lable' (data.label)" in result.stdout
    assert "hint: did you mean --set data.label=label?" in result.stdout
    assert "3 errors" in result.stdout
    assert "Traceback" not in result.output


def test_check_command_bad_recipe_exits_2(run_cli, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("task: classification\nmodel: {name: x}\ntrian: {epochs: 1}\n", encoding="utf-8")
    result = run_cli("check", "--recipe", recipe)
    assert result.exit_code == 2
    assert f"{recipe}:3: trian: unknown key; did you mean `train.epochs`?" in result.stderr


def test_check_json_shape(run_cli, sentiment_recipe):
    result = run_cli("check", "--recipe", sentiment_recipe, "--set", "data.max_length=10", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"recipe", "task", "ok", "errors", "warnings", "max_length", "tokenizer"} | {
        "splits",
        "findings",
        "notes",
    }
    assert report["ok"] is True and report["errors"] == 0 and report["warnings"] >= 1
    assert list(report["splits"]) == ["train", "validation", "test"]
    train = report["splits"]["train"]
    assert train["rows"] == 40 and train["labels"] == {"negative": 20, "positive": 20}
    assert set(train["tokens"]) == {
        "counted",
        "p50",
        "p90",
        "p99",
        "max",
        "mean",
        "truncated",
        "truncated_share",
    }
    assert set(report["findings"][0]) == {"level", "code", "split", "message", "hint"}


def test_check_json_with_errors_exits_1(run_cli, sentiment_recipe):
    result = run_cli("check", "--recipe", sentiment_recipe, "--set", "data.text=txet", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert {f["code"] for f in report["findings"]} == {"missing_column"}


def test_check_appears_in_help_after_predict(run_cli):
    result = run_cli("--help")
    commands = [
        line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()
    ]
    assert commands.index("check") > commands.index("predict")
    assert "bertkit check --recipe" in run_cli("check", "--help").stdout


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_check_on_sst2(tmp_path):
    from bertkit.models import packaged_model_dir

    if not (SST2 / "train.tsv").is_file():
        pytest.skip(f"{SST2} is absent")
    if packaged_model_dir("minilm") is None:
        pytest.skip("the minilm weights package is not installed")
    recipe = write_recipe(
        tmp_path,
        Path("minilm"),
        data={
            "train": str(SST2 / "train.tsv"),
            "validation": str(SST2 / "dev.tsv"),
            "text": "sentence",
            "label": "label",
            "max_length": 64,
        },
    )
    report = check(recipe)
    assert report.ok, [f.message for f in report.errors]
    assert report.splits["train"].rows == 67_349
    assert report.splits["validation"].rows == 872
    assert set(report.splits["train"].labels) == {"0", "1"}
    assert report.splits["train"].tokens.counted == 67_349
