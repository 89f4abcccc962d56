"""Stop a run cleanly, and on every process at the same step: on a signal, or on a NaN loss.

- SIGINT (Ctrl-C) and SIGTERM (what schedulers, `timeout` and launchers send) ask
  for a stop: a checkpoint is saved at the end of the current step and training
  ends; the command then says how to resume. In one process a second signal aborts
  at once. Under a launcher the signal comes from it, once per worker, and it ends
  the workers itself after a grace period, so later signals are left to it.
- A NaN or infinite training loss stops training and vetoes every save the other
  callbacks ask for from then on, so the checkpoints on disk all hold weights from
  before the loss broke. A forward hook marks the loss on the device, without a
  host synchronisation per step; the mark is read only where the Trainer is about
  to log, evaluate or save (the same steps on every process).

Under several processes the processes agree at each step over a small CPU (gloo)
group: a signal that reached one process stops all of them at the same step, and a
non-finite loss on one process vetoes the saves of all, so none is left waiting in
a collective the others never enter.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState

from bertkit.console import err, is_main_process
from bertkit.errors import TrainingError
from bertkit.training.distributed import world_size

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NONE = 2**62  # "no bad step" in the min-reduction


class RankAgreement:
    """Agreement between processes on small host-side facts (a no-op in one process)."""

    def __init__(self) -> None:
        self.group: Any = None

    def start(self) -> None:
        """Create the CPU group (every process calls this at the same point)."""
        if world_size() == 1 or self.group is not None:
            return
        import torch.distributed as dist

        self.group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any process."""
        return self._min(-int(flag)) < 0

    def earliest(self, step: int | None) -> int | None:
        """The smallest of the processes' steps (None where a process has none)."""
        value = self._min(_NONE if step is None else step)
        return None if value == _NONE else value

    def _min(self, value: int) -> int:
        if self.group is None:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=self.group)
        return int(tensor.item())


class TrainingGuard(TrainerCallback):
    """Signals and non-finite losses (see the module docstring).

    Register it after every callback that asks for saves, so its decision comes last.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None  # the stop request this process received
        self.stopped = False  # the processes agreed to stop on a signal
        self.bad_step: int | None = None
        self.bad_loss: float | None = None
        self._agreement = RankAgreement()
        self._seen: Any = None  # any non-finite loss since the last step ended (device bool)
        self._seen_loss: Any = None
        self._first: Any = None  # (step, loss) of the first bad step, on the device
        self._handles: list[Any] = []
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ signals

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM while training (main thread only, as Python requires)."""
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            if is_main_process():
                err.print(
                    f"\n[yellow]stopping ({name}):[/yellow] saving a checkpoint after this step"
                    + (" (Ctrl-C again to abort)" if world_size() == 1 else "")
                )
        elif world_size() == 1:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
            err.print(f"[red]aborted ({name}):[/red] a resume starts from the last checkpoint saved")
            raise KeyboardInterrupt

    # ------------------------------------------------------------------ losses

    def attach(self, module: Any) -> None:
        """Watch the losses `module` returns while training: a model's output `loss`, or a loss
        module's own output (sentence-transformers computes the loss outside the model).

        The hook runs outside torch.compile: its Python state (has a loss been seen
        yet?) would otherwise become a guard of the compiled graph and recompile it.
        """
        import torch

        self._handles.append(module.register_forward_hook(torch.compiler.disable(self._inspect)))

    def _inspect(self, module: Any, inputs: Any, output: Any) -> None:
        import torch

        if isinstance(output, torch.Tensor):  # a loss module: its output is the loss
            loss, training = output, getattr(module, "model", module).training
        else:
            loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
            training = module.training
        if not training or loss is None:
            return
        loss = loss.detach().float().reshape(-1)[:1]
        bad = ~torch.isfinite(loss)
        if self._seen is None:
            self._seen, self._seen_loss = bad, loss
        else:
            self._seen_loss = torch.where(bad & ~self._seen, loss, self._seen_loss)
            self._seen = self._seen | bad

    def _fold_step(self, step: int) -> None:
        """Fold this step's mark into the first bad (step, loss), on the device."""
        import torch

        if self._seen is None:
            return
        record = torch.cat([torch.full_like(self._seen_loss, float(step)), self._seen_loss])
        if self._first is None:
            self._first = torch.where(self._seen, record, torch.full_like(record, -1.0))
        else:
            self._first = torch.where(self._seen & (self._first[:1] < 0), record, self._first)
        self._seen = None

    def _local_bad_step(self) -> int | None:
        """The first bad step this process saw (reads the device: decision points only)."""
        if self.bad_step is None and self._first is not None:
            step, loss = self._first.tolist()
            if step >= 0:
                self.bad_step, self.bad_loss = int(step), loss
        return self.bad_step

    # ------------------------------------------------------------------ decisions

    def on_train_begin(self, args, state: TrainerState, control: TrainerControl, **kw):
        self._agreement.start()

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kw):
        self._fold_step(state.global_step)
        if not self.stopped and self._agreement.any(self.signal_name is not None):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        decisions = (control.should_save, control.should_log, control.should_evaluate)
        if any(decisions) or control.should_training_stop:
            self._veto_if_bad(control)

    def on_epoch_end(self, args, state: TrainerState, control: TrainerControl, **kw):
        self._veto_if_bad(control)

    def on_train_end(self, args, state, control, **kw):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _veto_if_bad(self, control: TrainerControl) -> None:
        step = self._agreement.earliest(self._local_bad_step())
        if step is None:
            return
        if self.bad_step is None or step < self.bad_step:
            self.bad_step, self.bad_loss = step, None  # another process saw it first
        # Every later save request too (the epoch end's), and no evaluation of broken weights.
        control.should_training_stop = True
        control.should_save = False
        control.should_evaluate = False

    def check(self) -> None:
        """Raise if training was stopped for a non-finite loss."""
        if self.bad_step is not None:
            loss = f"{self.bad_loss}" if self.bad_loss is not None else "non-finite (on another process)"
            raise TrainingError(
                f"the training loss became {loss} at step {self.bad_step}",
                hint="lower train.learning_rate, or use train.precision=fp32 (or bf16 instead of fp16)",
            )
