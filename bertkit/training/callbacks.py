"""Trainer callbacks: one rich progress bar instead of a wall of logs, and a JSONL log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from bertkit.console import err
from bertkit.errors import TrainingError


class RichProgress(TrainerCallback):
    """A progress bar with loss and throughput; evaluation results as one line each.

    Args:
        examples_per_step: examples consumed by one optimizer step on all devices.
        metric: the main evaluation metric, shown after each evaluation.
    """

    def __init__(self, examples_per_step: int, metric: str | None = None) -> None:
        self.examples_per_step = examples_per_step
        self.metric = metric
        self.progress: Progress | None = None
        self.task: Any = None
        self.start = 0.0
        self.start_step = 0
        self.loss: float | None = None

    @classmethod
    def for_args(cls, args: TrainingArguments, metric: str | None = None) -> RichProgress:
        """A progress bar counting the examples one optimizer step takes on all devices."""
        per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
        )
        return cls(per_step, metric)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]training[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=err,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, status="")
        self.progress.update(self.task, completed=state.global_step)
        self.start = time.perf_counter()
        self.start_step = state.global_step

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw):
        if self.progress is None:
            return
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = (state.global_step - self.start_step) * self.examples_per_step / elapsed
        loss = f"loss {self.loss:.4f}  " if self.loss is not None else ""
        self.progress.update(self.task, completed=state.global_step, status=f"{loss}{rate:,.1f} ex/s")

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kw):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_evaluate(self, args, state: TrainerState, control, metrics=None, **kw):
        if self.progress is None or not metrics:
            return
        shown = [f"loss {metrics['eval_loss']:.4f}"] if "eval_loss" in metrics else []
        if self.metric and f"eval_{self.metric}" in metrics:
            shown.append(f"{self.metric} {metrics[f'eval_{self.metric}']:.4f}")
        epoch = f"epoch {state.epoch:.2f}" if state.epoch is not None else f"step {state.global_step}"
        self.progress.console.print(f"  [cyan]eval[/cyan] {epoch}: {', '.join(shown)}")

    def on_train_end(self, args, state, control, **kw):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class JsonlLog(TrainerCallback):
    """Append every Trainer log record (step, epoch, loss, lr, eval metrics) to a JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state: TrainerState, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")


class StopOnNonFinite(TrainerCallback):
    """Stop training at the first step whose training loss is NaN or infinite.

    A forward hook marks a non-finite loss on the device, without a synchronisation
    per step; the mark is read whenever the Trainer is about to log, evaluate or
    save. A bad step then stops the run and vetoes the save, so the checkpoints on
    disk all hold weights from before the loss broke. Register it after every
    callback that asks for saves, so its veto comes last.
    """

    def __init__(self) -> None:
        self.bad_step: int | None = None
        self.bad_loss: float | None = None
        self._seen: Any = None  # any non-finite loss since the last step ended (device bool)
        self._first: Any = None  # (step, loss) of the first bad step, on the device
        self._handle: Any = None

    def attach(self, model: Any) -> None:
        """Watch the losses `model` returns while training."""
        self._handle = model.register_forward_hook(self._inspect)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _inspect(self, module: Any, inputs: Any, output: Any) -> None:
        import torch

        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if not module.training or loss is None:
            return
        loss = loss.detach().float().reshape(-1)[:1]
        bad = ~torch.isfinite(loss)
        if self._seen is None:
            self._seen, self._seen_loss = bad, loss
        else:
            self._seen_loss = torch.where(bad & ~self._seen, loss, self._seen_loss)
            self._seen = self._seen | bad

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kw):
        import torch

        if self._seen is not None:
            step = torch.full_like(self._seen_loss, float(state.global_step))
            record = torch.cat([step, self._seen_loss])
            if self._first is None:
                self._first = torch.where(self._seen, record, torch.full_like(record, -1.0))
            else:
                fresh = self._seen & (self._first[:1] < 0)
                self._first = torch.where(fresh, record, self._first)
            self._seen = None
        decisions = (control.should_save, control.should_log, control.should_evaluate)
        if any(decisions) or control.should_training_stop:
            self._veto_if_bad(control)

    def on_epoch_end(self, args, state: TrainerState, control: TrainerControl, **kw):
        self._veto_if_bad(control)

    def on_train_end(self, args, state, control, **kw):
        self.detach()

    def _veto_if_bad(self, control: TrainerControl) -> None:
        if self.bad_step is None and self._first is not None:
            step, loss = self._first.tolist()
            if step >= 0:
                self.bad_step, self.bad_loss = int(step), loss
        if self.bad_step is not None:  # every later save request too (the epoch end's)
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False

    def check(self) -> None:
        """Raise if training was stopped for a non-finite loss."""
        if self.bad_step is not None:
            raise TrainingError(
                f"the training loss became {self.bad_loss} at step {self.bad_step}",
                hint="lower train.learning_rate, or use train.precision=fp32 (or bf16 instead of fp16)",
            )
