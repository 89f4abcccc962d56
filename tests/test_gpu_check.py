"""bench/gpu_check.py: the record it leaves without a GPU, without the shared data, and in a dry run.

Nobody on the team has a GPU, so the script's every stage is exercised here on the
CPU (`--dry-run`, tiny sizes) before someone runs it on one. Each test runs the
script as a user would, in a subprocess, offline, and reads the JSON record.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
DATA = ROOT.parent / "shared" / "data"
STAGES = [
    "environment",
    "finetune_bf16",
    "finetune_random_batches",
    "finetune_no_pad8",
    "finetune_fp16",
    "mlm",
    "inference",
    "mlm_compile",
    "finetune_padding_free",
    "mlm_dense",
]


@functools.cache
def _module() -> Any:
    """bench/gpu_check.py imported from its file (bench/ is not an installed package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "BERTKIT_CACHE": str(tmp_path / "cache"), **extra})
    env.pop("BERTKIT_DEBUG", None)
    return env


def _check(tmp_path: Path, *args: str, timeout: int = 600, **env: str) -> tuple[Any, dict[str, Any]]:
    """Run the script; return the finished process and the record it wrote."""
    output = tmp_path / "gpu_check.json"
    command = [sys.executable, str(SCRIPT), "--output", str(output), *args]
    done = subprocess.run(
        command, env=_env(tmp_path, **env), capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )
    assert output.is_file(), done.stdout + done.stderr
    return done, json.loads(output.read_text(encoding="utf-8"))


def _positive(stage: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = stage.get(key)
        assert isinstance(value, int | float) and value > 0, f"{stage['name']}: {key} = {value!r}"


def _share(stage: dict[str, Any], key: str) -> None:
    assert 0 <= stage[key] < 1, f"{stage['name']}: {key} = {stage[key]!r}"


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10G", None),  # not the A10: unknown, so no MFU without --peak-tflops
        ("Tesla V100-SXM2-16GB", None),
    ],
)
def test_the_peak_is_found_by_the_gpu_name(name, peak):
    assert _module().peak_for(name)[0] == peak


def test_flops_per_position_follow_the_readme_for_bert_base():
    import torch
    from transformers import BertConfig, BertForMaskedLM

    with torch.device("meta"):
        model = BertForMaskedLM(BertConfig())  # BERT-base
    facts = {
        "non_embedding_parameters": sum(p.numel() for p in model.bert.encoder.parameters()),
        "layers": 12,
        "hidden": 768,
        "vocab": 30522,
    }
    gpu_check = _module()
    assert facts["non_embedding_parameters"] == 85_054_464
    assert gpu_check.flops_per_position(facts, 128, mlm=False) == pytest.approx(524.48e6, rel=1e-5)
    assert gpu_check.flops_per_position(facts, 512, mlm=True) == pytest.approx(707.60e6, rel=1e-5)
    # The sparse head computes the decoder at the masked 15% of positions only.
    head = 6 * 768 * 30522
    sparse = gpu_check.flops_per_position(facts, 512, mlm=True, head_share=0.15)
    assert sparse == pytest.approx(707.60e6 - 0.85 * head, rel=1e-5)


def test_fp16_checks_catch_a_schedule_that_advances_on_skipped_steps():
    gpu_check = _module()
    sound = {"global_step": 40, "optimizer_steps": 37, "scheduler_steps": 37, "loss_scale": 2.0**14}
    result: dict[str, Any] = {}
    gpu_check.fp16_checks(result, sound, steps=40)
    assert result["skipped_steps"] == 3 and result["loss_scale"] == 2.0**14
    assert [c["ok"] for c in result["checks"] if c["ok"] is not None] == [True, True, True]

    result = {}
    gpu_check.fp16_checks(result, {**sound, "scheduler_steps": 40}, steps=40)
    failed = [c["check"] for c in result["checks"] if c["ok"] is False]
    assert failed == ["scheduler steps = optimizer steps (the schedule does not advance on skipped steps)"]


def test_stages_are_chosen_by_number_range_or_name():
    gpu_check = _module()
    assert gpu_check.parse_stages("1-3,mlm") == [0, 1, 2, 3, 5]
    assert gpu_check.parse_stages("all") == list(range(10))
    with pytest.raises(ValueError, match="stages are 0-9"):
        gpu_check.parse_stages("10")


def test_without_a_gpu_it_records_the_environment_says_so_and_exits_0(tmp_path):
    done, record = _check(tmp_path, CUDA_VISIBLE_DEVICES="")  # no GPU, even on a machine with one

    assert done.returncode == 0, done.stdout + done.stderr
    assert [stage["name"] for stage in record["stages"]] == ["environment"]
    environment = record["stages"][0]
    assert environment["status"] == "ok"
    assert environment["gpu"] is None and environment["cuda_available"] is False
    assert environment["message"].startswith("no GPU")
    assert environment["versions"]["torch"] and environment["versions"]["transformers"]
    assert record["result"].startswith("no GPU") and "no GPU" in done.stdout
    assert record["finished"] and record["running"] is None


def test_a_dry_run_without_the_shared_data_skips_the_stages_that_read_it(tmp_path):
    absent = tmp_path / "no-shared-data"
    done, record = _check(tmp_path, "--dry-run", "--data", str(absent))

    assert done.returncode == 0, done.stdout + done.stderr
    assert [stage["name"] for stage in record["stages"]] == STAGES
    assert record["stages"][0]["status"] == "ok"
    for stage in record["stages"][1:]:
        assert stage["status"] == "skipped", stage
        assert "shared public data is absent" in stage["reason"]


@pytest.mark.realdata
def test_a_killed_check_keeps_the_finished_stages_and_its_stage_dies_with_it(tmp_path):
    if not (DATA / "sst2" / "train.tsv").is_file():
        pytest.skip("../shared/data is absent")
    output = tmp_path / "gpu_check.json"
    command = [sys.executable, str(SCRIPT), "--dry-run", "--output", str(output), "--stages", "0,1"]
    check = subprocess.Popen(command, env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    running: dict[str, Any] | None = None
    while time.monotonic() < deadline and not (running and running["stage"] == 1 and running["pid"]):
        time.sleep(0.2)
        if output.is_file():
            running = json.loads(output.read_text(encoding="utf-8"))["running"]
    time.sleep(2)  # into stage 1's training
    assert running and running["name"] == "finetune_bf16"
    check.send_signal(signal.SIGKILL)
    check.wait()

    record = json.loads(output.read_text(encoding="utf-8"))
    assert [stage["name"] for stage in record["stages"]] == ["environment"]
    assert record["stages"][0]["status"] == "ok"
    assert record["running"]["name"] == "finetune_bf16" and record["finished"] is None
    stage = Path(f"/proc/{running['pid']}")
    for _ in range(50):  # it notices its parent is gone within a second or two
        if not stage.exists() or "State:\tZ" in (stage / "status").read_text():
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the stage process {running['pid']} outlived the killed check")


@pytest.mark.slow
@pytest.mark.realdata
def test_a_dry_run_runs_every_stage_on_the_cpu(tmp_path):
    if not (DATA / "sst2" / "train.tsv").is_file():
        pytest.skip("../shared/data is absent")
    done, record = _check(tmp_path, "--dry-run")

    assert done.returncode == 0, done.stdout + done.stderr
    stages = {stage["name"]: stage for stage in record["stages"]}
    assert list(stages) == STAGES
    expected = {name: "ok" for name in STAGES} | {"finetune_fp16": "skipped"}  # fp16 needs CUDA
    assert {name: stage["status"] for name, stage in stages.items()} == expected, record["stages"]
    assert "CUDA" in stages["finetune_fp16"]["reason"]
    assert record["checks_failed"] == []
    assert record["dry_run"] is True and record["finished"] and record["running"] is None

    environment = stages["environment"]
    assert environment["device"] == "cpu" and environment["auto_precision"] == "fp32"
    assert environment["optimizer"] == {"class": "AdamW", "fused": True}
    assert environment["arguments"]["mixed_precision"] == "no"
    assert all(check["ok"] for check in environment["checks"])

    for name in ("finetune_bf16", "finetune_random_batches", "finetune_no_pad8"):
        stage = stages[name]
        _positive(stage, "samples_per_second", "real_tokens_per_second", "tokens_per_second")
        _positive(stage, "window_seconds", "first_step_seconds")
        _positive(stage, "model_tflops_per_second", "mfu", "mfu_real_tokens", "wall_seconds", "train_loss")
        _share(stage, "padding_share")
        assert stage["real_tokens_per_second"] <= stage["tokens_per_second"]
        assert stage["ran"]["mixed_precision"] == "bf16" and stage["ran"]["optimizer_fused"] is True
        assert stage["environment_json_ran"]["mixed_precision"] == "bf16"
    # 16 examples a batch on the CPU: two sorted micro-batches of 8, padded to a multiple of 8 in bf16.
    assert stages["finetune_bf16"]["ran"]["micro_batches"] == 2
    assert stages["finetune_bf16"]["ran"]["pad_to_multiple_of"] == 8
    assert stages["finetune_random_batches"]["ran"]["micro_batches"] == 1
    assert stages["finetune_no_pad8"]["ran"]["pad_to_multiple_of"] is None
    # The same examples per step: sorting them into micro-batches pads less, padding to 8 more.
    assert stages["finetune_bf16"]["padding_share"] < stages["finetune_random_batches"]["padding_share"]
    assert stages["finetune_no_pad8"]["padding_share"] <= stages["finetune_bf16"]["padding_share"]
    assert set(record["comparisons"]) >= {"length_grouping_speedup", "pad_to_8_speedup", "compile_speedup"}
    # The A/Bs of padding-free rows and the sparse head: the same examples without padding, the
    # head at the masked positions only.
    packed = stages["finetune_padding_free"]
    assert packed["ran"]["micro_batches"] == 1 and packed["padding_share"] == pytest.approx(0.0, abs=1e-9)
    # Its positions are its real tokens: the same tokens per second counted either way.
    assert packed["real_tokens_per_second"] == pytest.approx(packed["tokens_per_second"])
    _positive(packed, "samples_per_second", "real_tokens_per_second")
    assert {"padding_free_speedup", "sparse_head_speedup"} <= set(record["comparisons"])

    for name in ("mlm", "mlm_compile", "mlm_dense"):
        stage = stages[name]
        _positive(stage, "tokens_per_second", "real_tokens_per_second", "mfu", "sequences", "train_loss")
        _share(stage, "padding_share")
    compiled = stages["mlm_compile"]
    assert compiled["ran"]["torch_compile"] is True
    _positive(compiled, "compile_seconds", "first_step_seconds")
    # The sparse head's gather breaks the graph in three, each recompiled once for the changing
    # number of masked positions.
    assert isinstance(compiled["recompiles"], int) and compiled["recompiles"] <= 3

    inference = stages["inference"]
    assert inference["texts"] == 300
    for run in ("fp32_batch64", "fp32_batch256"):
        _positive(inference["runs"][run], "texts_per_second", "seconds")
    # bertkit refuses bf16 prediction on a CPU; a dry run still runs its bf16 path (parity check included).
    assert "CUDA" in inference["bf16_refused"]
    _positive(inference["runs"]["bf16_batch256"], "texts_per_second", "seconds")
    _positive(inference, "bf16_speedup", "bf16_agreement")
    assert inference["fp32_batch64_vs_256_max_logit_diff"] < 1e-4
