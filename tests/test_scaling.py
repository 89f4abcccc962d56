"""Runs that survive being killed, and runs across two processes (gloo on CPU).

These start real `python -m bertkit` subprocesses: a SIGKILL'd run resumed from its
checkpoint must end exactly where an uninterrupted run ends, and a two-process run
must write one complete run directory with the metrics of a one-process run.
"""

from __future__ import annotations

import json
import os
import shutil
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _torchrun(*args: object, env: dict[str, str], processes: int = 2) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
        "-m", "bertkit", *map(str, args),
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)


def _processes_writing(folder: Path) -> list[int]:
    """Every process whose command line names `folder`: a launcher and its workers (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, (
        "the run ended before it could be stopped: " + process.stderr.read().decode()
    )
    assert path.exists(), f"{path} never appeared"


def _same_training(ours: Path, theirs: Path, rel: float) -> None:
    assert (
        json.loads((ours / "run.json").read_text())["steps"]
        == json.loads((theirs / "run.json").read_text())["steps"]
    )
    mine, other = _validation(ours), _validation(theirs)
    assert mine["loss"] == pytest.approx(other["loss"], rel=rel)
    assert mine["accuracy"] == other["accuracy"]


@pytest.fixture(scope="module")
def processes_setup(tmp_path_factory, tiny_model_dir, sentiment_96_files):
    """A dropout-free model, a recipe at default settings, and the one-process run to compare with."""
    tmp_path = tmp_path_factory.mktemp("processes")
    model = _no_dropout_model(tiny_model_dir, tmp_path / "model")
    recipe = _recipe(tmp_path, model, sentiment_96_files, epochs=3, learning_rate=0.003)
    env = _env(tmp_path)
    single = tmp_path / "single"
    # Global batch 48 on one process: six micro-batches of 8 (group_by_length is on).
    done = _bertkit(
        "finetune",
        "--recipe",
        recipe,
        "--set",
        f"output.dir={single}",
        "--set",
        "train.batch_size=48",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "masked" not in done.stderr
    return recipe, env, single


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_at_default_settings_train_as_one_process_does(tmp_path, processes_setup, processes):
    """The same global batch (48 = 2 x 24 = 3 x 16), each split into sorted micro-batches of 8.

    Every process must run the same number of steps (or the run hangs), each step
    must see the examples of the one-process step, and only the main process writes.
    """
    recipe, env, single = processes_setup
    run = tmp_path / "run"
    args = (
        "finetune",
        "--recipe",
        recipe,
        "--set",
        f"output.dir={run}",
        "--set",
        f"train.batch_size={48 // processes}",
    )
    if processes == 2:
        done = _torchrun(*args, env=env, processes=2)
    else:  # bertkit's own launcher
        done = _bertkit(*args, "--num-processes", "3", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    _same_training(run, single, rel=1e-4)
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in single.iterdir())
    assert not list(run.rglob("*.tmp"))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == sorted(set(steps))  # one writer: no step logged twice
    assert done.stdout.count("model:") == 1  # the summary is printed once, by the main process
    ran = json.loads((run / "environment.json").read_text())["ran"]
    assert ran["processes"] == processes and ran["mixed_precision"] == "no"


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_in_the_same_order(tmp_path, tiny_model_dir, sentiment_96_files):
    """SIGKILL every process mid-epoch, resume on two processes, end where an uninterrupted run ends.

    Dropout stays on: each process's random state must come back from the checkpoint.
    96 rows in global batches of 32: 3 steps an epoch; checkpoint-4 is mid-epoch 2.
    """
    recipe = _recipe(tmp_path, tiny_model_dir, sentiment_96_files, epochs=12, save_steps=4, batch_size=16)
    env = _env(tmp_path)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    done = _bertkit(
        "finetune", "--recipe", recipe, "--set", f"output.dir={whole}", "--num-processes", "2", env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]

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
    process = subprocess.Popen(
        [*command, "--num-processes", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for(broken / "checkpoints" / "checkpoint-4" / "bertkit.json", process)
    for pid in _processes_writing(broken):
        os.kill(pid, signal.SIGKILL)
    process.wait()
    assert not (broken / "run.json").exists()
    for later in broken.glob("checkpoints/checkpoint-*"):  # the kill raced past step 4: as if it had not
        if int(later.name.split("-")[1]) > 4:
            shutil.rmtree(later)

    one = _bertkit("finetune", "--recipe", recipe, "--set", f"output.dir={broken}", "--resume", env=env)
    assert one.returncode == 1
    assert "trained with 2 processes, 32 examples per step; this run has 1 process, 16" in one.stderr

    resumed = _bertkit(
        "finetune",
        "--recipe",
        recipe,
        "--set",
        f"output.dir={broken}",
        "--resume",
        "--num-processes",
        "2",
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-4" in resumed.stderr
    _same_training(broken, whole, rel=1e-5)


def test_ctrl_c_stops_every_process_with_a_checkpoint_and_says_how_to_resume(
    tmp_path, tiny_model_dir, sentiment_96_files
):
    recipe = _recipe(tmp_path, tiny_model_dir, sentiment_96_files, epochs=400, save_steps=5, batch_size=16)
    env = _env(tmp_path)
    run = tmp_path / "run"
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
    process = subprocess.Popen(
        [*command, "--num-processes", "2"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _wait_for(run / "checkpoints" / "checkpoint-5" / "bertkit.json", process)
    workers = [pid for pid in _processes_writing(run) if pid != process.pid]
    assert len(workers) == 2
    process.send_signal(signal.SIGINT)  # what the terminal sends the launcher on Ctrl-C
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()[-3000:]
    assert not _processes_writing(run)  # no worker left behind
    message = stderr.decode()
    assert message.count("stopped (SIGINT) at step") == 1  # said once, by the main process
    hint = (
        f"resume with: bertkit finetune --recipe {run / 'recipe.yaml'} --resume-from {run} --num-processes 2"
    )
    assert hint in message
    assert "Traceback" not in message
    stopped = int(message.split("stopped (SIGINT) at step ")[1].split(";")[0])
    assert (run / "checkpoints" / f"checkpoint-{stopped}" / "bertkit.json").is_file()
    assert stopped < 400 * 3


@pytest.mark.slow
def test_two_process_pretraining_writes_one_run_with_single_process_metrics(
    tmp_path, quiet_model, tiny_corpus_file
):
    env = _env(tmp_path)
    corpus = tiny_corpus_file
    recipe = tmp_path / "mlm.yaml"
    recipe.write_text(
        f"task: mlm\nmodel: {{name: {quiet_model}}}\n"
        f"data: {{train: {corpus}, validation: {corpus}, max_length: 32}}\n"
        "mlm: {sequences: line_by_line}\n"
        "train: {epochs: 1, learning_rate: 0.001, seed: 7}\n",
        encoding="utf-8",
    )
    single, double = tmp_path / "single", tmp_path / "double"
    first = _bertkit(
        "pretrain",
        "--recipe",
        recipe,
        "--set",
        f"output.dir={single}",
        "--set",
        "train.batch_size=8",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    args = ("pretrain", "--recipe", recipe, "--set", f"output.dir={double}", "--set", "train.batch_size=4")
    second = _torchrun(*args, env=env)
    assert second.returncode == 0, second.stderr[-3000:]

    assert (double / "model" / "model.safetensors").is_file()
    # The run directory holds what one process writes, nothing twice or half-written.
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())
    assert not list(double.rglob("*.tmp"))
    assert second.stdout.count("model:") == 1
    # Each process draws its own training masks (seeded per process), so the second
    # process masks its half of each batch differently from a one-process run: the
    # loss is close, not equal (evaluation masks are fixed).
    assert _validation(double)["loss"] == pytest.approx(_validation(single)["loss"], rel=0.02)
