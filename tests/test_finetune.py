"""Fine-tuning end to end on the tiny BERT: the run directory, label problems, options and failures."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bertkit.errors import BertkitError, DataError, RecipeError
from bertkit.recipe import load_recipe
from bertkit.runs import latest_run

# Bookkeeping numbers that differ between identical runs.
_TIMING = ("runtime", "samples_per_second", "steps_per_second", "tokens_per_second")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train fastest on one thread, and a busy 2-core machine is not slowed further."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTKIT_CACHE", str(tmp_path / "cache"))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def write_recipe(folder: Path, model_dir: Path, data_dir: Path, name: str = "tiny", **sections) -> Path:
    """A tiny classification recipe in `folder`, runs under `folder/runs`; sections merge over it."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {
        "task": "classification",
        "description": "tiny sentiment",
        "model": {"name": str(model_dir)},
        "data": {
            "train": str(data_dir / "train.csv"),
            "validation": str(data_dir / "validation.csv"),
            "test": str(data_dir / "test.csv"),
        },
        "train": {"max_steps": 2, "batch_size": 8, "seed": 42, "logging_steps": 1},
        "output": {"root": str(folder / "runs")},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(_merge(recipe, sections), sort_keys=False), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def derived_data(sentiment: Path, folder: Path, label) -> Path:
    """Copies of the tiny splits with the label column rewritten by `label(row_index, row)`."""
    for split in ("train", "validation", "test"):
        rows = read_rows(sentiment / f"{split}.csv")
        write_rows(folder / f"{split}.csv", [{**r, "label": label(i, r)} for i, r in enumerate(rows)])
    return folder


def run_finetune(recipe_path: Path, overrides: list[str] | None = None, **kwargs):
    from bertkit.training.run import train_recipe as finetune

    return finetune(load_recipe(recipe_path, overrides or []), **kwargs)


def comparable(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in _TIMING}


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime, to prove nothing changed."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- one shared single-label run


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model_dir, tiny_sentiment_files):
    """One trained single-label run (max_steps 2), reused by the layout tests."""
    folder = tmp_path_factory.mktemp("single")
    recipe = write_recipe(folder, tiny_model_dir, tiny_sentiment_files)
    command = ["bertkit", "finetune", "--recipe", str(recipe)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BERTKIT_CACHE", str(folder / "cache"))
        result = run_finetune(recipe, command=command)
    return SimpleNamespace(
        result=result, run=result.run.path, root=folder / "runs", recipe=recipe, command=command
    )


def test_run_directory_layout(single):
    run = single.run
    assert run.parent == single.root
    assert run.name.startswith("tiny-")
    for name in (
        "recipe.yaml",
        "README.md",
        "metrics.json",
        "log.jsonl",
        "curves.png",
        "environment.json",
        "run.json",
    ):
        assert (run / name).is_file(), name
    model = run / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert (model / name).is_file(), name
    assert not (model / "pytorch_model.bin").exists()
    assert (run / "checkpoints" / "checkpoint-2").is_dir()
    assert not list(run.glob(".*tmp*")), "no staging leftovers"


def test_latest_points_at_the_run(single):
    link = single.root / "latest"
    assert link.resolve() == single.run.resolve()
    assert latest_run(single.root).path.resolve() == single.run.resolve()


def test_config_carries_label_names_and_problem_type(single):
    config = json.loads((single.run / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    assert config["problem_type"] == "single_label_classification"
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["bertkit"]["max_length"] == 128
    assert config["bertkit"]["text_pair"] is False


def test_model_loads_with_a_transformers_pipeline(single):
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(single.run / "model"), device="cpu")
    texts = ["the film was good .", "the food was awful ."]
    out = classify(texts)

    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.predict import predict_texts

    ours = predict_texts(load_classifier(single.run, device="cpu"), texts)
    # Transformers reads the same labels and scores from the folder as bertkit does.
    assert [o["label"] for o in out] == [o["predicted_label"] for o in ours]
    assert [o["score"] for o in out] == pytest.approx([o["predicted_score"] for o in ours], abs=1e-5)


def test_metrics_json_holds_train_validation_and_test(single):
    metrics = json.loads((single.run / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"}
    for split in ("validation", "test"):
        assert "loss" in metrics[split]
        assert "f1_macro" in metrics[split]
    assert metrics == single.result.metrics
    assert single.result.main_metric == "accuracy"

    from bertkit.tasks.classification.evaluate import evaluate_classifier

    # The test scores of training are those of the saved model, evaluated afresh.
    evaluated = evaluate_classifier(single.run, split="test", output=single.root.parent / "eval-check")
    assert evaluated.metrics["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert evaluated.metrics["f1_macro"] == pytest.approx(metrics["test"]["f1_macro"])


def test_model_card_mentions_labels_and_metrics(single):
    for card in (single.run / "README.md", single.run / "model" / "README.md"):
        text = card.read_text()
        assert text.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification")
        assert "## Labels" in text
        assert "- `0`: negative" in text
        assert "- `1`: positive" in text
        assert "| **accuracy** |" in text
        assert "| metric | validation | test |" in text
        assert "tiny sentiment" in text


def test_training_log_is_jsonl(single):
    records = [json.loads(line) for line in (single.run / "log.jsonl").read_text().splitlines()]
    assert records
    assert all("step" in r and "time" in r for r in records)
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert any("eval_accuracy" in r for r in records)


def test_curves_are_a_png(single):
    assert (single.run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_environment_records_seed_and_command(single):
    environment = json.loads((single.run / "environment.json").read_text())
    assert environment["seed"] == 42
    assert environment["command"] == single.command
    assert environment["device"] == "cpu"
    assert environment["precision"] == "fp32"
    assert environment["packages"]["transformers"]


def test_run_json_marks_the_run_complete(single, tiny_model_dir):
    info = json.loads((single.run / "run.json").read_text())
    assert info["status"] == "complete"
    assert info["task"] == "classification"
    assert info["name"] == "tiny"
    assert info["steps"] == 2
    assert info["main_metric"] == "accuracy"
    assert info["started_from"] == [str(tiny_model_dir)]
    assert info["best_checkpoint"] == "checkpoints/checkpoint-2"


def test_recipe_yaml_reloads_and_reruns_with_identical_metrics(single, tmp_path):
    saved = load_recipe(single.run / "recipe.yaml")
    original = load_recipe(single.recipe)
    assert saved.model_dump(exclude={"name"}) == original.model_dump(exclude={"name"})
    assert saved.run_name == "tiny"

    # Same recipe, same seed: the same numbers (a second run elsewhere).
    again = run_finetune(single.run / "recipe.yaml", [f"output.root={tmp_path / 'again'}"])
    assert again.run.path.parent == tmp_path / "again"
    first = json.loads((single.run / "metrics.json").read_text())
    second = json.loads((again.run.path / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert comparable(second[split]) == comparable(first[split]), split


# --------------------------------------------------------------------------- the command line


def test_cli_finetune_limit_refuse_and_overwrite(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files, train={"max_steps": None})
    out_dir = tmp_path / "exp"
    args = ["finetune", "--recipe", recipe, "--set", f"output.dir={out_dir}", "--set", "train.epochs=1"]

    result = run_cli(*args, "--limit", "16")
    assert result.exit_code == 0, result.output
    assert "first 16 used: limit" in result.stderr
    assert "accuracy" in result.stdout
    assert f"model: {out_dir / 'model'}" in result.stdout
    info = json.loads((out_dir / "run.json").read_text())
    assert info["steps"] == 2  # 16 rows, batch 8, one epoch; the full 40 rows would take 5
    assert (tmp_path / "runs" / "latest").resolve() == out_dir.resolve()

    # The same output.dir again: refused, and nothing in it touched.
    before = tree(out_dir)
    refused = run_cli(*args, "--limit", "16")
    assert refused.exit_code == 1
    assert f"{out_dir}: already holds a finished run" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert tree(out_dir) == before

    (out_dir / "stray.txt").write_text("from the old run")
    replaced = run_cli(*args, "--overwrite", "--limit", "8")
    assert replaced.exit_code == 0, replaced.output
    assert not (out_dir / "stray.txt").exists()
    assert json.loads((out_dir / "run.json").read_text())["steps"] == 1


def test_cli_data_error_leaves_no_run_directory(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files, data={"label": "labels"})
    result = run_cli("finetune", "--recipe", recipe)
    assert result.exit_code == 1
    assert "no column 'labels' (data.label); columns are: text, label" in result.stderr
    assert "did you mean --set data.label=label?" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_column_overrides_are_not_turned_into_paths(tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files)
    loaded = load_recipe(recipe, ["data.label=sentiment", "data.text=review", "data.text_pair=claim"])
    assert (loaded.data.label, loaded.data.text, loaded.data.text_pair) == ("sentiment", "review", "claim")


def test_cli_recipe_error_leaves_no_run_directory(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files)
    result = run_cli("finetune", "--recipe", recipe, "--set", "trian.epochs=1")
    assert result.exit_code == 2
    assert "train.epochs" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["train.metric=acuracy"], BertkitError, "unknown metric 'acuracy'"),
        (["train.class_weights=[1, 2, 3]"], RecipeError, "3 weights for 2 labels"),
        (["data.max_length=512"], RecipeError, "above the model's limit of 128"),
        (["data.test=missing.csv"], DataError, "file not found"),
    ],
)
def test_bad_settings_fail_before_a_run_directory_exists(
    tmp_path, tiny_model_dir, tiny_sentiment_files, overrides, error, match
):
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files)
    with pytest.raises(error, match=match):
        run_finetune(recipe, overrides)
    assert not (tmp_path / "runs").exists()


def test_failure_after_the_run_directory_exists_removes_it(tmp_path, tiny_model_dir, tiny_sentiment_files):
    # A model folder with a config but no weights: found, but it fails to load, which is
    # after the run directory was made and the data tokenized.
    broken = tmp_path / "broken-model"
    broken.mkdir()
    shutil.copy(tiny_model_dir / "config.json", broken / "config.json")
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        tiny_sentiment_files,
        model={"name": str(broken), "tokenizer": str(tiny_model_dir)},
    )
    with pytest.raises(BertkitError, match="cannot load the model"):
        run_finetune(recipe)
    root = tmp_path / "runs"
    assert not root.exists() or not any(root.iterdir())


def test_a_selection_metric_the_validation_data_cannot_give_is_a_clear_error(
    tmp_path, tiny_model_dir, tiny_sentiment_files
):
    rows = [r for r in read_rows(tiny_sentiment_files / "validation.csv") if r["label"] == "positive"]
    validation = write_rows(tmp_path / "data" / "validation.csv", rows)
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        tiny_sentiment_files,
        data={"validation": str(validation)},
        train={"metric": "roc_auc"},
    )
    with pytest.raises(BertkitError, match="roc_auc"):
        run_finetune(recipe)


# --------------------------------------------------------------------------- label problems and inputs


def test_multi_label_run(tmp_path, tiny_model_dir, tiny_sentiment_files):
    dining = ("food", "meal", "staff", "service", "place")

    def label(_: int, row: dict[str, str]) -> str:
        extra = "|dining" if any(w in row["text"].split() for w in dining) else ""
        return row["label"] + extra

    data = derived_data(tiny_sentiment_files, tmp_path / "data", label)
    recipe = write_recipe(tmp_path, tiny_model_dir, data, labels={"separator": "|"})
    result = run_finetune(recipe)

    config = json.loads((result.run.model_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "dining", "1": "negative", "2": "positive"}
    assert config["bertkit"]["separator"] == "|"
    assert "f1_micro" in result.metrics["validation"]
    assert result.main_metric == "f1_micro"

    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.predict import predict_texts

    classifier = load_classifier(result.run.path)
    assert classifier.labels.problem == "multi"
    (prediction,) = predict_texts(classifier, ["the food was good ."])
    assert set(prediction["predicted_labels"]) <= {"dining", "negative", "positive"}
    assert set(prediction["probabilities"]) == {"dining", "negative", "positive"}


def test_regression_run(tmp_path, tiny_model_dir, tiny_sentiment_files):
    def label(i: int, row: dict[str, str]) -> str:
        base = 0.8 if row["label"] == "positive" else 0.2
        return f"{base + (i % 4) * 0.05:.2f}"

    data = derived_data(tiny_sentiment_files, tmp_path / "data", label)
    result = run_finetune(write_recipe(tmp_path, tiny_model_dir, data))

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(result.run.model_dir), local_files_only=True)
    assert config.num_labels == 1
    assert config.problem_type == "regression"
    assert {"mse", "mae", "rmse"} <= set(result.metrics["validation"])
    assert json.loads((result.run.path / "run.json").read_text())["main_metric"] == "pearson"

    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.predict import predict_texts

    classifier = load_classifier(result.run.path)
    assert classifier.labels.problem == "regression"
    (prediction,) = predict_texts(classifier, ["the film was good ."])
    assert isinstance(prediction["predicted_value"], float)


def test_sentence_pair_run(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    for split in ("train", "validation", "test"):
        rows = []
        for i, row in enumerate(read_rows(tiny_sentiment_files / f"{split}.csv")):
            claim = "it was good" if i % 3 else "it was bad"
            agrees = (claim == "it was good") == (row["label"] == "positive")
            rows.append({"premise": row["text"], "claim": claim, "verdict": "yes" if agrees else "no"})
        write_rows(tmp_path / "data" / f"{split}.csv", rows)
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        tmp_path / "data",
        data={"text": "premise", "text_pair": "claim", "label": "verdict"},
    )
    result = run_finetune(recipe)
    config = json.loads((result.run.model_dir / "config.json").read_text())
    assert config["bertkit"]["text_pair"] is True
    assert config["id2label"] == {"0": "no", "1": "yes"}

    from bertkit.tasks.classification.evaluate import evaluate_classifier
    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.predict import predict_texts

    evaluated = evaluate_classifier(result.run.path, split="test")
    assert evaluated.n_examples == 12
    # The saved model, read back with its pairs, scores as it did at the end of training.
    assert evaluated.metrics["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    classifier = load_classifier(result.run.path)
    assert len(predict_texts(classifier, ["the film was good ."], ["it was bad"])) == 1
    with pytest.raises(DataError, match="trained on sentence pairs"):
        predict_texts(classifier, ["the film was good ."])
    refused = run_cli("predict", "--model", result.run.path, "the film was good .")
    assert refused.exit_code == 1
    assert "sentence pairs" in refused.stderr


def test_class_weights_auto_on_balanced_data_changes_nothing(single, tmp_path):
    result = run_finetune(single.recipe, [f"output.root={tmp_path / 'runs'}", "train.class_weights=auto"])
    assert result.metrics["train"]["loss"] == pytest.approx(single.result.metrics["train"]["loss"], abs=1e-5)
    assert result.metrics["validation"]["loss"] == pytest.approx(
        single.result.metrics["validation"]["loss"], abs=1e-5
    )


def test_explicit_class_weights_change_the_training_loss(single, tmp_path):
    result = run_finetune(
        single.recipe, [f"output.root={tmp_path / 'runs'}", "train.class_weights={positive: 4.0}"]
    )
    assert result.metrics["train"]["loss"] != pytest.approx(single.result.metrics["train"]["loss"], abs=1e-3)
    assert load_recipe(result.run.path / "recipe.yaml").train.class_weights == {"positive": 4.0}


def _loaded(recipe_path: Path, overrides: list[str] | None = None):
    from bertkit.tasks.classification.data import load_classification_data

    recipe = load_recipe(recipe_path, overrides or [])
    return recipe, load_classification_data(recipe.data, recipe.labels, seed=recipe.train.seed)


def test_class_weight_settings_resolve_in_label_order(tmp_path, tiny_model_dir, tiny_sentiment_files):
    from bertkit.tasks.classification.train import resolve_class_weights

    # 30 negative and 10 positive rows: auto gives n / (k * n_c).
    rows = [{"text": f"row {i}", "label": "positive" if i % 4 == 0 else "negative"} for i in range(40)]
    train = write_rows(tmp_path / "data" / "train.csv", rows)
    recipe_path = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files, data={"train": str(train)})

    recipe, data = _loaded(recipe_path, ["train.class_weights=auto"])
    assert resolve_class_weights(recipe, data) == pytest.approx([40 / (2 * 30), 40 / (2 * 10)])
    recipe, data = _loaded(recipe_path, ["train.class_weights=[0.5, 3]"])
    assert resolve_class_weights(recipe, data) == [0.5, 3.0]
    recipe, data = _loaded(recipe_path, ["train.class_weights={positive: 2.5}"])
    assert resolve_class_weights(recipe, data) == [1.0, 2.5]
    recipe, data = _loaded(recipe_path)
    assert resolve_class_weights(recipe, data) is None

    for setting, match in (
        ("{positve: 2}", "unknown labels \\['positve'\\]"),
        ("[1, 0]", "must be positive"),
    ):
        recipe, data = _loaded(recipe_path, [f"train.class_weights={setting}"])
        with pytest.raises(RecipeError, match=match):
            resolve_class_weights(recipe, data)


def test_class_weights_are_refused_for_multi_label(tmp_path, tiny_model_dir, tiny_sentiment_files):
    from bertkit.tasks.classification.train import resolve_class_weights

    data_dir = derived_data(tiny_sentiment_files, tmp_path / "data", lambda i, r: r["label"] + "|x")
    recipe_path = write_recipe(tmp_path, tiny_model_dir, data_dir, labels={"separator": "|"})
    recipe, data = _loaded(recipe_path, ["train.class_weights=auto"])
    assert data.labels.problem == "multi"
    with pytest.raises(RecipeError, match="not multi"):
        resolve_class_weights(recipe, data)


def test_weighted_loss_is_the_weighted_sum_over_the_items():
    import torch
    from torch.nn import functional

    from bertkit.tasks.classification.train import weighted_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.25], [-1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    loss = weighted_loss([1.0, 3.0])({"logits": logits}, labels)
    per_item = functional.cross_entropy(logits, labels, reduction="none")
    expected = (per_item * torch.tensor([1.0, 3.0, 3.0])).sum() / 3
    assert float(loss) == pytest.approx(float(expected))
    # With gradient accumulation the Trainer passes the count of the whole accumulated batch.
    halved = weighted_loss([1.0, 3.0])({"logits": logits}, labels, num_items_in_batch=6)
    assert float(halved) == pytest.approx(float(expected) / 2)


def test_early_stopping_stops_after_patience_evaluations(tmp_path, tiny_model_dir, tiny_sentiment_files):
    # An improvement of more than 1.0 accuracy is impossible: stop at the second evaluation.
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        tiny_sentiment_files,
        train={
            "max_steps": 6,
            "eval_every": "steps",
            "eval_steps": 1,
            "early_stopping": {"patience": 1, "threshold": 1.0},
        },
    )
    result = run_finetune(recipe)
    info = json.loads((result.run.path / "run.json").read_text())
    assert info["steps"] == 2  # of 6
    records = [json.loads(line) for line in (result.run.path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval_accuracy" in r] == [1, 2]


# --------------------------------------------------------------------------- resume and incomplete runs


def _loss_steps(run_dir: Path) -> list[int]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r]


def test_resume_continues_from_the_checkpoint(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    run_dir = tmp_path / "exp"
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files, output={"dir": str(run_dir)})
    first = run_finetune(recipe)
    assert first.run.path == run_dir
    assert (run_dir / "checkpoints" / "checkpoint-2").is_dir()
    saved = run_dir / "recipe.yaml"

    # --resume-from a run directory: its latest checkpoint.
    result = run_cli("finetune", "--recipe", saved, "--resume-from", run_dir, "--set", "train.max_steps=4")
    assert result.exit_code == 0, result.output
    assert "resuming from" in result.stderr
    assert "checkpoint-2" in result.stderr
    assert json.loads((run_dir / "run.json").read_text())["steps"] == 4
    assert (run_dir / "checkpoints" / "checkpoint-4").is_dir()
    # Step 1 was logged once, by the first run: the resumed run did not start over.
    assert _loss_steps(run_dir) == [1, 2, 3, 4]

    # --resume: the run at the recipe's output.dir.
    result = run_cli("finetune", "--recipe", saved, "--resume", "--set", "train.max_steps=6")
    assert result.exit_code == 0, result.output
    assert "checkpoint-4" in result.stderr
    assert json.loads((run_dir / "run.json").read_text())["steps"] == 6
    assert _loss_steps(run_dir) == [1, 2, 3, 4, 5, 6]

    # A resume that would change the experiment is refused, naming the key; nothing changes.
    before = tree(run_dir)
    changed = run_cli(
        "finetune",
        "--recipe",
        saved,
        "--resume",
        "--set",
        "train.max_steps=8",
        "--set",
        "train.learning_rate=0.01",
    )
    assert changed.exit_code == 1
    assert "train.learning_rate" in changed.stderr
    assert tree(run_dir) == before


def test_resume_without_a_checkpoint_is_refused(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = write_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    result = run_cli("finetune", "--recipe", recipe, "--resume-from", empty)
    assert result.exit_code == 1
    assert "no checkpoint to resume from" in result.stderr
    assert list(empty.iterdir()) == []

    # --resume needs output.dir to know which run to continue.
    result = run_cli("finetune", "--recipe", recipe, "--resume")
    assert result.exit_code == 1
    assert "output.dir" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_incomplete_run_is_refused_by_eval_and_predict(run_cli, single, tmp_path):
    copy = tmp_path / "incomplete"
    shutil.copytree(single.run, copy)
    (copy / "run.json").unlink()
    for args in (("eval", "--model", copy), ("predict", "--model", copy, "some text")):
        result = run_cli(*args)
        assert result.exit_code == 1, args
        assert f"{copy}: the run did not complete (no run.json)" in result.stderr
        assert "--resume" in result.stderr


def test_a_half_precision_checkpoint_trains_and_saves_in_fp32(tmp_path, tiny_model_dir, tiny_sentiment_files):
    """Transformers 5 keeps a checkpoint's stored dtype; bertkit trains and saves in fp32."""
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer, BertForMaskedLM

    half = tmp_path / "bf16-model"
    model = BertForMaskedLM.from_pretrained(tiny_model_dir)
    model.to(torch.bfloat16).save_pretrained(half)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(half)
    assert json.loads((half / "config.json").read_text())["dtype"] == "bfloat16"

    result = run_finetune(write_recipe(tmp_path, half, tiny_sentiment_files))
    ran = json.loads((result.run.path / "environment.json").read_text())["ran"]
    assert ran["weights"] == "float32"  # trained in fp32, not in the checkpoint's bf16
    with safe_open(str(result.run.model_dir / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_tensor(name).dtype for name in weights.keys()}  # noqa: SIM118
    assert dtypes == {torch.float32}
    assert json.loads((result.run.model_dir / "config.json").read_text())["dtype"] == "float32"


def test_a_half_precision_save_is_rewritten_in_fp32(tmp_path, tiny_model_dir):
    """What DeepSpeed's bf16 save leaves in model/ is turned back into fp32 weights."""
    import torch
    from transformers import BertForMaskedLM

    from bertkit.models import store_in_fp32

    folder = tmp_path / "saved"
    BertForMaskedLM.from_pretrained(tiny_model_dir).to(torch.bfloat16).save_pretrained(folder)
    assert store_in_fp32(folder) == ["model.safetensors"]
    reloaded = BertForMaskedLM.from_pretrained(folder, dtype="auto")
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}
    assert store_in_fp32(folder) == []  # already fp32: nothing rewritten


def test_a_one_process_accelerate_config_trains_here(run_cli, tmp_path, tiny_model_dir, tiny_sentiment_files):
    """B4: its launcher's child looked unlaunched and launched again, without end."""
    config = tmp_path / "one.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nmixed_precision: 'no'\n")
    recipe = write_recipe(
        tmp_path, tiny_model_dir, tiny_sentiment_files, train={"accelerate_config": str(config)}
    )
    result = run_cli("finetune", "--recipe", recipe, "--set", f"output.dir={tmp_path / 'run'}")
    assert result.exit_code == 0, result.output
    assert "launching" not in result.stderr
    assert (tmp_path / "run" / "run.json").is_file()
