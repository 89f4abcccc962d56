"""The server's dynamic batching and when it packs rows (bertkit.serving), on stand-ins: no HTTP, no model."""

from __future__ import annotations

import threading
import time

import pytest

from bertkit.serving.batching import Batcher, BatchPolicy, QueueFull, ShuttingDown

TIMEOUT = 10


class Model:
    """Records the batches it runs; blocks while `gate` is closed; fails on the unit `bad`."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()

    def run(self, items: list[str]) -> list[str]:
        self.running.set()
        self.gate.wait(TIMEOUT)
        self.batches.append(list(items))
        if "bad" in items:
            raise ValueError("the model failed on 'bad'")
        return [item.upper() for item in items]

    @staticmethod
    def prepare(items: list[str]) -> list[tuple[int, str]]:
        if "unreadable" in items:
            raise ValueError("cannot tokenize 'unreadable'")
        return [(len(item), item) for item in items]


def batcher(model: Model, **policy: float) -> Batcher:
    return Batcher(model.run, model.prepare, BatchPolicy(**{"max_wait": 0.2, **policy}))


def test_concurrent_requests_run_together_sorted_by_length_and_each_gets_its_own_outputs():
    model = Model()
    runner = batcher(model, max_batch=4)
    futures = [runner.submit([text]) for text in ("aaaa", "b", "ccc", "dd", "eeeee")]
    assert [f.result(TIMEOUT) for f in futures] == [["AAAA"], ["B"], ["CCC"], ["DD"], ["EEEEE"]]
    # The first four waited for each other (up to max_wait) and ran as one batch, shortest first.
    assert model.batches == [["b", "dd", "ccc", "aaaa"], ["eeeee"]]
    runner.close()


def test_one_request_at_a_time_runs_at_once_and_concurrent_ones_wait_for_each_other():
    model = Model()
    runner = batcher(model, max_batch=4, max_wait=2.0)
    assert runner.submit(["first"]).result(TIMEOUT) == ["FIRST"]  # waited 2 s: nothing came
    start = time.monotonic()
    assert runner.submit(["alone"]).result(TIMEOUT) == ["ALONE"]
    assert time.monotonic() - start < 1.0  # the last batch held one request: no wait
    model.gate.clear()
    model.running.clear()
    busy = runner.submit(["busy"])  # runs at once, and blocks in the model
    assert model.running.wait(TIMEOUT)
    queued = [runner.submit([text]) for text in ("b", "c")]  # meet in the next batch
    model.gate.set()
    assert busy.result(TIMEOUT) == ["BUSY"] and [f.result(TIMEOUT) for f in queued] == [["B"], ["C"]]
    assert model.batches[-1] == ["b", "c"]
    runner.close()


def test_a_request_of_several_units_gets_them_back_in_its_own_order():
    model = Model()
    runner = batcher(model, max_batch=8)
    first, second = runner.submit(["ccc", "a", "bb"]), runner.submit(["dddd", "e"])
    assert first.result(TIMEOUT) == ["CCC", "A", "BB"]
    assert second.result(TIMEOUT) == ["DDDD", "E"]
    assert model.batches == [["a", "e", "bb", "ccc", "dddd"]]
    runner.close()


def test_batches_keep_their_padded_size_within_the_token_budget():
    model = Model()
    runner = batcher(model, max_batch=8, max_tokens=6)
    assert runner.submit(["a", "bb", "ccc", "dddd", "eeeeeeeeee"]).result(TIMEOUT) == [
        "A", "BB", "CCC", "DDDD", "EEEEEEEEEE",
    ]  # fmt: skip
    # [a, bb] pads to 2 x 2 = 4 tokens; adding ccc would make 3 x 3 = 9 > 6. A unit over
    # the budget on its own still runs, alone.
    assert model.batches == [["a", "bb"], ["ccc"], ["dddd"], ["eeeeeeeeee"]]
    runner.close()


def test_a_unit_that_fails_fails_only_its_own_request():
    model = Model()
    runner = batcher(model, max_batch=8)
    good, bad = runner.submit(["fine", "ok"]), runner.submit(["bad"])
    assert good.result(TIMEOUT) == ["FINE", "OK"]
    with pytest.raises(ValueError, match="'bad'"):
        bad.result(TIMEOUT)
    # The mixed batch failed; each request was then run on its own.
    assert model.batches == [["ok", "bad", "fine"], ["ok", "fine"], ["bad"]]
    assert runner.submit(["after"]).result(TIMEOUT) == ["AFTER"]  # the thread lives on
    runner.close()


def test_a_unit_that_cannot_be_prepared_fails_only_its_own_request():
    model = Model()
    runner = batcher(model, max_batch=8)
    good, bad = runner.submit(["fine"]), runner.submit(["unreadable"])
    assert good.result(TIMEOUT) == ["FINE"]
    with pytest.raises(ValueError, match="cannot tokenize"):
        bad.result(TIMEOUT)
    assert model.batches == [["fine"]]
    runner.close()


def test_a_full_queue_refuses_a_request_whole_and_says_when_to_retry():
    model = Model()
    model.gate.clear()
    runner = batcher(model, max_batch=1, max_queue=3, max_wait=0.0)
    running = runner.submit(["x"])  # taken by the thread, which blocks in the model
    assert model.running.wait(TIMEOUT)
    queued = runner.submit(["a", "b", "c"])
    with pytest.raises(QueueFull) as refused:
        runner.submit(["d"])
    assert refused.value.retry_after >= 1
    assert runner.queued == 3  # nothing of the refused request was queued
    model.gate.set()
    assert running.result(TIMEOUT) == ["X"] and queued.result(TIMEOUT) == ["A", "B", "C"]
    runner.close()


def test_a_request_given_up_on_is_dropped_before_it_runs():
    model = Model()
    model.gate.clear()
    runner = batcher(model, max_batch=1, max_wait=0.0)
    first = runner.submit(["first"])
    assert model.running.wait(TIMEOUT)
    abandoned = runner.submit(["abandoned"])
    assert abandoned.cancel()  # what the server does when a request times out
    last = runner.submit(["last"])
    model.gate.set()
    assert first.result(TIMEOUT) == ["FIRST"] and last.result(TIMEOUT) == ["LAST"]
    assert ["abandoned"] not in model.batches


def test_closing_finishes_the_queued_requests_then_refuses_new_ones():
    model = Model()
    model.gate.clear()
    runner = batcher(model, max_batch=2, max_wait=0.0)
    futures = [runner.submit([f"t{i}"]) for i in range(5)]
    assert model.running.wait(TIMEOUT)
    closer = threading.Thread(target=runner.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(ShuttingDown):
        runner.submit(["late"])
    model.gate.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert [f.result(0) for f in futures] == [[f"T{i}"] for i in range(5)]


def test_served_batches_run_as_padding_free_rows_only_with_torch_on_the_cpu_for_bert_models():
    from types import SimpleNamespace

    from bertkit.serving.rows import can_pack

    def predictor(device: str, model_type: str = "bert", **extra) -> SimpleNamespace:
        config = SimpleNamespace(model_type=model_type, position_embedding_type="absolute", is_decoder=False)
        return SimpleNamespace(device=device, model=SimpleNamespace(config=config), **extra)

    assert can_pack(predictor("cpu"))
    assert not can_pack(predictor("cuda"))  # a GPU keeps padded batches: its matrix units stay busier
    assert not can_pack(predictor("cpu", input_names=("input_ids",)))  # an ONNX Runtime predictor
    assert not can_pack(predictor("cpu", model_type="roberta"))  # positions numbered from the padding id


def test_units_asking_for_different_settings_run_apart_and_come_back_in_order():
    from bertkit.serving.endpoint import run_by_setting

    calls = []

    def run(units: list[tuple[str, int]], top_k: int) -> list[str]:
        calls.append(([text for text, _ in units], top_k))
        return [text * top_k for text, _ in units]

    units = [("a", 2), ("b", 1), ("c", 2), ("d", 3)]
    assert run_by_setting(units, lambda unit: unit[1], run) == ["aa", "b", "cc", "ddd"]
    assert calls == [(["a", "c"], 2), (["b"], 1), (["d"], 3)]
