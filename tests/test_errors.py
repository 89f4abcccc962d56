"""Every bad input ends in one readable message, the right exit code, no traceback and no run left behind.

One table row per (bad input, command): the test builds the input in a temporary folder,
runs the command through the CLI, and checks the exit code, that the message names the
offending file, line or key, that a hint follows, and that no run directory was written.
Then: predicting files with bad lines in the middle, and the NaN-loss guard.
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bertkit.errors import TrainingError

Build = Callable[[SimpleNamespace], list[str]]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy 2-core machine is not slowed further."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_classifier(folder: Path, model_dir: Path, *, pair: bool) -> Path:
    """An untrained tiny classifier folder that says how it was trained (as bertkit writes it)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig.from_pretrained(str(model_dir))
    config.num_labels = 2
    config.id2label = {0: "negative", 1: "positive"}
    config.label2id = {"negative": 0, "positive": 1}
    config.problem_type = "single_label_classification"
    config.update({"bertkit": {"max_length": 32, "text_pair": pair, "threshold": 0.5, "separator": None}})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir) -> SimpleNamespace:
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("error-models")
    no_mask = root / "no-mask-tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tokenizer.mask_token = None
    tokenizer.save_pretrained(no_mask)
    return SimpleNamespace(
        single=save_classifier(root / "single", tiny_model_dir, pair=False),
        pair=save_classifier(root / "pair", tiny_model_dir, pair=True),
        no_mask=no_mask,
    )


@pytest.fixture
def env(
    tmp_path, monkeypatch, tiny_model_dir, tiny_sentiment_files, tiny_corpus_file, models
) -> SimpleNamespace:
    monkeypatch.setenv("BERTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return SimpleNamespace(
        tmp=tmp_path,
        model=tiny_model_dir,
        data=tiny_sentiment_files,
        corpus=tiny_corpus_file,
        models=models,
        runs=tmp_path / "runs",
        recipe=tmp_path / "recipe.yaml",
    )


# --------------------------------------------------------------------------- input builders


def rows(env: SimpleNamespace, split: str = "train") -> list[list[str]]:
    with (env.data / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return [[r["text"], r["label"]] for r in csv.DictReader(handle)]


def write_table(path: Path, table: list[list[str]], header=("text", "label"), delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=delimiter, lineterminator="\n").writerows([list(header), *table])
    return path


def with_label(env: SimpleNamespace, line: int, label: str, split: str = "train") -> Path:
    """A copy of a tiny split whose file line `line` carries `label`."""
    table = rows(env, split)
    table[line - 2][1] = label
    return write_table(env.tmp / f"{split}.csv", table)


def broken_line(env: SimpleNamespace, line: int, raw: bytes, name: str = "train.csv") -> Path:
    """A copy of the tiny train split whose file line `line` is replaced by `raw` bytes."""
    lines = (env.data / "train.csv").read_bytes().splitlines()
    lines[line - 1] = raw
    path = env.tmp / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def recipe(env: SimpleNamespace, task: str = "classification", **sections: Any) -> dict[str, Any]:
    """A tiny recipe (train + validation of the tiny data); sections merge over it."""
    data = {"train": str(env.data / "train.csv"), "validation": str(env.data / "validation.csv")}
    if task == "mlm":
        data = {"train": str(env.corpus), "max_length": 32}
    out: dict[str, Any] = {
        "task": task,
        "model": {"name": str(env.model)},
        "data": data,
        "train": {"max_steps": 1, "batch_size": 8},
        "output": {"root": str(env.runs)},
    }
    for key, value in sections.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def recipe_file(env: SimpleNamespace, content: dict[str, Any] | str) -> Path:
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    env.recipe.write_text(text, encoding="utf-8")
    return env.recipe


# Each data/recipe problem is a function env -> recipe (a mapping, or raw YAML text).
RecipeBuild = Callable[[SimpleNamespace], "dict[str, Any] | str"]


def _empty_file(env):
    (env.tmp / "train.csv").write_text("", encoding="utf-8")
    return recipe(env, data={"train": str(env.tmp / "train.csv")})


def _header_only(env):
    (env.tmp / "train.csv").write_text("text,label\n", encoding="utf-8")
    return recipe(env, data={"train": str(env.tmp / "train.csv")})


def _unknown_extension(env):
    shutil.copy(env.data / "train.csv", env.tmp / "train.xlsx")
    return recipe(env, data={"train": str(env.tmp / "train.xlsx")})


def _ragged_tsv(env):
    path = write_table(env.tmp / "train.tsv", rows(env), delimiter="\t")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] += "\textra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return recipe(env, data={"train": str(path)})


def _regression_word(env):
    table = [[text, str(i % 5 + 0.5)] for i, (text, _) in enumerate(rows(env))]
    table[5][1] = "high"
    path = write_table(env.tmp / "train.csv", table)
    return recipe(env, data={"train": str(path)}, labels={"type": "regression"})


def _single_class(env):
    table = [[text, "positive"] for text, _ in rows(env)]
    return recipe(env, data={"train": str(write_table(env.tmp / "train.csv", table))})


def _missing_label_column(env):
    path = write_table(env.tmp / "train.csv", rows(env), header=("text", "stars"))
    return recipe(env, data={"train": str(path)})


def _csv_corpus_column(env):
    path = write_table(env.tmp / "corpus.csv", rows(env))
    return recipe(env, "mlm", data={"train": str(path), "text": "txet"})


def _blank_corpus(env):
    (env.tmp / "corpus.txt").write_text("\n  \n\n", encoding="utf-8")
    return recipe(env, "mlm", data={"train": str(env.tmp / "corpus.txt")})


def _utf8_corpus(env):
    lines = env.corpus.read_bytes().splitlines()
    lines[1] = b"caf\xe9 " + lines[1]  # line 2: latin-1, not UTF-8
    path = env.tmp / "corpus.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return recipe(env, "mlm", data={"train": str(path)})


def _finished_run(env, task: str = "classification"):
    done = env.tmp / "done"
    done.mkdir()
    (done / "run.json").write_text('{"status": "complete"}', encoding="utf-8")
    (done / "metrics.json").write_text("{}", encoding="utf-8")
    return recipe(env, task, output={"dir": str(done)})


def _unwritable_output_dir(env):
    (env.tmp / "a-file").write_text("", encoding="utf-8")
    return recipe(env, output={"dir": str(env.tmp / "a-file" / "run")})


RECIPE_TEXT = """\
task: classification
model:
  name: {model}
data:
  train: {train}
train:
{train_section}
output:
  root: {runs}
"""


def _yaml(env, train_section: str, extra: str = ""):
    text = RECIPE_TEXT.format(
        model=env.model, train=env.data / "train.csv", train_section=train_section, runs=env.runs
    )
    return text + extra


@dataclass(frozen=True)
class Problem:
    """A bad input given through a recipe, and what every command must say about it."""

    name: str
    build: RecipeBuild
    commands: tuple[str, ...]
    code: int
    says: tuple[str, ...]
    check_code: int = 1  # `bertkit check` reports a problem of a loaded recipe and exits 1


CLASSIFY = ("finetune", "check")
RECIPE_CMDS = ("finetune", "check", "validate")

PROBLEMS = [
    Problem(
        "misspelled-text-column",
        lambda env: recipe(env, data={"text": "txet"}),
        CLASSIFY,
        1,
        ("{data}/train.csv: no column 'txet' (data.text)", "did you mean --set data.text=text"),
    ),
    Problem(
        "missing-label-column",
        _missing_label_column,
        CLASSIFY,
        1,
        ("{tmp}/train.csv: no column 'label' (data.label); columns are: text, stars",),
    ),
    Problem("empty-file", _empty_file, CLASSIFY, 1, ("{tmp}/train.csv: the file is empty",)),
    Problem("header-only", _header_only, CLASSIFY, 1, ("{tmp}/train.csv: no data rows",)),
    Problem(
        "file-not-found",
        lambda env: recipe(env, data={"validation": str(env.tmp / "valid.csv")}),
        CLASSIFY,
        1,
        ("{tmp}/valid.csv: file not found",),
    ),
    Problem(
        "unknown-extension",
        _unknown_extension,
        CLASSIFY,
        1,
        ("{tmp}/train.xlsx: cannot tell the format from the extension .xlsx",),
    ),
    Problem(
        "invalid-utf8",
        lambda env: recipe(env, data={"train": str(broken_line(env, 3, b"the caf\xe9 was nice .,positive"))}),
        CLASSIFY,
        1,
        ("{tmp}/train.csv:3: not valid UTF-8 (byte 0xe9 at column 8)",),
    ),
    Problem(
        "ragged-csv",
        lambda env: recipe(env, data={"train": str(broken_line(env, 4, b"good,film,positive"))}),
        CLASSIFY,
        1,
        ("{tmp}/train.csv:4: expected 2 fields (text, label), found 3",),
    ),
    Problem(
        "ragged-tsv",
        _ragged_tsv,
        CLASSIFY,
        1,
        ("{tmp}/train.tsv:5: expected 2 fields (text, label), found 3",),
    ),
    Problem(
        "mixed-label-types",
        lambda env: recipe(env, data={"train": str(with_label(env, 5, "3"))}),
        CLASSIFY,
        1,
        ("{tmp}/train.csv:5: column 'label' mixes label types",),
    ),
    Problem(
        "empty-label",
        lambda env: recipe(env, data={"train": str(with_label(env, 6, ""))}),
        CLASSIFY,
        1,
        ("{tmp}/train.csv:6: empty label in column 'label'",),
    ),
    Problem(
        "whitespace-label",
        lambda env: recipe(env, data={"train": str(with_label(env, 7, "   "))}),
        CLASSIFY,
        1,
        ("{tmp}/train.csv:7: empty label in column 'label'",),
    ),
    Problem(
        "regression-label-not-a-number",
        _regression_word,
        CLASSIFY,
        1,
        ("{tmp}/train.csv:7: regression label 'high' in column 'label' is not a number",),
    ),
    Problem(
        "validation-label-unseen-in-train",
        lambda env: recipe(env, data={"validation": str(with_label(env, 3, "neutral", "validation"))}),
        CLASSIFY,
        1,
        (
            "{tmp}/validation.csv: 1 label(s) not seen in training: 'neutral'",
            "(first at {tmp}/validation.csv:3)",
        ),
    ),
    Problem("single-class-train", _single_class, CLASSIFY, 1, ("single label value 'positive'",)),
    Problem(
        "recipe-not-a-mapping",
        lambda env: "- task\n- model\n",
        RECIPE_CMDS,
        2,
        ("{recipe}: a recipe is a YAML mapping of sections",),
        check_code=2,
    ),
    Problem(
        "recipe-wrong-type",
        lambda env: _yaml(env, "  epochs: many"),
        RECIPE_CMDS,
        2,
        ("{recipe}:7: train.epochs: input should be a valid number",),
        check_code=2,
    ),
    Problem(
        "recipe-unknown-key",
        lambda env: _yaml(env, "  epochs: 1", "trian:\n  seed: 1\n"),
        RECIPE_CMDS,
        2,
        ("{recipe}:10: trian: unknown key; did you mean `train.seed`?",),
        check_code=2,
    ),
    Problem(
        "negative-learning-rate",
        lambda env: _yaml(env, "  learning_rate: -0.001"),
        RECIPE_CMDS,
        2,
        ("{recipe}:7: train.learning_rate: input should be greater than 0",),
        check_code=2,
    ),
    *(
        Problem(
            f"max-length-above-model-limit-{task}",
            lambda env, task=task: recipe(env, task, data={"max_length": 512}),
            commands,
            2,
            ("data.max_length: 512 is above the model's limit of 128 tokens", "--set data.max_length=128"),
        )
        for task, commands in (("classification", CLASSIFY), ("mlm", ("pretrain",)))
    ),
    *(
        Problem(
            f"hub-model-unreachable-{task}",
            lambda env, task=task: recipe(env, task, model={"name": "no-such-org/no-such-model"}),
            commands,
            1,
            ("no-such-org/no-such-model: cannot load the tokenizer: not a local folder", "HF_HUB_OFFLINE"),
        )
        for task, commands in (("classification", CLASSIFY), ("mlm", ("pretrain",)))
    ),
    *(
        Problem(
            f"model-folder-missing-{task}",
            lambda env, task=task: recipe(env, task, model={"name": str(env.tmp / "my-model")}),
            commands,
            1,
            ("{tmp}/my-model: no such model folder",),
        )
        for task, commands in (("classification", CLASSIFY), ("mlm", ("pretrain",)))
    ),
    Problem(
        "tokenizer-without-mask-token",
        lambda env: recipe(env, "mlm", model={"tokenizer": str(env.models.no_mask)}),
        ("pretrain", "check"),
        1,
        ("{no_mask}: the tokenizer has no mask token",),
    ),
    Problem(
        "corpus-not-found",
        lambda env: recipe(env, "mlm", data={"train": str(env.tmp / "c.txt")}),
        ("pretrain", "check"),
        1,
        ("{tmp}/c.txt: no corpus files found",),
    ),
    Problem(
        "corpus-unknown-extension",
        lambda env: recipe(env, "mlm", data={"train": str(shutil.copy(env.corpus, env.tmp / "corpus.raw"))}),
        ("pretrain", "check"),
        1,
        ("{tmp}/corpus.raw: cannot tell the format from the extension .raw",),
    ),
    Problem(
        "corpus-invalid-utf8",
        _utf8_corpus,
        ("pretrain", "check"),
        1,
        ("{tmp}/corpus.txt:2: not valid UTF-8",),
    ),
    Problem(
        "corpus-ragged-csv",
        lambda env: recipe(env, "mlm", data={"train": str(broken_line(env, 4, b"a,b,c", "corpus.csv"))}),
        ("pretrain", "check"),
        1,
        ("{tmp}/corpus.csv:4: expected 2 fields (text, label), found 3",),
    ),
    Problem(
        "corpus-missing-column",
        _csv_corpus_column,
        ("pretrain", "check"),
        1,
        ("{tmp}/corpus.csv: no column 'txet'; columns are: text, label",),
    ),
    Problem(
        "corpus-only-blank-lines",
        _blank_corpus,
        ("pretrain", "check"),
        1,
        ("{tmp}/corpus.txt: the corpus holds no text",),
    ),
    *(
        Problem(
            f"run-dir-holds-a-finished-run-{task}",
            lambda env, task=task: _finished_run(env, task),
            (command,),
            1,
            ("{tmp}/done: already holds a finished run", "--overwrite"),
        )
        for task, command in (("classification", "finetune"), ("mlm", "pretrain"))
    ),
    Problem(
        "run-dir-cannot-be-written",
        _unwritable_output_dir,
        ("finetune",),
        1,
        ("{tmp}/a-file/run: cannot write the run directory",),
    ),
]


def _recipe_args(command: str, path: Path) -> list[str]:
    if command == "validate":
        return ["recipes", "validate", str(path)]
    return [command, "--recipe", str(path)]


def _fields(env: SimpleNamespace) -> dict[str, Any]:
    return {
        "tmp": env.tmp,
        "data": env.data,
        "recipe": env.recipe,
        "no_mask": env.models.no_mask,
        "model": env.model,
    }


def assert_clean_failure(result, env: SimpleNamespace, code: int, says: tuple[str, ...]) -> None:
    """Exit code, message naming the file/line/key, a hint, no traceback, no run directory."""
    output = result.output
    assert result.exit_code == code, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    for text in says:
        assert text.format(**_fields(env)) in output, output
    assert "hint:" in output or "did you mean" in output, output
    assert not env.runs.exists() or not any(env.runs.iterdir()), list(env.runs.iterdir())


@pytest.mark.parametrize(
    ("problem", "command"),
    [pytest.param(p, c, id=f"{p.name}-{c}") for p in PROBLEMS for c in p.commands],
)
def test_bad_recipe_input(run_cli, env, problem: Problem, command: str):
    path = recipe_file(env, problem.build(env))
    before = sorted(p.name for p in env.tmp.iterdir())
    result = run_cli(*_recipe_args(command, path))
    code = problem.check_code if command == "check" else problem.code
    assert_clean_failure(result, env, code, problem.says)
    created = sorted(set(p.name for p in env.tmp.iterdir()) - set(before) - {"cache"})
    assert created == [], created  # no half-written run anywhere, not only under output.root
    if problem.name.startswith("run-dir-holds-a-finished-run"):
        assert sorted(p.name for p in (env.tmp / "done").iterdir()) == ["metrics.json", "run.json"]


def test_bad_override_names_the_override(run_cli, env):
    path = recipe_file(env, recipe(env))
    for command in ("finetune", "check"):
        result = run_cli(command, "--recipe", path, "--set", "train.epochs")
        assert_clean_failure(result, env, 2, ("--set 'train.epochs': expected KEY=VALUE",))


def test_debug_shows_the_traceback(run_cli, env):
    path = recipe_file(env, recipe(env, data={"validation": str(env.tmp / "valid.csv")}))
    result = run_cli("--debug", "finetune", "--recipe", path)
    assert result.exit_code != 0
    assert "file not found" in str(result.exception)


# --------------------------------------------------------------------------- eval and predict


@dataclass(frozen=True)
class Call:
    """A bad input to eval or predict: env -> the full argument list."""

    name: str
    args: Build
    code: int
    says: tuple[str, ...]


def _eval_file(env, content: bytes | str, name: str = "eval.csv") -> Path:
    path = env.tmp / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _pairs(env) -> Path:
    return write_table(env.tmp / "pairs.csv", [["the film was good .", "it was fun"]], header=("a", "b"))


def _output_under_a_file(env) -> list[str]:
    (env.tmp / "a-file").write_text("", encoding="utf-8")
    source = _eval_file(env, "the film was good .\n", "texts.txt")
    return [
        "predict",
        "--model",
        str(env.models.single),
        "--input",
        str(source),
        "-o",
        str(env.tmp / "a-file/p.jsonl"),
    ]


def _output_is_a_folder(env) -> list[str]:
    (env.tmp / "out.jsonl").mkdir()
    source = _eval_file(env, "the film was good .\n", "texts.txt")
    return [
        "predict",
        "--model",
        str(env.models.single),
        "--input",
        str(source),
        "-o",
        str(env.tmp / "out.jsonl"),
    ]


def _eval(env, path: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--model",
        str(env.models.single),
        "--data",
        str(path),
        "--output",
        str(env.tmp / "report"),
        *extra,
    ]


CALLS = [
    Call(
        "eval-file-not-found",
        lambda env: _eval(env, env.tmp / "nope.csv"),
        1,
        ("{tmp}/nope.csv: file not found",),
    ),
    Call(
        "eval-empty-file",
        lambda env: _eval(env, _eval_file(env, "")),
        1,
        ("{tmp}/eval.csv: the file is empty",),
    ),
    Call(
        "eval-unknown-extension",
        lambda env: _eval(env, _eval_file(env, "text,label\na,positive\n", "eval.xlsx")),
        1,
        ("{tmp}/eval.xlsx: cannot tell the format from the extension .xlsx",),
    ),
    Call(
        "eval-invalid-utf8",
        lambda env: _eval(env, _eval_file(env, b"text,label\na,positive\ncaf\xe9,negative\n")),
        1,
        ("{tmp}/eval.csv:3: not valid UTF-8",),
    ),
    Call(
        "eval-ragged-row",
        lambda env: _eval(env, _eval_file(env, "text,label\na,positive\nb,c,negative\n")),
        1,
        ("{tmp}/eval.csv:3: expected 2 fields (text, label), found 3",),
    ),
    Call(
        "eval-missing-label-column",
        lambda env: _eval(env, _eval_file(env, "text,stars\na,5\n")),
        1,
        (
            "{tmp}/eval.csv: no column 'label' (--label-column); columns are: text, stars",
            "give --label-column the column that holds it",
        ),
    ),
    Call(
        "eval-empty-label",
        lambda env: _eval(env, _eval_file(env, "text,label\na,positive\nb,\n")),
        1,
        ("{tmp}/eval.csv:3: empty label in column 'label'",),
    ),
    Call(
        "eval-label-the-model-does-not-know",
        lambda env: _eval(env, _eval_file(env, "text,label\na,positive\nb,neutral\n")),
        1,
        ("{tmp}/eval.csv: 1 label(s) not seen in training: 'neutral' (first at {tmp}/eval.csv:3)",),
    ),
    Call(
        "predict-pairs-to-a-single-text-model",
        lambda env: [
            "predict",
            "--model",
            str(env.models.single),
            "-i",
            str(_pairs(env)),
            "--text-column",
            "a",
            "--text-pair",
            "b",
        ],
        1,
        ("{tmp}/pairs.csv: the model was trained on single texts, but pairs were given",),
    ),
    Call(
        "predict-single-texts-to-a-pair-model",
        lambda env: [
            "predict",
            "--model",
            str(env.models.pair),
            "-i",
            str(_pairs(env)),
            "--text-column",
            "a",
        ],
        1,
        ("{tmp}/pairs.csv: the model was trained on sentence pairs, but no second text was given",),
    ),
    Call(
        "predict-missing-text-column",
        lambda env: ["predict", "--model", str(env.models.single), "-i", str(_pairs(env))],
        1,
        ("{tmp}/pairs.csv:2: no column 'text'; columns are: a, b", "--text-column"),
    ),
    Call(
        "fill-mask-query-without-mask",
        lambda env: ["predict", "--model", str(env.model), "the film was good ."],
        1,
        ("no [MASK] in 'the film was good .'",),
    ),
    Call(
        "predict-output-cannot-be-written",
        _output_under_a_file,
        2,
        ("{tmp}/a-file/p.jsonl: cannot write the output",),
    ),
    Call(
        "predict-model-folder-missing",
        lambda env: ["predict", "--model", str(env.tmp / "no-model"), "the film was good ."],
        1,
        ("{tmp}/no-model: no such folder",),
    ),
    pytest.param(
        Call(
            "predict-input-not-found",
            lambda env: ["predict", "--model", str(env.models.single), "-i", str(env.tmp / "nope.txt")],
            1,
            ("{tmp}/nope.txt: file not found",),
        ),
    ),
    pytest.param(
        Call(
            "predict-output-is-a-folder",
            _output_is_a_folder,
            2,
            ("{tmp}/out.jsonl",),
        ),
    ),
    pytest.param(
        Call(
            "eval-report-folder-cannot-be-written",
            lambda env: [
                "eval",
                "--model",
                str(env.models.single),
                "--data",
                str(_eval_file(env, "text,label\na,positive\n")),
                "--output",
                str(env.tmp / "eval.csv"),
            ],
            2,
            ("{tmp}/eval.csv",),
        ),
    ),
]


def _call_id(call: Any) -> str:
    return call.name if isinstance(call, Call) else call.values[0].name


@pytest.mark.parametrize("call", CALLS, ids=[_call_id(c) for c in CALLS])
def test_bad_eval_or_predict_input(run_cli, env, call: Call):
    result = run_cli(*call.args(env))
    assert_clean_failure(result, env, call.code, call.says)
    assert not list(env.tmp.glob(".*.tmp")), "no temporary output left behind"


def test_predict_arguments_with_output_write_it(run_cli, env):
    target = env.tmp / "p.jsonl"
    result = run_cli("predict", "--model", env.models.single, "the film was good .", "--output", target)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["text"] for row in rows] == ["the film was good ."]


# --------------------------------------------------------------------------- bad lines mid-file


GOOD = ["the film was good .", "the food was bad .", "what a lovely meal .", "the staff were rude ."]


def _input_with_bad_lines(env) -> tuple[Path, list[int]]:
    """100 JSONL rows (ids 0..99); lines 10, 50 and 77 are broken three different ways."""
    lines = [json.dumps({"id": i, "text": GOOD[i % 4]}) for i in range(100)]
    lines[9] = '{"id": 9, "text": "unterminated'  # line 10: not JSON
    lines[49] = '["a", "list"]'  # line 50: not an object
    lines[76] = json.dumps({"id": 76, "review": GOOD[0]})  # line 77: no text column
    path = env.tmp / "input.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [i for i in range(100) if i not in (9, 49, 76)]


def test_predict_stops_at_the_first_bad_line_and_writes_nothing(run_cli, env):
    source, _ = _input_with_bad_lines(env)
    output = env.tmp / "out" / "predictions.jsonl"
    result = run_cli("predict", "--model", env.models.single, "-i", source, "-o", output, "--batch-size", "2")
    assert_clean_failure(result, env, 1, (f"{source}:10: not valid JSON",))
    assert not output.exists()
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_predict_skips_bad_lines_and_keeps_every_good_row_once(run_cli, env, suffix):
    source, good = _input_with_bad_lines(env)
    output = env.tmp / f"predictions.{suffix}"
    result = run_cli(
        "predict",
        "--model",
        env.models.single,
        "-i",
        source,
        "-o",
        output,
        "--on-error",
        "skip",
        "--batch-size",
        "2",
    )
    assert result.exit_code == 0, result.output
    for line, what in ((10, "not valid JSON"), (50, "expected a JSON object"), (77, "has no 'text' value")):
        assert f"skipped {source}:{line}: " in result.stderr and what in result.stderr
    assert "3 skipped" in result.stderr
    if suffix == "jsonl":
        written = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    else:
        with output.open(newline="", encoding="utf-8") as handle:
            written = list(csv.DictReader(handle))
    assert [int(r["id"]) for r in written] == good  # none lost, none duplicated, in order
    assert all(r["predicted_label"] in ("negative", "positive") for r in written)


def test_predict_skips_ragged_csv_rows(run_cli, env):
    table = [[str(i), GOOD[i % 4]] for i in range(40)]
    source = write_table(env.tmp / "input.csv", table, header=("id", "text"))
    lines = source.read_text(encoding="utf-8").splitlines()
    lines[20] += ",extra"  # line 21
    lines[33] = "33"  # line 34
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(
        "predict", "--model", env.models.single, "-i", source, "--on-error", "skip", "--batch-size", "1"
    )
    assert result.exit_code == 0, result.output
    assert f"skipped {source}:21: expected 2 fields" in result.stderr
    assert f"skipped {source}:34: expected 2 fields" in result.stderr
    ids = [int(json.loads(line)["id"]) for line in result.stdout.splitlines()]
    assert ids == [i for i in range(40) if i not in (19, 32)]


# --------------------------------------------------------------------------- the NaN-loss guard


@pytest.fixture
def nan_from_step(monkeypatch):
    """Make the classifier's training loss NaN from the given optimizer step on (1-based).

    The encoder's states turn NaN, so the loss does whichever way the head reads them
    (padded batches or padding-free rows).
    """
    from transformers import BertModel

    original = BertModel.forward

    def install(step: int) -> None:
        calls = {"n": 0}

        @functools.wraps(original)
        def forward(self, *args, **kwargs):
            output = original(self, *args, **kwargs)
            if self.training:
                calls["n"] += 1
                if calls["n"] >= step:
                    output.last_hidden_state = output.last_hidden_state * float("nan")
                    if output.pooler_output is not None:
                        output.pooler_output = output.pooler_output * float("nan")
            return output

        monkeypatch.setattr(BertModel, "forward", forward)

    return install


def _nan_recipe(env, **train: Any):
    from bertkit.recipe import load_recipe

    settings = {"max_steps": 4, "batch_size": 8, "logging_steps": 1, "save_steps": 1, **train}
    path = recipe_file(
        env, recipe(env, data={"train": str(env.data / "train.csv"), "validation": None}, train=settings)
    )
    return load_recipe(path)


def _finite(checkpoint: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    return all(torch.isfinite(t).all() for t in load_file(checkpoint / "model.safetensors").values())


def test_a_nan_loss_stops_training_with_the_step_and_a_hint(env, nan_from_step):
    from bertkit.training.run import train_recipe as finetune

    nan_from_step(2)
    with pytest.raises(TrainingError) as caught:
        finetune(_nan_recipe(env))
    error = caught.value
    assert "the training loss became nan at step 2" in str(error)
    assert "learning_rate" in error.hint and "precision" in error.hint
    (run,) = list(env.runs.iterdir())
    assert not (run / "run.json").exists() and not (run / "model").exists()  # nothing looks finished
    assert not (env.runs / "latest").exists()
    good = run / "checkpoints" / "checkpoint-1"
    assert good.is_dir() and _finite(good)  # the last good checkpoint is kept


def test_a_nan_loss_saves_no_checkpoint_after_the_bad_step(env, nan_from_step):
    from bertkit.training.run import train_recipe as finetune

    nan_from_step(2)
    with pytest.raises(TrainingError):
        finetune(_nan_recipe(env))
    (run,) = list(env.runs.iterdir())
    checkpoints = sorted((run / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in checkpoints] == ["checkpoint-1"]
    assert all(_finite(p) for p in checkpoints)


def test_a_nan_loss_between_logging_steps_is_caught_at_its_step(env, nan_from_step):
    from bertkit.training.run import train_recipe as finetune

    nan_from_step(2)
    with pytest.raises(TrainingError, match="at step 2"):
        finetune(_nan_recipe(env, logging_steps=3, save_steps=1))
    (run,) = list(env.runs.iterdir())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-1"]
