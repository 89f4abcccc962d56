"""Several processes, one run: agree on names, let one process write, share its errors.

`accelerate launch` and `torchrun` start one process per device, each running the
same bertkit command. They must agree on the run directory (its name has a
timestamp), only the main process may create or write it, and an error found by
the main process (a run directory that already holds a run, say) must stop every
process, not leave the others waiting forever.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from bertkit.console import is_main_process

T = TypeVar("T")


def world_size() -> int:
    """Processes in this run, from the launcher's environment (1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join_processes(device: str) -> None:
    """Join the process group the launcher set up (a no-op in a single process).

    Call it once, early: Accelerate keeps one process state, and on CPU-only runs it
    must be told so (`cpu=True`) to use the gloo backend instead of none at all.
    """
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=device == "cpu")


def leave_processes() -> None:
    """Leave the process group, if this process joined one (before it exits).

    A process that exits still in the group can abort at interpreter shutdown
    ("terminate called without an active exception"), and its launcher then reports
    a crash where there was a clean error. Looks torch up without importing it.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _state():
    from accelerate import PartialState

    return PartialState()


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on the main process only and give its result, or its error, to all.

    Raises:
        BertkitError: whatever `fn` raised on the main process, on every process.
    """
    if world_size() == 1:
        return fn()
    from accelerate.utils import broadcast_object_list

    from bertkit.errors import BertkitError

    message: list[object] = [None]
    if is_main_process():
        try:
            message[0] = ("ok", fn())
        except BertkitError as exc:
            message[0] = ("error", exc)
    broadcast_object_list(message, from_process=0)
    kind, value = message[0]  # type: ignore[misc]
    if kind == "error":
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def barrier() -> None:
    """Wait until every process gets here (a no-op in a single process)."""
    if world_size() > 1:
        _state().wait_for_everyone()


@contextmanager
def local_main_first() -> Iterator[None]:
    """Let each machine's first process do something (fill a disk cache) before the others.

    Used around tokenization: the first process tokenizes into the cache and the
    others then read it, instead of every process tokenizing the whole data set.
    The first process lets the others go even when it fails, so none waits forever.
    """
    if world_size() == 1:
        yield
        return
    first = os.environ.get("LOCAL_RANK", "0") == "0"
    if not first:
        barrier()
    try:
        yield
    finally:
        if first:
            barrier()
