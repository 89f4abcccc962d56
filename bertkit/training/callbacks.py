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


class DistinctRandomness(TrainerCallback):
    """Give every process but the first a random stream of its own, derived from the seed.

    The Trainer seeds every process alike, so processes given batches of the same
    shape (packed masked-LM blocks, say) would draw the same masks, the same random
    replacement tokens and the same dropout. Process 0 keeps the stream of a
    one-process run, so runs compare across process counts; a resumed run restores
    each process's own saved state after this.
    """

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw):
        if args.world_size > 1 and args.process_index > 0:
            from transformers import set_seed

            set_seed(args.seed + 7919 * args.process_index)


class EvalBatchFollowsTraining(TrainerCallback):
    """With `batch_size: auto`, evaluate with twice the training batch that was found to fit.

    The Trainer shrinks the training batch after running out of memory and retries,
    but leaves the evaluation batch where it started (256 on a GPU): a masked-LM
    evaluation at that size would run out of memory itself, and each retry would
    shrink the training batch further for nothing.
    """

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw):
        if state.train_batch_size:
            args.per_device_eval_batch_size = state.train_batch_size * 2


class LossScaleWatch(TrainerCallback):
    """Under fp16, count the steps loss scaling skipped: those where the scale went down.

    GradScaler halves the scale on every step whose gradients overflowed, and skips
    that step, so the count does not rest on who reported the skip (fused optimizers
    skip inside their step, unseen by Accelerate).
    """

    def __init__(self, scaler: Any) -> None:
        self.scaler = scaler
        self.overflows = 0
        self._last: float | None = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw):
        scale = float(self.scaler.get_scale())
        if self._last is not None and scale < self._last:
            self.overflows += 1
        self._last = scale
