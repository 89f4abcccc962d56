"""How a training command runs: in this process, or in several through Accelerate's launcher.

`bertkit finetune` starts the processes itself when asked (`--num-processes N`),
when the recipe names an Accelerate config for several processes
(`train.accelerate_config`), or when it sees several GPUs: one process per GPU,
never `nn.DataParallel`, the Trainer's slow fallback for one process on many GPUs.
A process that a launcher started (ours, `accelerate launch` or `torchrun`) never
launches again.

The launcher runs inside this process (Accelerate's own launch code, on torch's
elastic agent), so a failed worker ends the command with the worker's exit code and
the one-line error the worker printed, not the launcher's traceback; and Ctrl-C or
SIGTERM reaches the agent, which passes it to every worker once: each saves a
checkpoint at the end of its step and stops (see callbacks.TrainingGuard).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.errors import RecipeError, UsageError

LAUNCHED = "BERTKIT_LAUNCHED"  # set in the environment of every process bertkit launches:
PLAIN_LAUNCH, CONFIG_LAUNCH = "plain", "config"  # without or with an Accelerate config
_OWN_FLAG = "--num-processes"
_SINGLE = ("NO",)
_DATA_PARALLEL = ("MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU")


def launched(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a launcher started this process: bertkit, `accelerate launch` or `torchrun`.

    Every Accelerate launcher sets ACCELERATE_MIXED_PRECISION, including the
    single-process one, which sets neither WORLD_SIZE nor LOCAL_RANK.
    """
    return (
        LAUNCHED in environ
        or "LOCAL_RANK" in environ
        or int(environ.get("WORLD_SIZE", "1")) > 1
        or "ACCELERATE_MIXED_PRECISION" in environ
    )


@dataclass(frozen=True)
class Plan:
    """Where a training command runs.

    Attributes:
        processes: processes to launch (None: the Accelerate config's own count);
            0 means: run in this process.
        config: the Accelerate config to launch with, if any.
        reason: one line for the user.
        visible_devices: CUDA_VISIBLE_DEVICES for this process, when it must see
            fewer GPUs than the machine has (one process, several GPUs).
        device: a device the config decides (`use_cpu: true` -> cpu), else None.
    """

    processes: int | None
    config: Path | None = None
    reason: str = ""
    visible_devices: str | None = None
    device: str | None = None

    @property
    def in_process(self) -> bool:
        return self.processes == 0


def plan_launch(
    requested: int | None,
    config: str | None,
    *,
    device: str | None,
    gpu_count: Callable[[], int],
    environ: Mapping[str, str] = os.environ,
) -> Plan:
    """Decide how to run: in this process, or through the launcher with N processes.

    Args:
        requested: `--num-processes`, if given.
        config: `train.accelerate_config`, if set.
        device: `--device`, if given.
        gpu_count: how many GPUs this process sees (called only when it matters).
        environ: the environment (a launcher's variables say we were launched).

    Raises:
        UsageError: `--num-processes` that contradicts the launcher that started us.
        RecipeError: an Accelerate config that cannot be read.
    """
    if launched(environ):
        world = int(environ.get("WORLD_SIZE", "1"))
        if requested is not None and requested != world:
            raise UsageError(
                f"--num-processes {requested}: a launcher started this command in {world} "
                f"process{'es' if world > 1 else ''}",
                hint="drop --num-processes when you start bertkit with accelerate launch or torchrun",
            )
        return Plan(0, reason="started by a launcher")
    if config is not None:
        settings = read_accelerate_config(config)
        if not _one_process(settings):
            return Plan(requested, Path(config), f"the Accelerate config {config}")
        return _single_process_config(Path(config), settings, device)
    if requested is not None and requested > 1:
        return Plan(requested, reason=f"--num-processes {requested}")
    if device == "cpu":
        return Plan(0, reason="one process")
    gpus = gpu_count()
    if gpus > 1 and requested == 1:
        first = environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
        return Plan(0, reason=f"--num-processes 1: GPU {first} only", visible_devices=first)
    if gpus > 1:
        return Plan(gpus, reason=f"{gpus} GPUs visible: one process per GPU")
    return Plan(0, reason="one process")


def read_accelerate_config(config: str) -> dict[str, Any]:
    """The settings of an Accelerate config file (YAML or JSON).

    Raises:
        RecipeError: missing, unreadable or not a mapping.
    """
    import yaml

    path = Path(config)
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RecipeError(
            f"train.accelerate_config: cannot read {config}: {exc}",
            hint="point it at an Accelerate config file (see examples/accelerate/)",
        ) from None
    if not isinstance(settings, dict):
        raise RecipeError(
            f"train.accelerate_config: {config} is not an Accelerate config (a YAML mapping)",
            hint="create one with `accelerate config`, or start from examples/accelerate/",
        )
    return settings


def _one_process(settings: Mapping[str, Any]) -> bool:
    kind = str(settings.get("distributed_type", "NO")).upper()
    machines = int(settings.get("num_machines") or 1)
    processes = int(settings.get("num_processes") or 1)
    return kind in _SINGLE or (kind in _DATA_PARALLEL and processes == 1 and machines == 1)


def _single_process_config(config: Path, settings: Mapping[str, Any], device: str | None) -> Plan:
    """A one-process config runs here; what it can say for one process is applied."""
    use_cpu = bool(settings.get("use_cpu"))
    if use_cpu and device not in (None, "cpu"):
        raise UsageError(
            f"--device {device}: the Accelerate config {config} says use_cpu: true",
            hint="drop --device, or use a config without use_cpu",
        )
    ids = settings.get("gpu_ids")
    visible = None if ids in (None, "all") or use_cpu else str(ids).replace(" ", "")
    reason = f"the Accelerate config {config} is for one process"
    return Plan(0, config, reason, visible, "cpu" if use_cpu else None)


def child_arguments(argv: list[str]) -> list[str]:
    """The command's arguments without `--num-processes N` (the children must not relaunch)."""
    args, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == _OWN_FLAG:
            skip = True
        elif not item.startswith(_OWN_FLAG + "="):
            args.append(item)
    return args


def launch_arguments(argv: list[str], plan: Plan, port: int | None = None) -> list[str]:
    """The `accelerate launch` arguments that run `bertkit <argv>` as the plan says.

    Without a config every setting is given, so a default Accelerate config on the
    machine (`accelerate config`) cannot change the run; the workers take the
    precision from the recipe either way (arguments.training_arguments).

    Args:
        argv: the bertkit command's arguments (without the program name).
        plan: the launch plan (processes > 0, or a config).
        port: the port the processes meet on (default: a free one).
    """
    command = ["--num_processes", str(plan.processes)] if plan.processes else []
    if plan.config is not None:
        command += ["--config_file", str(plan.config)]
    else:
        # Without a config file, several processes on one machine is Accelerate's
        # multi-GPU mode (torch.distributed on CUDA, or gloo on CPU-only machines).
        command += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(port or free_port())]
    return [*command, "-m", "bertkit", *child_arguments(argv)]


def free_port() -> int:
    """A free TCP port on this machine, for the processes to meet on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resolved_config(config: Path, folder: Path) -> Path:
    """A copy of an Accelerate config whose relative file paths are made absolute.

    Accelerate reads `deepspeed_config_file` relative to the current folder; a
    recipe's config is read relative to its own folder (as the recipe's data paths
    are), falling back to the current folder.

    Raises:
        RecipeError: a path the config names exists in neither place.
    """
    import yaml

    settings = read_accelerate_config(str(config))
    deepspeed = settings.get("deepspeed_config")
    name = deepspeed.get("deepspeed_config_file") if isinstance(deepspeed, dict) else None
    if isinstance(name, str) and not Path(name).is_absolute():
        candidates = [config.parent / name, Path.cwd() / name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise RecipeError(
                f"{config}: deepspeed_config_file {name} not found beside the config or in {Path.cwd()}",
                hint="give a path relative to the Accelerate config's folder, or an absolute one",
            )
        deepspeed["deepspeed_config_file"] = str(found.resolve())
    target = folder / config.name
    target.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return target


def run_launcher(arguments: list[str]) -> int:
    """Run `accelerate launch <arguments>` in this process; return the command's exit code.

    A worker's failure ends with that worker's exit code (its error is already
    printed), a signal with 128 + its number; the launcher's own tracebacks and
    log lines are kept out of the way.
    """
    import subprocess
    import tempfile

    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = launch_command_parser().parse_args(arguments)
    marker = CONFIG_LAUNCH if args.config_file else PLAIN_LAUNCH
    with tempfile.TemporaryDirectory(prefix="bertkit-launch-") as scratch:
        if args.config_file:
            args.config_file = str(resolved_config(Path(args.config_file), Path(scratch)))
        with _environment({LAUNCHED: marker}), _launcher_logs_off():
            try:
                launch_command(args)
            except ChildFailedError as exc:
                _, failure = exc.get_first_failure()
                code = failure.exitcode
                return 128 - code if code < 0 else code  # -N: killed by signal N
            except SignalException as exc:
                return 128 + int(exc.sigval)
            except subprocess.CalledProcessError as exc:
                return exc.returncode
    return 0


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables (which the launched processes inherit) for a while."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _launcher_logs_off() -> Iterator[None]:
    """Silence the elastic agent's and Accelerate's log lines: the workers say what happened."""
    loggers = [logging.getLogger(name) for name in ("torch.distributed.elastic", "accelerate")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def relaunch(argv: list[str], plan: Plan) -> int:
    """Run this bertkit command in the processes the plan asks for; return its exit code."""
    from bertkit.console import note

    arguments = launch_arguments(argv[1:], plan)
    shown = " ".join(arguments)
    note(f"launching through Accelerate ({plan.reason}): accelerate launch {shown}")
    # The terminal's Ctrl-C reaches only this process (the workers run in sessions of
    # their own); the agent installs its handlers once the workers start, and until
    # then an interrupt simply ends the command.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return run_launcher(arguments)


def narrow_devices(plan: Plan) -> None:
    """Make this process see only the plan's GPUs (before CUDA starts)."""
    if plan.visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = plan.visible_devices
