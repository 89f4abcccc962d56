"""Runs that survive being killed, and runs across two processes (gloo on CPU).

These start real `python -m bertkit` subprocesses: a SIGKILL'd run resumed from its
checkpoint must end exactly where an uninterrupted run ends, and a two-process run
must write one complete run directory with the metrics of a one-process run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _no_dropout_model(source: Path, target: Path) -> Path:
    """The tiny test BERT without dropout: runs then depend only on data order and seed."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    config = BertConfig.from_pretrained(source)
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0
    BertForMaskedLM.from_pretrained(source, config=config).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def _recipe(tmp_path: Path, model: Path, data: Path, **train: object) -> Path:
    settings = {"epochs": 3, "batch_size": 4, "learning_rate": 0.001, "logging_steps": 1, "seed": 7}
    settings.update(train)
    lines = [
        "task: classification",
        f"model: {{name: {model}}}",
        "data:",
        f"  train: {data / 'train.csv'}",
        f"  validation: {data / 'validation.csv'}",
        "  max_length: 32",
        "train:",
        *(f"  {key}: {value}" for key, value in settings.items()),
        f"output: {{root: {tmp_path / 'runs'}}}",
    ]
    path = tmp_path / "recipe.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"BERTKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    env.pop("BERTKIT_DEBUG", None)
    return env


def _bertkit(*args: object, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bertkit", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _validation(run: Path) -> dict[str, float]:
    """Validation quality metrics of a run (timings left out: they always differ)."""
    scores = json.loads((run / "metrics.json").read_text())["validation"]
    return {k: v for k, v in scores.items() if not k.endswith(("runtime", "per_second"))}


@pytest.fixture
def quiet_model(tiny_model_dir, tmp_path):
    return _no_dropout_model(tiny_model_dir, tmp_path / "model")


def test_a_killed_run_resumes_to_the_same_result(tmp_path, tiny_model_dir, tiny_sentiment_files):
    """SIGKILL mid-epoch, resume from the last checkpoint, and end where an uninterrupted run ends.

    Dropout stays on: the checkpoint's RNG state must carry the run on exactly.
    """
    recipe = _recipe(tmp_path, tiny_model_dir, tiny_sentiment_files, save_steps=3)
    env = _env(tmp_path)
    whole, broken = tmp_path / "whole", tmp_path / "broken"

    done = _bertkit("finetune", "--recipe", recipe, "--set", f"output.dir={whole}", env=env)
    assert done.returncode == 0, done.stderr

    command = [
        sys.executable,
        "-m",
        "bertkit",
        "finetune",
        "--recipe",
        str(recipe),
        "--set",
        f"output.dir={broken}",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # 40 rows in batches of 4: 10 steps an epoch. Kill once the step-12 checkpoint
    # (mid-epoch 2, written every 3 steps) is complete.
    marker = broken / "checkpoints" / "checkpoint-12" / "bertkit.json"
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, (
        "the run ended before it could be killed: " + process.stderr.read().decode()
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (broken / "run.json").exists()  # a killed run never looks finished

    resumed = _bertkit("finetune", "--recipe", recipe, "--set", f"output.dir={broken}", "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert json.loads((broken / "run.json").read_text())["steps"] == 30
    assert _validation(broken) == pytest.approx(_validation(whole), rel=1e-5, abs=1e-6)


def test_resume_refuses_a_changed_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files):
    recipe = _recipe(tmp_path, tiny_model_dir, tiny_sentiment_files, epochs=1)
    env = _env(tmp_path)
    run = tmp_path / "run"
    assert _bertkit("finetune", "--recipe", recipe, "--set", f"output.dir={run}", env=env).returncode == 0
    (run / "run.json").unlink()  # pretend it stopped early

    changed = _bertkit(
        "finetune",
        "--recipe",
        recipe,
        "--set",
        f"output.dir={run}",
        "--set",
        "train.learning_rate=0.01",
        "--resume",
        env=env,
    )
    assert changed.returncode == 1
    assert "train.learning_rate" in changed.stderr
    assert "Traceback" not in changed.stderr


def _torchrun(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "bertkit", *map(str, args),
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)


@pytest.mark.parametrize("task", ["finetune", "pretrain"])
def test_two_processes_write_one_run_with_single_process_metrics(
    tmp_path, quiet_model, tiny_sentiment_files, tiny_corpus_file, task
):
    env = _env(tmp_path)
    if task == "finetune":
        # Same global batch (2 x 4 vs 1 x 8) and plain shuffling: the same examples per step.
        recipe = _recipe(tmp_path, quiet_model, tiny_sentiment_files, epochs=1, group_by_length="false")
        one = ["--set", "train.batch_size=8"]
        two = ["--set", "train.batch_size=4"]
    else:
        corpus = tiny_corpus_file
        recipe = tmp_path / "mlm.yaml"
        recipe.write_text(
            f"task: mlm\nmodel: {{name: {quiet_model}}}\n"
            f"data: {{train: {corpus}, validation: {corpus}, max_length: 32}}\n"
            "mlm: {sequences: line_by_line}\n"
            "train: {epochs: 1, learning_rate: 0.001, seed: 7, group_by_length: false}\n",
            encoding="utf-8",
        )
        one = ["--set", "train.batch_size=8"]
        two = ["--set", "train.batch_size=4"]
    single, double = tmp_path / "single", tmp_path / "double"

    first = _bertkit(task, "--recipe", recipe, "--set", f"output.dir={single}", *one, env=env)
    assert first.returncode == 0, first.stderr
    second = _torchrun(task, "--recipe", recipe, "--set", f"output.dir={double}", *two, env=env)
    assert second.returncode == 0, second.stderr[-3000:]

    assert (double / "run.json").is_file()
    assert (double / "model" / "model.safetensors").is_file()
    # The run directory holds what one process writes, nothing twice or half-written.
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())
    assert not list(double.rglob("*.tmp"))
    log = [json.loads(line) for line in (double / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == sorted(set(steps))  # one writer: no step logged twice
    # The summary is printed once, by the main process.
    assert second.stdout.count("model:") == 1
    ours, theirs = _validation(double), _validation(single)
    if task == "finetune":
        # Same examples per step, no dropout: the same model up to float summation order.
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-3)
        assert ours["accuracy"] == theirs["accuracy"]
    else:
        # Training masks are drawn per process, so the second process masks its half
        # of each batch differently: the loss is close, not equal (evaluation masks
        # are fixed). Masked accuracy over this tiny corpus's few dozen masked tokens
        # moves too much with that to compare.
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=0.02)
        assert 0.0 <= ours["masked_accuracy"] <= 1.0
