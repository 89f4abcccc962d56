"""Dynamic batching: the units of concurrent requests, run together in length-sorted batches.

One inference thread takes units from a bounded queue. Once a unit waits, the thread
gathers more for at most `max_wait` seconds (or until `max_batch` units wait), sorts
what it took by length and cuts it into batches of at most `max_batch` units whose
padded size (units x longest) stays within `max_tokens`. While a batch runs, new
requests queue up, so under load batches fill without any waiting at all.

It waits only while requests come concurrently: once a batch held a single request,
the next runs at once (one client at a time gains nothing from waiting, and loses
the wait), until two requests meet in a batch again.

The model runs on this thread, never on the event loop: torch and the tokenizers
release the GIL, so the server goes on answering health checks and accepting
requests while a batch runs.

A unit that fails fails only its own request: when a batch mixing several requests
raises, each request's units are run again on their own.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any


class QueueFull(Exception):
    """The queue holds as many units as allowed: the client should retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is stopping and takes no new requests."""


@dataclass(frozen=True)
class BatchPolicy:
    """How units are batched (see the module docstring); the defaults are measured in bench/serve.py.

    Attributes:
        max_batch: units in one forward pass.
        max_tokens: padded tokens (units x longest) in one forward pass; a longer unit runs alone.
        max_wait: seconds the first waiting unit may wait for others.
        max_queue: units waiting at most; beyond, requests are refused (QueueFull).
    """

    max_batch: int = 32
    max_tokens: int = 16384
    max_wait: float = 0.002
    max_queue: int = 2048


@dataclass
class BatchStats:
    """One forward pass, for the server's metrics."""

    units: int
    tokens: int  # padded: units x longest
    seconds: float


class _Request:
    __slots__ = ("items", "outputs", "remaining", "future", "arrived")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.outputs: list[Any] = [None] * len(items)
        self.remaining = len(items)
        self.future: Future[list[Any]] = Future()
        self.arrived = time.monotonic()


class Batcher:
    """Runs `run(units) -> outputs` on batches of the units of concurrent requests.

    Args:
        run: the model: one output per prepared unit, in order.
        prepare: per unit, its tokens and what `run` takes for it (called on the
            inference thread, before sorting; e.g. the unit's token ids, so that a
            text is tokenized once).
        policy: batch sizes, token budget, wait and queue bound.
        on_batch: called after each forward pass (metrics).
    """

    def __init__(
        self,
        run: Callable[[list[Any]], list[Any]],
        prepare: Callable[[list[Any]], list[tuple[int, Any]]],
        policy: BatchPolicy,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self._run = run
        self._prepare = prepare
        self.policy = policy
        self._on_batch = on_batch
        self._pending: deque[tuple[_Request, int]] = deque()  # (request, index of its unit)
        self._cond = threading.Condition()
        self._closing = False
        self._concurrent = True  # whether the last batch held several requests (see the module docstring)
        self._seconds_per_unit = 0.01  # running estimate, for Retry-After
        self._thread = threading.Thread(target=self._loop, name="bertkit-inference", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Units waiting for a batch."""
        return len(self._pending)

    def submit(self, items: list[Any]) -> Future[list[Any]]:
        """Queue a request's units; the future gives their outputs, in order.

        Raises:
            QueueFull: the queue cannot take them all (nothing is queued).
            ShuttingDown: the batcher is closing.
        """
        request = _Request(items)
        if not items:
            request.future.set_result([])
            return request.future
        with self._cond:
            if self._closing:
                raise ShuttingDown
            if len(self._pending) + len(items) > self.policy.max_queue:
                wait = (len(self._pending) + len(items)) * self._seconds_per_unit
                raise QueueFull(max(1, math.ceil(wait)))
            self._pending.extend((request, i) for i in range(len(items)))
            self._cond.notify()
        return request.future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the queued ones, and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------ inference thread

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            if taken:
                self._run_taken(taken)

    def _take(self) -> list[tuple[_Request, int]] | None:
        """Wait for units, then up to max_wait for more; None once closed and empty."""
        policy = self.policy
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = self._pending[0][0].arrived + (policy.max_wait if self._concurrent else 0.0)
            while len(self._pending) < policy.max_batch and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken = []
            while self._pending and len(taken) < policy.max_batch:
                request, index = self._pending.popleft()
                if not request.future.done():  # a request that timed out is dropped
                    taken.append((request, index))
            self._concurrent = len({id(request) for request, _ in taken}) > 1
            return taken

    def _run_taken(self, taken: list[tuple[_Request, int]]) -> None:
        try:
            prepared = self._prepare([request.items[index] for request, index in taken])
        except Exception as exc:  # noqa: BLE001 - a request must never stop the thread
            self._fail_alone([(request, index, None) for request, index in taken], exc, prepared=False)
            return
        units = [(request, index, unit) for (request, index), (_, unit) in zip(taken, prepared, strict=True)]
        lengths = [length for length, _ in prepared]
        order = sorted(range(len(units)), key=lambda i: lengths[i])
        batch: list[int] = []
        for i in order:
            if batch and (len(batch) + 1) * lengths[i] > self.policy.max_tokens:
                self._forward([units[j] for j in batch], lengths[batch[-1]])
                batch = []
            batch.append(i)
        if batch:
            self._forward([units[j] for j in batch], lengths[batch[-1]])

    def _forward(self, units: list[tuple[_Request, int, Any]], longest: int) -> None:
        start = time.perf_counter()
        try:
            outputs = self._run([unit for _, _, unit in units])
        except Exception as exc:  # noqa: BLE001 - a request must never stop the thread
            self._fail_alone(units, exc)
            return
        seconds = time.perf_counter() - start
        self._seconds_per_unit = 0.8 * self._seconds_per_unit + 0.2 * seconds / len(units)
        if self._on_batch is not None:
            self._on_batch(BatchStats(len(units), len(units) * longest, seconds))
        for (request, index, _), output in zip(units, outputs, strict=True):
            _deliver(request, index, output)

    def _fail_alone(
        self, units: list[tuple[_Request, int, Any]], error: Exception, prepared: bool = True
    ) -> None:
        """Run each request's units on their own, so one request's failure fails only itself.

        With `prepared` false, preparing them failed: each request's are prepared again too.
        """
        requests: dict[int, list[tuple[_Request, int, Any]]] = {}
        for unit in units:
            requests.setdefault(id(unit[0]), []).append(unit)
        if len(requests) == 1:
            _fail(units[0][0], error)
            return
        for own in requests.values():
            request = own[0][0]
            try:
                if not prepared:
                    again = self._prepare([request.items[index] for _, index, _ in own])
                    own = [
                        (request, index, unit) for (_, index, _), (_, unit) in zip(own, again, strict=True)
                    ]
                outputs = self._run([unit for _, _, unit in own])
            except Exception as exc:  # noqa: BLE001
                _fail(request, exc)
                continue
            for (_, index, _), output in zip(own, outputs, strict=True):
                _deliver(request, index, output)


def _deliver(request: _Request, index: int, output: Any) -> None:
    request.outputs[index] = output
    request.remaining -= 1
    if request.remaining == 0:
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile (the request timed out)
            request.future.set_result(request.outputs)


def _fail(request: _Request, error: Exception) -> None:
    with contextlib.suppress(InvalidStateError):  # failed by another of its units, or cancelled
        request.future.set_exception(error)
