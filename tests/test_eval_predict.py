"""`bertkit eval` and `bertkit predict` on one trained tiny run: reports, files, streams and errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from bertkit.errors import DataError

POSITIVE = "the film was good ."
NEGATIVE = "the food was awful , we will never come back ."


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy 2-core machine is not slowed further."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, tiny_sentiment_files):
    """A single-label run trained for a few steps; `folder/runs/latest` points at it."""
    folder = tmp_path_factory.mktemp("eval-predict")
    recipe = {
        "task": "classification",
        "model": {"name": str(tiny_model_dir)},
        "data": {
            "train": str(tiny_sentiment_files / "train.csv"),
            "validation": str(tiny_sentiment_files / "validation.csv"),
            "test": str(tiny_sentiment_files / "test.csv"),
        },
        "train": {"max_steps": 4, "batch_size": 8, "learning_rate": 1.0e-3, "seed": 7},
        "output": {"root": str(folder / "runs")},
    }
    path = folder / "sentiment.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")

    from bertkit.recipe import load_recipe
    from bertkit.training.run import train_recipe as finetune

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BERTKIT_CACHE", str(folder / "cache"))
        result = finetune(load_recipe(path))
    return SimpleNamespace(folder=folder, run=result.run.path, data=tiny_sentiment_files)


@pytest.fixture(scope="module")
def classifier(trained):
    from bertkit.tasks.classification.inference import load_classifier

    return load_classifier(trained.run)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one_by_one_logits(model_dir: Path, texts: list[str]) -> np.ndarray:
    """Logits from plain transformers, one unpadded text at a time: the reference."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True).eval()
    with torch.inference_mode():
        rows = [model(**tokenizer(text, return_tensors="pt")).logits[0].numpy() for text in texts]
    return np.stack(rows)


# --------------------------------------------------------------------------- eval


def test_eval_with_no_arguments_uses_the_latest_run(run_cli, trained, monkeypatch):
    monkeypatch.chdir(trained.folder)  # runs/latest is found relative to the working folder
    result = run_cli("eval")
    assert result.exit_code == 0, result.output
    report = trained.run / "eval" / "validation"
    assert "validation.csv: 12 examples" in result.stdout
    assert f"report: {report}/report.md" in result.stdout
    for name in ("metrics.json", "report.md", "errors.jsonl", "confusion_matrix.png"):
        assert (report / name).is_file(), name
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["n_examples"] == 12
    assert summary["labels"] == ["negative", "positive"]
    assert summary["problem"] == "single"
    assert "## Confusion matrix" in (report / "report.md").read_text()


def test_eval_metrics_match_a_direct_computation(trained, tmp_path):
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from bertkit.tasks.classification.evaluate import evaluate_classifier

    result = evaluate_classifier(trained.run, output=tmp_path / "report")
    rows = read_csv(trained.data / "validation.csv")
    texts = [r["text"] for r in rows]
    from bertkit.tasks.classification.inference import load_classifier

    logits = load_classifier(trained.run).logits(texts)
    # Batched, length-sorted inference gives the logits of one-by-one inference (the
    # tiny model's probabilities sit near 0.5, so ROC AUC is computed from these).
    np.testing.assert_allclose(logits, one_by_one_logits(trained.run / "model", texts), atol=1e-4)
    truth = np.array([["negative", "positive"].index(r["label"]) for r in rows])
    predicted = logits.argmax(axis=1)
    wide = logits.astype(np.float64)  # as the metrics do: float32 ties would rank differently
    shifted = np.exp(wide - wide.max(axis=1, keepdims=True))
    positive = (shifted / shifted.sum(axis=1, keepdims=True))[:, 1]

    assert result.n_examples == 12
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert result.metrics["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, positive), abs=1e-6)
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    assert saved["accuracy"] == pytest.approx(result.metrics["accuracy"])
    # The Trainer's own evaluation at the end of training agrees.
    trained_metrics = json.loads((trained.run / "metrics.json").read_text())["validation"]
    assert trained_metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    # errors.jsonl holds exactly the misclassified rows.
    errors = read_jsonl(tmp_path / "report" / "errors.jsonl")
    assert sorted(e["index"] for e in errors) == sorted(np.flatnonzero(predicted != truth).tolist())


def test_eval_split_test_as_json(run_cli, trained):
    result = run_cli("eval", "--model", trained.run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_examples"] == 12
    assert payload["data"].endswith("test.csv")
    assert payload["report"] == str(trained.run / "eval" / "test")
    assert (trained.run / "eval" / "test" / "metrics.json").is_file()
    # errors.jsonl lists every mistake, so accuracy is the share of rows not in it.
    mistakes = (trained.run / "eval" / "test" / "errors.jsonl").read_text().splitlines()
    assert payload["metrics"]["accuracy"] == pytest.approx(1 - len(mistakes) / 12)


@pytest.mark.parametrize("ids", [False, True], ids=["names", "integer-ids"])
def test_eval_on_a_file_with_other_column_names(run_cli, trained, tmp_path, ids):
    rows = read_csv(trained.data / "test.csv")[:8]
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for r in rows:
            writer.writerow([r["text"], int(r["label"] == "positive") if ids else r["label"]])
    out = tmp_path / "report"
    result = run_cli(
        "eval",
        "--model",
        trained.run,
        "--data",
        path,
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--output",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_examples"] == 8
    assert payload["report"] == str(out)
    # Integer ids and label names are the same labels, so the scores are the same.
    reference = read_csv(trained.data / "test.csv")[:8]
    logits = one_by_one_logits(trained.run / "model", [r["text"] for r in reference])
    truth = np.array([r["label"] == "positive" for r in reference], dtype=int)
    assert payload["metrics"]["accuracy"] == pytest.approx(float((logits.argmax(axis=1) == truth).mean()))


def test_eval_names_labels_the_model_does_not_know(run_cli, trained, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("text,label\nthe film was good .,positive\nthe film was ok .,neutral\n", encoding="utf-8")
    result = run_cli("eval", "--model", trained.run, "--data", path)
    assert result.exit_code == 1
    assert "'neutral' (first at" in result.stderr
    assert f"{path}:3" in result.stderr


def test_eval_with_no_runs_says_so(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("eval")
    assert result.exit_code == 1
    assert "no runs yet" in result.stderr


def test_eval_a_model_folder_needs_data(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("eval", "--model", trained.run / "model")
    assert result.exit_code == 2
    assert "--data" in result.stderr
    ok = run_cli("eval", "--model", trained.run / "model", "--data", trained.data / "test.csv")
    assert ok.exit_code == 0, ok.output
    (report,) = (tmp_path / "eval").iterdir()
    assert (report / "metrics.json").is_file()


# --------------------------------------------------------------------------- predict texts


def test_predict_prints_a_label_per_text(run_cli, trained, classifier):
    result = run_cli("predict", "--model", trained.run, POSITIVE, NEGATIVE)
    assert result.exit_code == 0, result.output
    expected = classifier.labels.names[int(classifier.logits([POSITIVE])[0].argmax())]
    line = next(line for line in result.stdout.splitlines() if line.startswith(POSITIVE))
    assert expected in line.split()
    assert any(line.startswith(NEGATIVE) for line in result.stdout.splitlines())


def test_predict_json(run_cli, trained, classifier):
    result = run_cli("predict", "--model", trained.run, "--json", POSITIVE, NEGATIVE)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [p["text"] for p in payload] == [POSITIVE, NEGATIVE]
    logits = classifier.logits([POSITIVE, NEGATIVE])
    for item, row in zip(payload, logits, strict=True):
        assert set(item["probabilities"]) == {"negative", "positive"}
        assert sum(item["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert item["predicted_label"] == ["negative", "positive"][int(row.argmax())]
        assert item["predicted_score"] == pytest.approx(max(item["probabilities"].values()), abs=1e-6)


def test_predict_top_k(run_cli, trained):
    result = run_cli("predict", "--model", trained.run, "--json", "--top-k", "2", POSITIVE)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    top = item["top_k"]
    assert [t["label"] for t in top] == sorted(
        item["probabilities"], key=item["probabilities"].get, reverse=True
    )
    assert top[0]["label"] == item["predicted_label"]
    assert top[0]["score"] >= top[1]["score"]
    table = run_cli("predict", "--model", trained.run, "--top-k", "2", POSITIVE)
    assert "negative" in table.stdout
    assert "positive" in table.stdout


def test_predict_needs_texts_or_an_input(run_cli, trained, tmp_path):
    assert run_cli("predict", "--model", trained.run).exit_code == 2
    both = run_cli("predict", "--model", trained.run, "--input", tmp_path / "x.txt", "text")
    assert both.exit_code == 2
    assert "one of them" in both.stderr


def test_predict_with_a_plain_model_folder(run_cli, trained, tmp_path):
    exported = tmp_path / "exported"
    shutil.copytree(trained.run / "model", exported)
    from_folder = run_cli("predict", "--model", exported, "--json", POSITIVE, NEGATIVE)
    from_run = run_cli("predict", "--model", trained.run, "--json", POSITIVE, NEGATIVE)
    assert from_folder.exit_code == 0, from_folder.output
    assert json.loads(from_folder.stdout) == json.loads(from_run.stdout)


def test_predict_uses_the_latest_run_by_default(run_cli, trained, monkeypatch):
    monkeypatch.chdir(trained.folder)
    result = run_cli("predict", "--json", POSITIVE)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["text"] == POSITIVE


@pytest.fixture
def small_sort_window(monkeypatch):
    """Sort windows of 16 texts, so the 40-row test files cross window boundaries."""
    monkeypatch.setattr("bertkit.tasks.classification.inference.SORT_WINDOW", 16)


def test_logits_keep_input_order_despite_length_sorting(classifier, trained, small_sort_window):
    rows = read_csv(trained.data / "train.csv")
    # Lengths deliberately unsorted; 40 texts cross two sort windows (16 texts).
    texts = [r["text"] + " very" * (i % 7) for i, r in enumerate(rows)]
    done = []
    batched = classifier.logits(texts, batch_size=2, on_batch=done.append)
    assert done == [2] * 20  # every batch reported, once
    single = np.concatenate([classifier.logits([t]) for t in texts])
    reference = one_by_one_logits(trained.run / "model", texts)
    assert batched.shape == (40, 2)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(batched, reference, atol=1e-5)
    assert classifier.logits([]).shape == (0, 2)


# --------------------------------------------------------------------------- predict files


def _input_file(folder: Path, fmt: str, texts: list[str]) -> Path:
    path = folder / f"input.{fmt}"
    if fmt == "txt":
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            writer.writerows([(f"r{i}", t) for i, t in enumerate(texts)])
    else:
        lines = [json.dumps({"id": f"r{i}", "text": t, "meta": {"n": i}}) for i, t in enumerate(texts)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("out_fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("in_fmt", ["txt", "csv", "jsonl"])
def test_predict_file_round_trip(run_cli, trained, classifier, tmp_path, in_fmt, out_fmt, small_sort_window):
    # Commas and quotes in texts; more rows than one sort window.
    texts = [r["text"] for r in read_csv(trained.data / "train.csv")]
    texts[3] = 'a "quoted" , comma film'
    source = _input_file(tmp_path, in_fmt, texts)
    output = tmp_path / f"predictions.{out_fmt}"
    result = run_cli(
        "predict", "--model", trained.run, "--input", source, "--output", output, "--batch-size", "2"
    )
    assert result.exit_code == 0, result.output
    assert "40 rows" in result.stderr

    if out_fmt == "jsonl":
        rows = read_jsonl(output)
        probabilities = [r["probabilities"] for r in rows]
    else:
        rows = read_csv(output)
        probabilities = [{k[5:]: float(v) for k, v in r.items() if k.startswith("prob_")} for r in rows]
        assert list(rows[0])[-4:] == ["predicted_label", "predicted_score", "prob_negative", "prob_positive"]
    assert len(rows) == 40
    assert [r["text"] for r in rows] == texts  # order preserved, nothing merged or split
    if in_fmt != "txt":
        assert [r["id"] for r in rows] == [f"r{i}" for i in range(40)]  # passthrough
    if in_fmt == "jsonl":
        meta = [r["meta"] if out_fmt == "jsonl" else json.loads(r["meta"]) for r in rows]
        assert meta == [{"n": i} for i in range(40)]
    expected = classifier.labels.names
    logits = classifier.logits(texts)
    assert [r["predicted_label"] for r in rows] == [expected[i] for i in logits.argmax(axis=1)]
    for p in probabilities:
        assert set(p) == {"negative", "positive"}
        assert sum(p.values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_file_reports_progress_after_every_batch(classifier, trained, tmp_path, small_sort_window):
    from bertkit.tasks.classification.predict import predict_file

    texts = [r["text"] for r in read_csv(trained.data / "train.csv")]
    progress: list[int] = []
    stats = predict_file(
        classifier,
        _input_file(tmp_path, "txt", texts),
        tmp_path / "out.jsonl",
        batch_size=3,
        on_progress=progress.append,
    )
    # Windows of 16 rows in batches of 3: 3, 6, ..., 15, 16, then on from there.
    assert progress[:6] == [3, 6, 9, 12, 15, 16]
    assert progress == sorted(progress) and progress[-1] == stats.rows == 40
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 40


def test_predict_from_stdin_to_stdout(run_cli, trained):
    result = run_cli("predict", "--model", trained.run, "--input", "-", input=f"{POSITIVE}\n\n{NEGATIVE}\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    # The blank line keeps its row, so outputs line up with inputs; it has no prediction.
    assert [r["text"] for r in rows] == [POSITIVE, "", NEGATIVE]
    assert rows[1]["predicted_label"] is None and rows[1]["probabilities"] is None
    assert all(rows[i]["predicted_label"] in ("negative", "positive") for i in (0, 2))
    assert "1 row had no text" in result.stderr


def test_predict_csv_from_stdin(run_cli, trained, tmp_path):
    output = tmp_path / "out.csv"
    result = run_cli(
        "predict",
        "--model",
        trained.run,
        "--input",
        "-",
        "--input-format",
        "csv",
        "--text-column",
        "review",
        "--output",
        output,
        input='review,stars\n"good, very good",5\nbad,1\n',
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(output)
    assert [(r["review"], r["stars"]) for r in rows] == [("good, very good", "5"), ("bad", "1")]


def _jsonl_with_a_bad_line(folder: Path) -> Path:
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate([POSITIVE, NEGATIVE, POSITIVE, NEGATIVE])]
    lines.insert(2, '{"id": 99, "text": "broken')  # line 3
    path = folder / "input.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_on_error_skip_reports_the_bad_line_and_keeps_every_good_row(run_cli, trained, tmp_path):
    source = _jsonl_with_a_bad_line(tmp_path)
    output = tmp_path / "out.jsonl"
    result = run_cli(
        "predict", "--model", trained.run, "--input", source, "--output", output, "--on-error", "skip"
    )
    assert result.exit_code == 0, result.output
    assert f"skipped {source}:3: not valid JSON" in result.stderr
    assert "1 skipped" in result.stderr
    assert [r["id"] for r in read_jsonl(output)] == [0, 1, 2, 3]


def test_a_bad_line_stops_and_leaves_no_output(run_cli, trained, tmp_path):
    source = _jsonl_with_a_bad_line(tmp_path)
    output = tmp_path / "out" / "predictions.jsonl"
    result = run_cli("predict", "--model", trained.run, "--input", source, "--output", output)
    assert result.exit_code == 1
    assert f"{source}:3: not valid JSON" in result.stderr
    assert not output.exists()
    assert not output.parent.exists() or list(output.parent.iterdir()) == []  # no temporary file either


def test_on_error_rejects_unknown_modes(run_cli, trained, tmp_path):
    result = run_cli("predict", "--model", trained.run, "--input", tmp_path / "x.txt", "--on-error", "ignore")
    assert result.exit_code == 2
    assert "'ignore' is not one of 'stop', 'skip'" in result.stderr


@pytest.mark.parametrize(
    "option",
    [["--text-column", "review"], ["--text-pair", "b"], ["--input-format", "csv"], ["--on-error", "skip"]],
    ids=lambda o: o[0],
)
def test_file_options_with_texts_given_as_arguments_are_refused(run_cli, trained, option):
    result = run_cli("predict", "--model", trained.run, POSITIVE, *option)
    assert result.exit_code == 2
    assert f"{option[0]}: describes an --input file; the texts here are given as arguments" in result.stderr
    assert result.stdout == ""


def test_missing_text_column_is_named(run_cli, trained, tmp_path):
    source = tmp_path / "input.csv"
    source.write_text("review\nthe film was good .\n", encoding="utf-8")
    result = run_cli("predict", "--model", trained.run, "--input", source)
    assert result.exit_code == 1
    assert "no column 'text'; columns are: review" in result.stderr
    assert "--text-column" in result.stderr


def test_missing_input_file_is_a_clear_error(run_cli, trained, tmp_path):
    result = run_cli("predict", "--model", trained.run, "--input", tmp_path / "nope.txt")
    assert result.exit_code == 1
    assert "file not found" in result.stderr


def test_input_format_works_for_any_extension(run_cli, trained, tmp_path):
    source = tmp_path / "texts.dat"
    source.write_text(f"{POSITIVE}\n{NEGATIVE}\n", encoding="utf-8")
    result = run_cli("predict", "--model", trained.run, "--input", source, "--input-format", "txt")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


def test_csv_output_refuses_columns_first_seen_after_the_header(run_cli, trained, tmp_path):
    # Rows stream out as they are predicted, so the header is written before row 2 is read.
    source = tmp_path / "input.jsonl"
    source.write_text(
        json.dumps({"text": POSITIVE}) + "\n" + json.dumps({"text": NEGATIVE, "id": 7}) + "\n",
        encoding="utf-8",
    )
    output = tmp_path / "out.csv"
    result = run_cli("predict", "--model", trained.run, "--input", source, "--output", output)
    assert result.exit_code == 1
    assert "column 'id' first appears after the CSV header was written (row 2)" in result.stderr
    assert "--output out.jsonl" in result.stderr
    assert not output.exists()
    assert list(tmp_path.glob(".*.tmp")) == []


# --------------------------------------------------------------------------- sentence-pair models


def test_a_pair_model_refuses_single_texts(run_cli, trained, tmp_path):
    # A copy of the model whose config says it was trained on sentence pairs.
    pair_model = tmp_path / "pair-model"
    shutil.copytree(trained.run / "model", pair_model)
    config = json.loads((pair_model / "config.json").read_text())
    config["bertkit"]["text_pair"] = True
    (pair_model / "config.json").write_text(json.dumps(config))

    result = run_cli("predict", "--model", pair_model, POSITIVE)
    assert result.exit_code == 1
    assert "trained on sentence pairs" in result.stderr
    assert "--text-pair" in result.stderr

    source = tmp_path / "pairs.csv"
    source.write_text("a,b\nthe film was good .,it was good\n", encoding="utf-8")
    single = run_cli("predict", "--model", pair_model, "--input", source, "--text-column", "a")
    assert single.exit_code == 1
    assert "sentence pairs" in single.stderr
    paired = run_cli(
        "predict", "--model", pair_model, "--input", source, "--text-column", "a", "--text-pair", "b"
    )
    assert paired.exit_code == 0, paired.output
    assert json.loads(paired.stdout.splitlines()[0])["b"] == "it was good"

    # And the single-text model refuses pairs.
    refused = run_cli(
        "predict", "--model", trained.run, "--input", source, "--text-column", "a", "--text-pair", "b"
    )
    assert refused.exit_code == 1
    assert "trained on single texts" in refused.stderr


def test_predict_texts_refuses_pairs_for_a_single_text_model(classifier):
    from bertkit.tasks.classification.predict import predict_texts

    with pytest.raises(DataError, match="single texts"):
        predict_texts(classifier, [POSITIVE], ["it was good"])


# --------------------------------------------------------------------------- half precision (GPU path)


def test_half_precision_is_used_when_it_predicts_as_fp32_does(trained, capsys):
    """The check a GPU runs before predicting in bf16; bf16 also runs on a CPU, so it is tested here."""
    import torch

    from bertkit.tasks.classification.inference import load_classifier, use_half_precision

    fp32 = load_classifier(trained.run)
    texts = ["the food was good .", "the film was bad .", "a really dull plot , not worth the money ."]
    reference = fp32.logits(texts)
    half = load_classifier(trained.run)
    use_half_precision(half, "bf16")
    assert half.precision == "bf16" and next(half.model.parameters()).dtype == torch.bfloat16
    assert (half.logits(texts).argmax(1) == reference.argmax(1)).all()
    assert "predicting in bf16" in capsys.readouterr().err


def test_half_precision_that_changes_predictions_stays_in_fp32(trained, monkeypatch, capsys):
    import torch

    import bertkit.export.parity
    import bertkit.tasks.classification.parity
    from bertkit.tasks.classification.inference import load_classifier, use_half_precision

    monkeypatch.setattr(
        bertkit.tasks.classification.parity, "prediction_agreement", lambda *args: (0.9, "labels")
    )
    unlabelled = bertkit.export.parity.Sample(["the food was good .", "the film was bad ."], None, "2 texts")
    monkeypatch.setattr(bertkit.tasks.classification.parity, "sample_texts", lambda *args: unlabelled)
    classifier = load_classifier(trained.run)
    use_half_precision(classifier, "bf16")
    assert classifier.precision == "fp32" and next(classifier.model.parameters()).dtype == torch.float32
    assert "predicting in fp32: bf16 changed the labels of 10.0%" in capsys.readouterr().err


def test_precision_options_that_do_not_apply_are_refused(run_cli, trained):
    run = trained.run
    cpu = run_cli("predict", "--model", run, "--precision", "bf16", "x")
    assert cpu.exit_code == 2 and "half-precision prediction runs on CUDA" in cpu.stderr
    onnx = run_cli("predict", "--model", run, "--backend", "onnx", "--precision", "bf16", "x")
    assert onnx.exit_code == 2 and "applies to the torch backend" in onnx.stderr
    device = run_cli("predict", "--model", run, "--device", "cuda", "x")
    assert device.exit_code == 2 and "--device cuda: this torch build has no CUDA" in device.stderr
    assert "Traceback" not in device.output
