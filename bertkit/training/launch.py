"""`--num-processes N`: run the same command under Accelerate's launcher, one process per device."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

_OWN_FLAG = "--num-processes"


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


def launch_command(
    argv: list[str], processes: int | None, config: str | None, port: int | None = None
) -> list[str]:
    """The `accelerate launch` command line that runs `bertkit <argv>` in N processes.

    With a config file and no N, the config's own process count applies.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if processes:
        command += ["--num_processes", str(processes)]
    if config:
        command += ["--config_file", config]
    elif processes and processes > 1:
        # Without a config file, several processes on one machine is Accelerate's
        # multi-GPU mode (torch.distributed on CUDA, or gloo on CPU-only machines).
        command += ["--multi_gpu", "--num_machines", "1", "--main_process_port", str(port or free_port())]
    return [*command, "-m", "bertkit", *child_arguments(argv)]


def free_port() -> int:
    """A free TCP port on this machine, for the processes to meet on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def should_relaunch(processes: int | None, config: str | None) -> bool:
    """Whether this command must start the processes itself: asked to (--num-processes),
    or the recipe names an Accelerate config and no launcher started us."""
    from bertkit.training.distributed import world_size

    launched = world_size() > 1 or "ACCELERATE_CONFIG_DS_FIELDS" in os.environ or "LOCAL_RANK" in os.environ
    return not launched and bool(processes or config)


def relaunch(argv: list[str], processes: int | None, config: str | None) -> int:
    """Run this bertkit command under `accelerate launch`; return its exit code."""
    from bertkit.console import note

    command = launch_command(argv[1:], processes, config)
    note(f"launching through Accelerate: accelerate launch {' '.join(command[3:])}")
    return subprocess.call(command)
