"""The 24 problems a new user hit (shared/reviews/new-user-run/REPORT.md), one test or more each.

Each test names its point of the report. Point 1 (several processes hanging at
default settings) is tested in test_scaling.py, and the double-signal abort of point
22 in test_guard.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bertkit.errors import DataError, RecipeError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTKIT_CACHE", str(tmp_path / "cache"))


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rows(data: Path, split: str = "train") -> list[list[str]]:
    with (data / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


# --------------------------------------------------------------------------- silent wrong results


def test_02_limit_is_recorded_and_a_resume_keeps_it(run_cli, make_recipe, tmp_path):
    recipe, run = make_recipe(), tmp_path / "run"
    first = run_cli("finetune", "--recipe", recipe, "--limit", "20", "--set", f"output.dir={run}")
    assert first.exit_code == 0, first.output
    assert yaml.safe_load((run / "recipe.yaml").read_text())["data"]["limit"] == 20
    # The original recipe without --limit is another experiment: refused, not silently on 40 rows.
    other = run_cli("finetune", "--recipe", recipe, "--resume-from", run, "--set", "train.max_steps=4")
    assert other.exit_code == 1 and "data.limit (20 -> None)" in other.stderr
    resumed = run_cli(
        "finetune", "--recipe", run / "recipe.yaml", "--resume-from", run, "--set", "train.max_steps=4"
    )
    assert resumed.exit_code == 0, resumed.output
    assert "train: 40 rows" in resumed.stderr and "(first 20 used: limit)" in resumed.stderr


def test_03_a_tokenizer_never_replaces_a_models(run_cli, tmp_path, tiny_model_dir, tiny_corpus_file):
    model = tmp_path / "model"
    model.mkdir()
    for file in tiny_model_dir.iterdir():
        (model / file.name).write_bytes(file.read_bytes())
    before = (model / "vocab.txt").read_bytes()
    refused = run_cli(
        "tokenizer", "train", "-i", tiny_corpus_file, "-o", model, "--vocab-size", "120", "--force"
    )
    assert refused.exit_code == 2 and "holds a model (config.json)" in refused.stderr
    assert (model / "vocab.txt").read_bytes() == before
    words = tmp_path / "words"
    assert (
        run_cli("tokenizer", "train", "-i", tiny_corpus_file, "-o", words, "--vocab-size", "120").exit_code
        == 0
    )
    again = run_cli("tokenizer", "train", "-i", tiny_corpus_file, "-o", words, "--vocab-size", "120")
    assert again.exit_code == 2 and "already holds files" in again.stderr and "--force" in again.stderr
    forced = run_cli(
        "tokenizer", "train", "-i", tiny_corpus_file, "-o", words, "--vocab-size", "120", "--force"
    )
    assert forced.exit_code == 0, forced.output


def test_04_labels_written_as_one_point_zero_are_classes(
    run_cli, make_recipe, tmp_path, tiny_sentiment_files
):
    coded = {"positive": "1.0", "negative": "0.0"}
    for split in ("train", "validation"):
        rows = [[text, coded[label]] for text, label in _rows(tiny_sentiment_files, split)]
        _csv(tmp_path / f"{split}.csv", ["text", "label"], rows)
    recipe = make_recipe(
        data={"train": str(tmp_path / "train.csv"), "validation": str(tmp_path / "validation.csv")}
    )
    result = run_cli("finetune", "--recipe", recipe, "--set", f"output.dir={tmp_path / 'run'}")
    assert result.exit_code == 0, result.output
    assert (
        "single-label: the column holds integer class ids (written 0.0, 1.0: read as 0, 1)" in result.stderr
    )
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification"
    assert config["id2label"] == {"0": "0", "1": "1"}


def test_06_two_runs_never_write_one_directory(make_recipe, tmp_path):
    from bertkit.errors import RunError
    from bertkit.recipe import load_recipe
    from bertkit.training.run import train_recipe as finetune

    run = tmp_path / "run"
    run.mkdir()
    lock = run / ".lock"
    # A run that is still going (this very process stands in for it).
    import socket

    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    recipe = load_recipe(make_recipe(), [f"output.dir={run}"])
    with pytest.raises(RunError, match="another bertkit run is writing it"):
        finetune(recipe)
    # A lock left by a run that died is taken over, and released at the end.
    lock.write_text(json.dumps({"pid": 2**22 + 17, "host": socket.gethostname(), "started": "then"}))
    result = finetune(recipe)
    assert result.run.complete and not lock.exists()


def test_12_a_finished_run_is_not_trained_past_its_end(run_cli, make_recipe, tmp_path):
    recipe, run = make_recipe(), tmp_path / "run"
    assert run_cli("finetune", "--recipe", recipe, "--set", f"output.dir={run}").exit_code == 0
    metrics = json.loads((run / "metrics.json").read_text())["validation"]
    again = run_cli("finetune", "--recipe", recipe, "--set", f"output.dir={run}", "--resume")
    assert again.exit_code == 1
    assert "the run is complete (checkpoint-2 is its last step)" in again.stderr
    assert "--set train.max_steps=4" in again.stderr
    # Killed after its last checkpoint, before run.json: finished from it, no step trained again.
    (run / "run.json").unlink()
    finished = run_cli("finetune", "--recipe", recipe, "--set", f"output.dir={run}", "--resume")
    assert finished.exit_code == 0, finished.output
    assert "finished from its last checkpoint" in finished.stdout
    assert json.loads((run / "run.json").read_text())["steps"] == 2
    assert not (run / "checkpoints" / "checkpoint-3").exists()
    again = json.loads((run / "metrics.json").read_text())["validation"]
    assert again["loss"] == pytest.approx(metrics["loss"], rel=1e-6)


def test_13_tsvs_quoted_by_the_csv_module_are_read_without_their_quotes(run_cli, make_recipe, tmp_path):
    path = tmp_path / "train.tsv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text", "label"])
        for i in range(20):
            writer.writerow([f'the film was {"good" if i % 2 else "bad"} , he said "wow" .', i % 2])
    assert '""wow""' in path.read_text()
    from bertkit.io.reading import read_table

    table = read_table(path)
    assert table.columns["text"][0] == 'the film was bad , he said "wow" .'
    report = run_cli("check", "--recipe", make_recipe(data={"train": str(path), "validation": None}))
    assert "fields are in double quotes, as Python's csv module and pandas write TSV" in report.stdout


def test_19_predict_keeps_rows_without_text_and_never_overwrites_a_column(run_cli, trained_run, tmp_path):
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"text": "the film was good ."}\n{"text": null}\n{"text": "the food was bad ."}\n')
    result = run_cli("predict", "--model", trained_run, "--input", rows, "--output", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    with (tmp_path / "out.csv").open(newline="") as handle:
        out = list(csv.DictReader(handle))
    assert len(out) == 3 and out[1]["predicted_label"] == "" and out[1]["prob_positive"] == ""
    assert out[0]["predicted_label"] in ("positive", "negative")
    clash = tmp_path / "clash.csv"
    _csv(clash, ["text", "predicted_label"], [["the film was good .", "mine"]])
    refused = run_cli("predict", "--model", trained_run, "--input", clash, "--output", tmp_path / "o.csv")
    assert refused.exit_code == 1
    assert "has a column 'predicted_label', which the predictions would overwrite" in refused.stderr
    assert not (tmp_path / "o.csv").exists()


def test_20_integer_labels_read_as_the_models_class_ids_are_named(run_cli, trained_run, tmp_path):
    rows = [["the film was good .", 1], ["the food was bad .", 0]]
    data = _csv(tmp_path / "coded.csv", ["text", "label"], rows)
    result = run_cli("eval", "--model", trained_run, "--data", data, "--output", tmp_path / "report")
    assert result.exit_code == 0, result.output
    said = "labels 0, 1 are read as the model's class ids (0 = negative, 1 = positive)"
    assert said in " ".join(result.stderr.split())
    assert said in (tmp_path / "report" / "report.md").read_text()


def test_21_the_label_column_inside_the_text_is_refused(run_cli, make_recipe):
    result = run_cli("check", "--recipe", make_recipe(data={"text": ["text", "label"]}))
    assert result.exit_code == 1
    assert (
        "the label column 'label' is also a text column (data.text): the model would read the answer"
        in result.stdout
    )


def test_17_a_class_named_none_is_a_class_and_is_pointed_out(
    run_cli, make_recipe, tmp_path, tiny_sentiment_files
):
    rows = [[text, "none" if label == "negative" else label] for text, label in _rows(tiny_sentiment_files)]
    train = _csv(tmp_path / "train.csv", ["text", "label"], rows)
    result = run_cli("check", "--recipe", make_recipe(data={"train": str(train), "validation": None}))
    assert result.exit_code == 0, result.output
    assert "[label_looks_missing]" in result.stdout and "labels 'none'" in result.stdout
    assert "none: 20" in result.stdout


# --------------------------------------------------------------------------- crashes and hangs


def test_05_a_batch_with_no_masked_token_still_trains(run_cli, tmp_path, tiny_model_dir):
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(["the"] * 113) + "\n", encoding="utf-8")
    recipe = tmp_path / "mlm.yaml"
    recipe.write_text(
        f"task: mlm\nmodel: {{name: {tiny_model_dir}}}\n"
        f"data: {{train: {corpus}, validation: {corpus}, max_length: 8}}\n"
        "train: {batch_size: 1, max_steps: 20}\n",
        encoding="utf-8",
    )
    result = run_cli("pretrain", "--recipe", recipe, "--set", f"output.dir={tmp_path / 'run'}")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["steps"] == 20


def test_05_every_sequence_predicts_at_least_one_token(tiny_model_dir):
    import torch
    from transformers import AutoTokenizer

    from bertkit.tasks.mlm.masking import MlmCollator

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("the film was good .")["input_ids"]
    collator = MlmCollator(tokenizer, probability=0.01, whole_word=False)
    torch.manual_seed(0)
    batch = collator([{"input_ids": ids, "attention_mask": [1] * len(ids)} for _ in range(32)])
    assert ((batch["labels"] != -100).sum(dim=1) >= 1).all()


def test_07_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    from bertkit.recipe import load_recipe

    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*lines, "task: classification", "model: {name: x}"]) + "\n")
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="expands to more than 10,000 values"):
        load_recipe(path)
    assert time.perf_counter() - start < 5


def test_09_max_length_beyond_the_position_embeddings_is_an_error_in_check(run_cli, make_recipe):
    result = run_cli("check", "--recipe", make_recipe(data={"max_length": 256}))
    assert result.exit_code == 1
    assert "data.max_length: 256 is above the model's limit of 128 tokens" in result.stdout
    assert "max_position_embeddings 128" in result.stdout


def test_10_an_unknown_or_missing_device_is_a_usage_error(run_cli, make_recipe):
    for device, says in (
        ("tpu", "'tpu' is not one of 'cpu', 'cuda', 'mps'"),
        ("cuda", "--device cuda: this torch"),
    ):
        result = run_cli("finetune", "--recipe", make_recipe(), "--device", device)
        assert result.exit_code == 2 and says in result.stderr
        assert "Traceback" not in result.output


def test_11_utf16_files_are_refused_and_cr_only_files_read(
    run_cli, make_recipe, tmp_path, tiny_sentiment_files
):
    text = (tiny_sentiment_files / "train.csv").read_text(encoding="utf-8")
    wide = tmp_path / "u16.csv"
    wide.write_text(text.replace("\n", "\r\n"), encoding="utf-16")  # as Excel writes "Unicode text"
    result = run_cli("check", "--recipe", make_recipe(data={"train": str(wide)}))
    assert (
        result.exit_code == 1 and "the file is UTF-16" in result.stdout and "iconv -f utf-16" in result.stdout
    )
    old_mac = tmp_path / "cr.csv"
    old_mac.write_bytes(text.replace("\n", "\r").encode())
    from bertkit.io.reading import read_table

    assert len(read_table(old_mac)) == len(_rows(tiny_sentiment_files))


def test_14_a_key_given_twice_is_refused(tmp_path):
    from bertkit.recipe import load_recipe

    path = tmp_path / "dup.yaml"
    path.write_text("task: classification\nmodel: {name: x}\ntrain: {epochs: 1}\ntrain: {epochs: 5}\n")
    with pytest.raises(RecipeError, match=r"dup\.yaml:4: train: given twice \(first at line 3\)"):
        load_recipe(path)


def test_15_damaged_weights_unwritable_reports_and_unknown_trackers(
    run_cli, make_recipe, tmp_path, tiny_model_dir, trained_run
):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for file in tiny_model_dir.iterdir():
        (damaged / file.name).write_bytes(file.read_bytes())
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_cli("finetune", "--recipe", make_recipe(model={"name": str(damaged)}))
    assert result.exit_code == 1 and "the weights file is damaged" in result.stderr
    assert not (tmp_path / "runs").exists()

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    report = run_cli("eval", "--model", trained_run, "--output", blocker / "report")
    assert report.exit_code == 2 and "cannot write there" in report.stderr

    trackers = run_cli("check", "--recipe", make_recipe(train={"report_to": ["tensorbord"]}))
    assert trackers.exit_code == 1 and "did you mean 'tensorboard'?" in trackers.stdout


def test_22_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, make_recipe):
    recipe = make_recipe(train={"max_steps": 100_000, "save_steps": 2})
    run = tmp_path / "run"
    env = {**os.environ, "BERTKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "bertkit",
        "finetune",
        "--recipe",
        str(recipe),
        "--set",
        f"output.dir={run}",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marker = run / "checkpoints" / "checkpoint-2" / "bertkit.json"
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)  # what `timeout` and schedulers send
    _, stderr = process.communicate(timeout=120)
    message = stderr.decode()
    assert process.returncode == 130, message[-2000:]
    assert "stopped (SIGTERM) at step" in message
    assert f"resume with: bertkit finetune --recipe {run / 'recipe.yaml'} --resume-from {run}" in message
    step = int(message.split("stopped (SIGTERM) at step ")[1].split(";")[0])
    assert (run / "checkpoints" / f"checkpoint-{step}" / "bertkit.json").is_file()


def test_23_a_huge_line_is_cut_before_the_tokenizer_sees_it(trained_run):
    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.predict import predict_texts

    classifier = load_classifier(trained_run)
    seen: list[int] = []
    tokenizer = classifier.tokenizer

    class Recording:
        def __call__(self, texts, *args, **kwargs):
            seen.extend(len(t) for t in texts)
            return tokenizer(texts, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(tokenizer, name)

    classifier.tokenizer = Recording()
    huge = "the film was good . " * 500_000  # 10 MB
    (prediction,) = predict_texts(classifier, [huge])
    assert prediction["predicted_label"] in ("positive", "negative")
    assert max(seen) <= classifier.max_length * 100


# --------------------------------------------------------------------------- hints and wording


def test_08_the_next_step_names_the_run_just_written(run_cli, make_recipe, tmp_path):
    run = tmp_path / "elsewhere" / "run"
    result = run_cli("finetune", "--recipe", make_recipe(), "--set", f"output.dir={run}")
    assert f"bertkit eval --model {run}" in result.stdout
    assert f'bertkit predict --model {run} "some text"' in result.stdout


def test_16_the_labels_stay_in_view_on_an_80_column_terminal(monkeypatch, make_recipe):
    from rich.console import Console

    import bertkit.console
    from bertkit.checks import check_recipe
    from bertkit.cli.check import render_report
    from bertkit.recipe import load_recipe

    narrow = Console(width=80, record=True, highlight=False)
    monkeypatch.setattr(bertkit.console, "out", narrow)
    render_report(check_recipe(load_recipe(make_recipe())))
    text = narrow.export_text()
    assert "labels: negative: 20, positive: 20" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_18_hints_name_options_that_exist(run_cli, trained_run, tmp_path, tiny_model_dir, tiny_corpus_file):
    excel = run_cli("predict", "--model", trained_run, "x", "--output", tmp_path / "x.xlsx")
    assert (
        excel.exit_code == 2
        and "--output-format" not in excel.stderr
        and ".jsonl, .csv or .tsv" in excel.stderr
    )
    column = run_cli("eval", "--model", trained_run, "--text-column", "nope")
    assert column.exit_code == 1 and "--text-column" in column.stderr and "data.text" not in column.stderr
    recipe = tmp_path / "mlm.yaml"
    recipe.write_text(
        f"task: mlm\nmodel: {{name: {tiny_model_dir}}}\n"
        f"data: {{train: {tiny_corpus_file}, validation_split: 0.2, max_length: 16}}\n"
        "train: {max_steps: 1}\n"
    )
    assert run_cli("pretrain", "--recipe", recipe, "--set", f"output.dir={tmp_path / 'mlm'}").exit_code == 0
    held_out = run_cli("eval", "--model", tmp_path / "mlm")
    assert (
        held_out.exit_code == 1
        and "carved from its training corpus (data.validation_split)" in held_out.stderr
    )


def test_24_cosmetics(run_cli, trained_run, tmp_path, tiny_corpus_file):
    from bertkit.cli.train import _training_line

    assert _training_line({"epoch": 0.263158, "runtime": 1.0}).startswith("trained 0.26 epochs")
    assert _training_line({"epoch": 1.0, "runtime": 1.0}).startswith("trained 1 epoch in")
    # The tokenizer's example is a line of the user's own corpus (Chinese text shows Chinese).
    chinese = tmp_path / "zh.txt"
    chinese.write_text("我爱北京天安门\n今天天气很好\n" * 50, encoding="utf-8")
    trained = run_cli("tokenizer", "train", "-i", chinese, "-o", tmp_path / "zh", "--vocab-size", "100")
    assert "example: 我 爱 北 京 天 安 门" in trained.stdout
    # Binary f1 and roc_auc name the class they score.
    result = run_cli("eval", "--model", trained_run)
    assert "f1 (positive: positive)" in result.stdout
    # Options that do not apply are refused: --resume with --resume-from.
    both = run_cli(
        "finetune", "--recipe", trained_run / "recipe.yaml", "--resume", "--resume-from", trained_run
    )
    assert both.exit_code == 2 and "--resume and --resume-from" in both.stderr


def test_24_packed_blocks_never_hold_two_separators_in_a_row(tmp_path, tiny_model_dir):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from bertkit.tasks.mlm.corpus import build_sequences
    from bertkit.tasks.mlm.recipe import MlmSection

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    docs = Dataset.from_dict(
        {"text": ["the film was good .", "a dull plot", "the food was bad and cold ."] * 20}
    )
    for max_length in range(8, 20):
        built, stats = build_sequences(docs, tokenizer, MlmSection(), max_length, seed=0)
        sep = tokenizer.sep_token_id
        for ids in built["input_ids"]:
            assert not any(a == b == sep for a, b in zip(ids, ids[1:], strict=False)), (max_length, ids)
            assert ids[1] != sep
        assert stats.dropped_tokens == 0
        assert all(n == max_length for n in built["length"][:-1])


def test_24_top_k_is_refused_where_it_does_not_apply(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    rows = [[text, f"{label}|extra"] for text, label in _rows(tiny_sentiment_files)]
    train = _csv(tmp_path / "multi.csv", ["text", "label"], rows)
    recipe = tmp_path / "multi.yaml"
    recipe.write_text(
        f"task: classification\nmodel: {{name: {tiny_model_dir}}}\ndata: {{train: {train}}}\n"
        "labels: {separator: '|'}\ntrain: {max_steps: 1}\n"
    )
    assert run_cli("finetune", "--recipe", recipe, "--set", f"output.dir={tmp_path / 'run'}").exit_code == 0
    result = run_cli("predict", "--model", tmp_path / "run", "--top-k", "2", "the film was good .")
    assert result.exit_code == 2 and "--top-k: ranks the labels of single-label models" in result.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir, tiny_sentiment_files):
    """A classifier run with named labels (negative, positive), trained for a few steps."""
    from bertkit.recipe import load_recipe
    from bertkit.training.run import train_recipe as finetune

    folder = tmp_path_factory.mktemp("new-user")
    recipe = folder / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "task": "classification",
                "model": {"name": str(tiny_model_dir)},
                "data": {
                    "train": str(tiny_sentiment_files / "train.csv"),
                    "validation": str(tiny_sentiment_files / "validation.csv"),
                },
                "train": {"max_steps": 4, "batch_size": 8, "learning_rate": 1e-3},
                "output": {"dir": str(folder / "run")},
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BERTKIT_CACHE", str(folder / "cache"))
        return finetune(load_recipe(recipe)).run.path


def test_data_errors_name_their_file(tmp_path):
    """Sanity: the readers' errors above are DataErrors, shown without a traceback."""
    from bertkit.io.reading import read_table

    path = tmp_path / "u.csv"
    path.write_bytes("text,label\n".encode("utf-16"))
    with pytest.raises(DataError, match=str(path)):
        read_table(path)
