"""The training guard: signals save and stop, NaN losses veto saves, and processes agree on both."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from transformers import TrainerControl, TrainerState

from bertkit.training.guard import TrainingGuard


class _Args:
    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.process_index, self.world_size = rank, world


class _Output(dict):
    pass


def _forward(guard: TrainingGuard, loss: float) -> None:
    """What the forward hook sees for one training batch."""
    module = torch.nn.Linear(1, 1)
    module.train()
    guard._inspect(module, None, _Output(loss=torch.tensor(loss)))


def _step(guard: TrainingGuard, step: int, *, log: bool = False) -> TrainerControl:
    control = TrainerControl()
    control.should_log = log
    state = TrainerState()
    state.global_step = step
    guard.on_step_end(_Args(), state, control)
    return control


def test_a_signal_saves_and_stops_at_the_end_of_the_step():
    guard = TrainingGuard()
    with guard.installed():
        os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler or `timeout` sends
        control = _step(guard, 4)
    assert guard.stopped and guard.signal_name == "SIGTERM"
    assert control.should_save and control.should_training_stop
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the previous handler is back


def test_a_second_signal_aborts_one_process():
    guard = TrainingGuard()
    with guard.installed(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_a_nan_loss_stops_and_vetoes_every_later_save():
    guard = TrainingGuard()
    _forward(guard, 1.0)
    assert not _step(guard, 1, log=True).should_training_stop
    _forward(guard, float("nan"))
    _step(guard, 2)  # not a decision point: nothing read from the device
    _forward(guard, 3.0)
    control = _step(guard, 3, log=True)
    assert control.should_training_stop and not control.should_save
    assert guard.bad_step == 2
    epoch_end = TrainerControl()
    epoch_end.should_save = True  # what the checkpoint schedule asks at the epoch end
    guard.on_epoch_end(_Args(), TrainerState(), epoch_end)
    assert not epoch_end.should_save
    with pytest.raises(Exception, match="became nan at step 2"):
        guard.check()


# --------------------------------------------------------------------------- two processes


def _rank(rank: int, world: int, init: str, out: str, scenario: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    os.environ.update({"WORLD_SIZE": str(world), "RANK": str(rank)})
    guard = TrainingGuard()
    guard.on_train_begin(_Args(rank, world), TrainerState(), TrainerControl())
    record = {}
    for step in range(1, 7):
        if scenario == "signal" and rank == 1 and step == 3:
            guard.signal_name = "SIGTERM"  # only process 1 got it
        _forward(guard, float("nan") if scenario == "nan" and rank == 1 and step == 2 else 1.0)
        control = _step(guard, step, log=step % 2 == 0)
        if control.should_training_stop:
            record = {"step": step, "save": control.should_save, "bad_step": guard.bad_step}
            break
    with open(f"{out}.{rank}", "w") as handle:
        json.dump(record, handle)
    dist.destroy_process_group()


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        # A signal that reached one process stops both at the same step, with a save.
        ("signal", {"step": 3, "save": True, "bad_step": None}),
        # A NaN on process 1 at step 2, read at the next logging step: both stop unsaved.
        ("nan", {"step": 2, "save": False, "bad_step": 2}),
    ],
)
def test_two_processes_agree(tmp_path, scenario, expected):
    import torch.multiprocessing as mp

    out = str(tmp_path / "rank")
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), out, scenario), nprocs=2, join=True)
    results = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in range(2)]
    assert results == [expected, expected]


def test_the_loss_hook_never_recompiles_a_compiled_model():
    """Under torch.compile the hook's state (a loss seen yet?) must not become a graph guard."""
    from torch._dynamo.utils import counters
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    config.problem_type = "single_label_classification"  # as bertkit's classifiers carry it
    model = BertForSequenceClassification(config).train()
    guard = TrainingGuard()
    guard.attach(model)
    compiled = torch.compile(model, backend="eager")
    counters.clear()
    ids, labels = torch.randint(0, 50, (2, 6)), torch.tensor([0, 1])
    for _ in range(3):
        compiled(input_ids=ids, labels=labels).loss.backward()
    assert counters["stats"]["unique_graphs"] == 1
    assert guard._seen is not None  # the hook did run, outside the graph


def test_processes_after_the_first_get_their_own_random_stream():
    from bertkit.training.callbacks import DistinctRandomness

    class Args:
        seed, world_size = 5, 2

        def __init__(self, rank):
            self.process_index = rank

    draws = []
    for rank in (0, 1):
        torch.manual_seed(5)  # what the Trainer does on every process
        DistinctRandomness().on_train_begin(Args(rank), TrainerState(), TrainerControl())
        draws.append(torch.rand(3))
    torch.manual_seed(5)
    assert torch.equal(draws[0], torch.rand(3))  # process 0 keeps a one-process run's stream
    assert not torch.equal(draws[0], draws[1])


def test_with_batch_size_auto_evaluation_follows_the_batch_that_fit():
    from transformers import TrainingArguments

    from bertkit.training.callbacks import EvalBatchFollowsTraining

    args = TrainingArguments(output_dir="/tmp/unused", per_device_eval_batch_size=256, use_cpu=True)
    state = TrainerState()
    state.train_batch_size = 16  # what the search settled on after running out of memory
    EvalBatchFollowsTraining().on_train_begin(args, state, TrainerControl())
    assert args.per_device_eval_batch_size == 32
