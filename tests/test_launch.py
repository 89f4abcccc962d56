"""How a training command runs: the launch plan, the launcher's arguments, precision and devices.

The decisions are pure functions of the options, the environment and what the
hardware offers, so every branch a GPU machine takes is checked here on a CPU.
"""

from __future__ import annotations

import pytest

from bertkit.devices import Hardware, decide_placement, inference_precision
from bertkit.errors import RecipeError, UsageError
from bertkit.training.launch import (
    LAUNCHED,
    PLAIN_LAUNCH,
    Plan,
    child_arguments,
    launch_arguments,
    launched,
    plan_launch,
    resolved_config,
)


def _never(*_):  # a gpu_count that must not be asked
    raise AssertionError("the GPUs were counted although the answer did not depend on them")


def _gpus(n):
    return lambda: n


# --------------------------------------------------------------------------- who launched us


@pytest.mark.parametrize(
    "environ",
    [
        {LAUNCHED: PLAIN_LAUNCH},
        {"LOCAL_RANK": "0", "WORLD_SIZE": "1"},
        {"WORLD_SIZE": "2", "RANK": "1"},
        # Accelerate's one-process launcher sets neither WORLD_SIZE nor LOCAL_RANK.
        {"ACCELERATE_MIXED_PRECISION": "no"},
    ],
)
def test_a_launched_process_never_launches_again(environ):
    assert launched(environ)
    plan = plan_launch(None, "/some/config.yaml", device=None, gpu_count=_never, environ=environ)
    assert plan.in_process


def test_a_plain_shell_is_not_a_launcher():
    assert not launched({"PATH": "/usr/bin"})


def test_num_processes_that_contradicts_the_launcher_is_refused():
    with pytest.raises(UsageError, match="--num-processes 4: a launcher started this command in 2"):
        plan_launch(4, None, device=None, gpu_count=_never, environ={"WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    same = plan_launch(2, None, device=None, gpu_count=_never, environ={"WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert same.in_process


# --------------------------------------------------------------------------- the plan


def test_one_process_on_a_cpu_or_one_gpu_runs_here():
    assert plan_launch(None, None, device=None, gpu_count=_gpus(0), environ={}).in_process
    assert plan_launch(None, None, device=None, gpu_count=_gpus(1), environ={}).in_process
    assert plan_launch(None, None, device="cpu", gpu_count=_never, environ={}).in_process
    assert plan_launch(1, None, device=None, gpu_count=_gpus(1), environ={}).in_process


def test_several_gpus_get_one_process_each_never_data_parallel():
    plan = plan_launch(None, None, device=None, gpu_count=_gpus(4), environ={})
    assert plan.processes == 4 and not plan.in_process
    assert "4 GPUs" in plan.reason


def test_one_process_asked_for_on_several_gpus_sees_one_gpu():
    plan = plan_launch(1, None, device=None, gpu_count=_gpus(4), environ={})
    assert plan.in_process and plan.visible_devices == "0"
    narrowed = plan_launch(1, None, device=None, gpu_count=_gpus(2), environ={"CUDA_VISIBLE_DEVICES": "5,7"})
    assert narrowed.visible_devices == "5"


def test_num_processes_launches_that_many():
    plan = plan_launch(3, None, device="cpu", gpu_count=_never, environ={})
    assert plan == Plan(3, reason="--num-processes 3")


def _config(tmp_path, text, name="accelerate.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_multi_process_config_launches_with_it(tmp_path):
    config = _config(tmp_path, "distributed_type: MULTI_GPU\nnum_processes: 8\nnum_machines: 1\n")
    plan = plan_launch(None, config, device=None, gpu_count=_never, environ={})
    assert not plan.in_process and plan.processes is None and str(plan.config) == config
    assert plan_launch(2, config, device=None, gpu_count=_never, environ={}).processes == 2


@pytest.mark.parametrize(
    "text",
    [
        "distributed_type: 'NO'\nmixed_precision: bf16\n",
        "distributed_type: MULTI_GPU\nnum_processes: 1\nnum_machines: 1\ngpu_ids: '1'\n",
    ],
)
def test_a_one_process_config_runs_here_and_keeps_its_gpu(tmp_path, text):
    # The one-process launcher's child used to look unlaunched and relaunch itself forever.
    plan = plan_launch(None, _config(tmp_path, text), device=None, gpu_count=_never, environ={})
    assert plan.in_process
    assert plan.visible_devices == ("1" if "gpu_ids" in text else None)


def test_a_cpu_config_decides_the_device_and_refuses_another(tmp_path):
    config = _config(tmp_path, "distributed_type: 'NO'\nuse_cpu: true\n")
    assert plan_launch(None, config, device=None, gpu_count=_never, environ={}).device == "cpu"
    with pytest.raises(UsageError, match="use_cpu: true"):
        plan_launch(None, config, device="cuda", gpu_count=_never, environ={})


def test_an_unreadable_config_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="train.accelerate_config: cannot read"):
        plan_launch(None, str(tmp_path / "missing.yaml"), device=None, gpu_count=_never, environ={})
    with pytest.raises(RecipeError, match="not an Accelerate config"):
        plan_launch(None, _config(tmp_path, "- a\n- list\n"), device=None, gpu_count=_never, environ={})


# --------------------------------------------------------------------------- the launcher's arguments


def test_children_do_not_get_num_processes():
    argv = ["finetune", "--recipe", "r.yaml", "--num-processes", "2", "--set", "x=1", "--num-processes=3"]
    assert child_arguments(argv) == ["finetune", "--recipe", "r.yaml", "--set", "x=1"]


def test_without_a_config_every_launcher_setting_is_given():
    # A default `accelerate config` on the machine must not change the run.
    arguments = launch_arguments(
        ["finetune", "--recipe", "r.yaml", "--num-processes", "2"], Plan(2), port=1234
    )
    assert arguments[-5:] == ["-m", "bertkit", "finetune", "--recipe", "r.yaml"]
    for flag in ("--multi_gpu", "--mixed_precision", "--dynamo_backend", "--num_machines"):
        assert flag in arguments
    assert arguments[arguments.index("--main_process_port") + 1] == "1234"


def test_with_a_config_the_config_decides(tmp_path):
    arguments = launch_arguments(["pretrain"], Plan(None, tmp_path / "c.yaml"))
    assert arguments[:2] == ["--config_file", str(tmp_path / "c.yaml")]
    assert "--multi_gpu" not in arguments and "--num_processes" not in arguments


def test_relative_paths_in_a_config_resolve_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "examples" / "accelerate"
    folder.mkdir(parents=True)
    (tmp_path / "examples" / "deepspeed").mkdir()
    (tmp_path / "examples" / "deepspeed" / "zero2.json").write_text("{}")
    config = folder / "ds.yaml"
    config.write_text(
        "distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: ../deepspeed/zero2.json\n"
    )
    monkeypatch.chdir(tmp_path / "examples")  # neither the repository root nor the config's folder
    out = tmp_path / "out"
    out.mkdir()
    resolved = resolved_config(config, out)
    import yaml

    settings = yaml.safe_load(resolved.read_text())
    assert settings["deepspeed_config"]["deepspeed_config_file"] == str(
        tmp_path / "examples/deepspeed/zero2.json"
    )
    config.write_text(
        "distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: nowhere.json\n"
    )
    with pytest.raises(RecipeError, match="nowhere.json not found"):
        resolved_config(config, out)


def test_the_shipped_deepspeed_config_resolves_and_keeps_the_recipes_optimizer_and_schedule(
    tmp_path, monkeypatch
):
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)  # anywhere: the recipe's config resolves from its own folder
    resolved = resolved_config(root / "examples/accelerate/deepspeed-zero2.yaml", tmp_path)
    import yaml

    target = Path(yaml.safe_load(resolved.read_text())["deepspeed_config"]["deepspeed_config_file"])
    settings = json.loads(target.read_text())
    # A "scheduler" block would replace train.scheduler, and an "optimizer" block the fused AdamW.
    assert "scheduler" not in settings and "optimizer" not in settings


# --------------------------------------------------------------------------- precision


T4 = Hardware("cuda", "Tesla T4", (7, 5))
V100 = Hardware("cuda", "Tesla V100", (7, 0))
A100 = Hardware("cuda", "A100", (8, 0))
H100 = Hardware("cuda", "H100", (9, 0))
CPU = Hardware("cpu")


@pytest.mark.parametrize(
    ("hw", "precision", "tf32"),
    [
        (A100, "bf16", True),
        (H100, "bf16", True),
        (T4, "fp16", False),
        (V100, "fp16", False),
        (CPU, "fp32", False),
    ],
)
def test_auto_picks_bf16_only_where_the_gpu_has_it_in_hardware(hw, precision, tf32):
    # torch.cuda.is_bf16_supported() says yes on a T4 (it can emulate bf16): bertkit asks the hardware.
    placement = decide_placement("auto", hw)
    assert (placement.precision, placement.tf32) == (precision, tf32)


def test_fp32_is_ieee_fp32_unless_tf32_is_asked_for():
    assert decide_placement("fp32", A100).tf32 is False
    assert decide_placement("fp32", A100, tf32=True).tf32 is True
    assert decide_placement("bf16", A100, tf32=False).tf32 is False


@pytest.mark.parametrize(
    ("precision", "hw", "tf32", "message"),
    [
        ("bf16", T4, "auto", "no bf16 in hardware"),
        ("fp16", CPU, "auto", "fp16 needs a CUDA GPU"),
        ("fp32", T4, True, "train.tf32: TF32 needs"),
        ("fp32", CPU, True, "train.tf32"),
    ],
)
def test_what_the_hardware_cannot_run_is_refused(precision, hw, tf32, message):
    with pytest.raises(RecipeError, match=message):
        decide_placement(precision, hw, tf32)


def test_prediction_precision_follows_the_hardware():
    assert inference_precision("auto", H100) == "bf16"
    assert inference_precision("auto", T4) == "fp16"
    assert inference_precision("auto", CPU) == "fp32"
    assert inference_precision("fp32", H100) == "fp32"
    with pytest.raises(UsageError, match="half-precision prediction runs on CUDA"):
        inference_precision("bf16", CPU)
    with pytest.raises(UsageError, match="no bf16 in hardware"):
        inference_precision("bf16", T4)
    with pytest.raises(UsageError, match="expected one of"):
        inference_precision("fp8", H100)


def test_the_recipes_precision_wins_over_the_launchers(monkeypatch, capsys):
    """R1: a bf16 Accelerate config must not turn `precision: fp32` into a bf16 run."""
    from bertkit.devices import Placement
    from bertkit.recipe.base import TrainSection
    from bertkit.training.arguments import training_arguments

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.delenv(LAUNCHED, raising=False)
    args = training_arguments(
        TrainSection(), "/tmp/unused", Placement("cpu", "fp32", False, ""), evaluate=False, selection=None
    )
    assert args.mixed_precision == "no"
    assert "asks for mixed precision 'bf16'" in capsys.readouterr().err
    import os

    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"  # restored for whoever reads it next


def test_ddp_does_not_search_for_unused_parameters():
    from bertkit.devices import Placement
    from bertkit.recipe.base import TrainSection
    from bertkit.training.arguments import training_arguments

    args = training_arguments(
        TrainSection(), "/tmp/unused", Placement("cpu", "fp32", False, ""), evaluate=False, selection=None
    )
    assert args.ddp_find_unused_parameters is False


def test_fp16_uses_the_adamw_that_lets_loss_scaling_skip_a_step():
    """R8: fused AdamW steps on overflow itself, so the schedule would advance on skipped steps."""
    from bertkit.devices import Placement
    from bertkit.recipe.base import TrainSection
    from bertkit.training.arguments import training_arguments

    def optim(precision):
        placement = Placement("cpu", precision, False, "")  # built only, never run
        args = training_arguments(TrainSection(), "/tmp/unused", placement, evaluate=False, selection=None)
        return getattr(args.optim, "value", args.optim)

    assert optim("fp32") == "adamw_torch_fused"
    assert optim("fp16") == "adamw_torch"


def test_batch_size_auto_is_refused_under_several_processes(monkeypatch):
    from bertkit.recipe.base import TrainSection
    from bertkit.training.arguments import batch_size

    assert batch_size(TrainSection(batch_size="auto"), "cuda") == 128
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RecipeError, match="each would settle on its own"):
        batch_size(TrainSection(batch_size="auto"), "cuda")
    assert batch_size(TrainSection(batch_size=16), "cuda") == 16


def test_gradient_checkpointing_is_refused_under_fsdp(monkeypatch):
    from bertkit.devices import Placement
    from bertkit.recipe.base import TrainSection
    from bertkit.training.arguments import training_arguments

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(RecipeError, match="under FSDP it gathers every layer") as refused:
        training_arguments(
            TrainSection(gradient_checkpointing=True),
            "/tmp/unused",
            Placement("cpu", "fp32", False, ""),
            evaluate=False,
            selection=None,
        )
    assert "fsdp_activation_checkpointing: true" in refused.value.hint


def test_one_process_that_sees_several_gpus_is_refused(monkeypatch):
    """B3: the Trainer would wrap it in nn.DataParallel (and the NaN hook would see losses on every GPU)."""
    import torch

    from bertkit.devices import refuse_data_parallel

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UsageError, match="sees 4 GPUs and runs alone") as refused:
        refuse_data_parallel()
    assert "--num-processes 4" in refused.value.hint and "CUDA_VISIBLE_DEVICES=0" in refused.value.hint
    monkeypatch.setenv("WORLD_SIZE", "4")
    refuse_data_parallel()  # one of four launched processes: fine


def test_the_recipes_tf32_wins_over_what_accelerate_set(monkeypatch):
    """Accelerate turns TF32 on (legacy flag) for compiled fp32 runs; an fp32 run stays IEEE fp32.

    Reading the state back must not raise either: torch refuses to read its legacy flag
    once the new API was used, which TrainingArguments(tf32=...) does.
    """
    import torch

    from bertkit.devices import apply_tf32, tf32_in_effect

    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision, torch.backends.fp32_precision)
    try:
        matmul.allow_tf32 = True  # what accelerate/state.py does under torch.compile in fp32
        torch.backends.fp32_precision = "ieee"  # what TrainingArguments(tf32=False) does
        assert tf32_in_effect()  # the legacy flag wins over the global setting
        apply_tf32(False)
        assert not tf32_in_effect()
        apply_tf32(True)
        assert tf32_in_effect()
    finally:
        matmul.fp32_precision, conv.fp32_precision, torch.backends.fp32_precision = before
