"""What a task serves: its request body, the units the server batches, and its answer.

A task's `serve.py` defines a subclass of `Endpoint`. The server calls it in this order:

    Endpoint.load(folder, options)       once, on a background thread at start-up
    endpoint.items(body)                 on the event loop: a request's units, in order
    endpoint.prepare(items)              on the inference thread: tokens per unit, and what run takes
    endpoint.run(prepared)               on the inference thread: one output per prepared unit
    endpoint.answer(body, outputs)       on the event loop: the JSON answer

`run` receives units of several requests at once (a length-sorted batch), so it
must not depend on which request a unit came from; what a request asks beyond its
units (top_k, a threshold) is applied in `answer`, or carried in the unit itself.
The answer's records are the ones `bertkit predict --json` prints for the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: unknown fields are refused (a misspelt field is never silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class RequestProblem(Exception):
    """A request the model cannot answer as asked (HTTP 422), with the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Endpoint:
    """The part of a task's package that serves its models.

    Attributes:
        task: the task's name.
        body: the pydantic model of a request to POST /v1/predict.
        example: an example request body, shown in the OpenAPI docs.
        options: the `bertkit serve` options that apply to the task's models.
        predictor: the loaded model (the same object `bertkit predict` uses).
        max_length: the longest input in tokens.
    """

    task: ClassVar[str]
    body: ClassVar[type[Body]]
    example: ClassVar[dict[str, Any]]
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, predictor: Any, source: Path, max_length: int, backend: str) -> None:
        self.predictor = predictor
        self.source = source
        self.max_length = max_length
        self.backend = backend

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        """Refuse option combinations the task's models cannot serve, before anything loads."""

    @classmethod
    def load(cls, folder: Path | None, options: dict[str, Any]) -> Endpoint:
        """Load the model as `bertkit predict` would with the same options."""
        raise NotImplementedError

    def items(self, body: Any) -> list[Any]:
        """The units of one request, in the order of its answer."""
        raise NotImplementedError

    def texts(self, item: Any) -> list[str]:
        """The texts of a unit, for the server's limit on characters per text."""
        return [item]

    def prepare(self, items: list[Any]) -> list[tuple[int, Any]]:
        """Per unit, its tokens (the batcher sorts by them and keeps batches under its token
        budget) and what `run` takes for it: by default the unit itself."""
        return list(zip(self.lengths(items), items, strict=True))

    def lengths(self, items: list[Any]) -> list[int]:
        """Tokens per unit, as the model reads it."""
        return token_counts(self.predictor.tokenizer, items, max_length=self.max_length)

    def run(self, units: list[Any]) -> list[Any]:
        """The model's output for each prepared unit, in order (one forward pass where it fits)."""
        raise NotImplementedError

    def answer(self, body: Any, outputs: list[Any]) -> dict[str, Any]:
        """The JSON answer to a request, from the outputs of its units."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """What GET /v1/model says besides the task, backend and version (labels, dimensions)."""
        return {}


def token_counts(
    tokenizer: Any, texts: list[str], pairs: list[str] | None = None, *, max_length: int
) -> list[int]:
    """Tokens of each text (and its pair) as the model reads them: special tokens in, truncated."""
    from bertkit.tokenization import clip

    first = [clip(text, max_length) for text in texts]
    second = [clip(text, max_length) for text in pairs] if pairs is not None else None
    encoded = tokenizer(first, second, truncation=True, max_length=max_length, return_length=True)
    return list(encoded["length"])


def run_by_setting(
    units: list[Any], setting: Callable[[Any], Hashable], run: Callable[[list[Any], Any], list[Any]]
) -> list[Any]:
    """Outputs of units whose requests asked for different settings (a top_k), in order.

    The units of each setting run together: `run(units, setting)`.
    """
    outputs: list[Any] = [None] * len(units)
    for value in dict.fromkeys(setting(unit) for unit in units):
        index = [i for i, unit in enumerate(units) if setting(unit) == value]
        for i, output in zip(index, run([units[i] for i in index], value), strict=True):
            outputs[i] = output
    return outputs
