"""The FastAPI application of `bertkit serve`.

Routes:
    POST /v1/predict   the task's request body -> {"predictions": [...]}, the records
                       `bertkit predict --json` prints for the same inputs
    GET  /v1/model     task, backend, labels, max length, version
    GET  /health       200 {"status": "ready"} once the model is loaded, else 503
    GET  /metrics      Prometheus text format
    GET  /docs         OpenAPI documentation (and /openapi.json)

Every error is JSON, `{"error": {"code", "message", ...}}`, with its HTTP status:
400 a body that is not JSON, 401 a missing or wrong API key, 413 a request over the
limits, 422 a body with wrong or missing fields, 503 (with Retry-After) a full
queue, a model still loading or a server stopping, 504 a request over the timeout,
500 a failure of the model on this request (the server stays up).

The model loads on a background thread, so the server answers /health (503,
"loading") from the start. This module does not use `from __future__ import
annotations`: FastAPI reads the request body's type from the handler's signature.
"""

import asyncio
import gc
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bertkit import __version__
from bertkit.errors import BertkitError
from bertkit.serving.batching import Batcher, QueueFull, ShuttingDown
from bertkit.serving.endpoint import Endpoint, RequestProblem
from bertkit.serving.metrics import CONTENT_TYPE, ServerMetrics
from bertkit.serving.settings import ServeSettings

log = logging.getLogger("bertkit.serve")
PREDICT = "/v1/predict"
_OPEN_PATHS = frozenset({"/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"})


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A JSON error answer."""
    body = {"error": {"code": code, "message": message, **extra}}
    return Response(json.dumps(body, ensure_ascii=False), status, headers, media_type="application/json")


class ServerState:
    """The loaded model, its batcher and the server's counters."""

    def __init__(self, settings: ServeSettings, endpoint_class: type[Endpoint]) -> None:
        self.settings = settings
        self.endpoint_class = endpoint_class
        self.endpoint: Endpoint | None = None
        self.batcher: Batcher | None = None
        self.failure: str | None = None
        self.metrics = ServerMetrics()
        self.received = 0  # prediction requests that reached the handler
        self.answered = 0  # ... and were answered (with predictions or an error)

    def load(self, on_failure: Callable[[str], None] | None) -> None:
        """Load the model and start the batcher (on a background thread)."""
        try:
            if self.settings.threads:
                import torch

                torch.set_num_threads(self.settings.threads)
            endpoint = self.endpoint_class.load(Path(self.settings.model), self.settings.options)
            self.batcher = Batcher(
                endpoint.run,
                endpoint.prepare,
                self.settings.policy,
                on_batch=lambda stats: self.metrics.on_batch(stats, self.batcher.queued),
            )
            # The model, tokenizer and libraries are millions of long-lived objects: left to
            # the collector, each full collection walks them all and stalls every request
            # for a fifth of a second (p99 at 32 clients 360 ms; frozen, 160-190 ms).
            gc.collect()
            gc.freeze()
            self.endpoint = endpoint
            log.info("ready: %s model %s (%s)", self.settings.task, endpoint.source, endpoint.backend)
        except Exception as exc:  # noqa: BLE001 - reported, and the server stops or stays unhealthy
            self.failure = f"{exc}" + (f" ({exc.hint})" if isinstance(exc, BertkitError) and exc.hint else "")
            log.error("cannot load the model: %s", self.failure)
            if on_failure is not None:
                on_failure(self.failure)


def create_app(
    settings: ServeSettings,
    endpoint_class: type[Endpoint],
    api_key: str | None = None,
    on_failure: Callable[[str], None] | None = None,
    load_first: bool = False,
) -> FastAPI:
    """The application serving `settings.model`.

    Args:
        settings: the model, batching and limits.
        endpoint_class: the task's Endpoint.
        api_key: the key every request but /health and /docs must carry, or None.
        on_failure: called with the message when the model cannot be loaded.
        load_first: load the model before taking any connection (one of several worker
            processes: the others answer meanwhile), instead of in the background while
            /health answers "loading".
    """
    state = ServerState(settings, endpoint_class)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        if load_first:
            await asyncio.to_thread(state.load, on_failure)
        else:
            threading.Thread(target=state.load, args=(on_failure,), name="bertkit-load", daemon=True).start()
        yield
        if state.batcher is not None:
            await asyncio.to_thread(state.batcher.close)
        log.info("stopped: %d prediction requests received, %d answered", state.received, state.answered)

    app = FastAPI(
        title=f"bertkit: {settings.task} model",
        version=__version__,
        description=f"Predictions of the {settings.task} model `{settings.model}`. "
        'Every error is JSON: `{"error": {"code", "message"}}`.',
        lifespan=lifespan,
    )
    app.state.bertkit = state
    _install_errors(app)
    app.add_middleware(Guard, state=state, api_key=api_key)

    async def predict(body: endpoint_class.body) -> Response:  # type: ignore[name-defined]
        state.received += 1
        try:
            return await _predict(state, body)
        finally:
            state.answered += 1

    app.add_api_route(
        PREDICT,
        predict,
        methods=["POST"],
        summary=f"Predict with the {settings.task} model",
        description="Answers with the records `bertkit predict --json` prints for the same inputs.",
        openapi_extra={"requestBody": {"content": {"application/json": {"example": endpoint_class.example}}}},
    )

    @app.get("/v1/model", summary="What the server serves")
    async def model() -> dict[str, Any]:
        described = {"task": settings.task, "model": settings.model, "version": __version__}
        endpoint = state.endpoint
        if endpoint is None:
            return {**described, "status": "failed" if state.failure else "loading"}
        return {
            **described,
            "status": "ready",
            "backend": endpoint.backend,
            "max_length": endpoint.max_length,
            **endpoint.info(),
            "limits": {
                "max_texts": settings.limits.max_texts,
                "max_chars": settings.limits.max_chars,
                "timeout_s": settings.limits.timeout,
            },
            "batching": {
                "max_batch": settings.policy.max_batch,
                "max_tokens": settings.policy.max_tokens,
                "max_wait_ms": settings.policy.max_wait * 1000,
                "max_queue": settings.policy.max_queue,
            },
        }

    @app.get("/health", summary="Ready once the model is loaded")
    async def health() -> Response:
        if state.endpoint is not None:
            return JSONResponse({"status": "ready"})
        if state.failure is not None:
            return JSONResponse({"status": "failed", "error": state.failure}, 503)
        return JSONResponse({"status": "loading"}, 503, {"Retry-After": "1"})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        queued = state.batcher.queued if state.batcher is not None else 0
        return Response(state.metrics.render(queued), media_type=CONTENT_TYPE)

    return app


async def _predict(state: ServerState, body: Any) -> Response:
    start = time.perf_counter()
    endpoint, batcher = state.endpoint, state.batcher
    if endpoint is None or batcher is None:
        if state.failure is not None:
            return error(503, "model_failed", f"the model could not be loaded: {state.failure}")
        return error(503, "loading", "the model is still loading", {"Retry-After": "1"})
    limits = state.settings.limits
    try:
        items = endpoint.items(body)
    except RequestProblem as problem:
        return error(422, "invalid_request", problem.message, field=problem.field)
    if len(items) > limits.max_texts:
        return error(
            413,
            "too_many_texts",
            f"{len(items):,} inputs in one request; this server takes at most {limits.max_texts:,}",
            hint="split the request, or start the server with a larger --max-texts",
        )
    for index, item in enumerate(items):
        for text in endpoint.texts(item):
            if len(text) > limits.max_chars:
                return error(
                    413,
                    "text_too_long",
                    f"input {index}: {len(text):,} characters; the server takes at most {limits.max_chars:,}",
                    hint="shorten the text, or start the server with a larger --max-chars",
                )
    try:
        future = batcher.submit(items)
    except QueueFull as full:
        return error(
            503,
            "queue_full",
            f"the server has {batcher.queued:,} inputs waiting, its limit (--queue-size)",
            {"Retry-After": str(full.retry_after)},
        )
    except ShuttingDown:
        return error(
            503, "shutting_down", "the server is stopping", {"Retry-After": "1", "Connection": "close"}
        )
    state.metrics.queue.set(batcher.queued)
    try:
        outputs = await asyncio.wait_for(asyncio.wrap_future(future), limits.timeout)
    except asyncio.TimeoutError:  # noqa: UP041 - not the built-in TimeoutError before Python 3.11
        return error(504, "timeout", f"no answer within {limits.timeout:g} s (--timeout)")
    except Exception as exc:  # noqa: BLE001 - the model failed on this request; the server stays up
        log.exception("prediction failed")
        return error(500, "prediction_failed", f"the model failed on this request: {exc}")
    answer = endpoint.answer(body, outputs)
    state.metrics.latency.observe(time.perf_counter() - start)
    return Response(json.dumps(answer, ensure_ascii=False), media_type="application/json")


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = exc.errors()
        broken = next((p for p in problems if p.get("type") == "json_invalid"), None)
        if broken is not None:
            detail = (broken.get("ctx") or {}).get("error", "JSON decode error")
            at = broken.get("loc", ("body", None))[-1]
            where = f" at character {at}" if isinstance(at, int) else ""
            return error(400, "invalid_json", f"the body is not valid JSON: {detail}{where}")
        if any(tuple(p.get("loc", ())) == ("body",) for p in problems):
            return error(
                422,
                "invalid_request",
                "the body must be a JSON object, sent with Content-Type: application/json",
                example=_example(request),
            )
        shown = [_problem(p) for p in problems]
        return error(422, "invalid_request", "; ".join(shown[:5]), problems=shown)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error(500, "internal_error", "the server failed on this request; see its log")


def _example(request: Request) -> Any:
    state = getattr(request.app.state, "bertkit", None)
    return state.endpoint_class.example if state is not None else None


def _problem(problem: dict[str, Any]) -> str:
    """`texts.2: Input should be a valid string`: where in the body, and what is wrong."""
    where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
    message = problem.get("msg", "invalid")
    if problem.get("type") == "extra_forbidden":
        message = "not a field of this model's requests (see /docs)"
    return f"{where}: {message}"


class BodyTooLarge(StarletteHTTPException):
    """A request body over the server's limit (raised while it is read: FastAPI answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the body holds over {limit:,} bytes, more than --max-texts x --max-chars allow"
        )


class Guard:
    """In front of every route: the API key, the body size limit, and the request counter.

    A pure ASGI middleware (FastAPI's `@app.middleware` costs a task and a stream per
    request); a body is refused by its Content-Length, or as it arrives when it is
    sent in chunks, never held whole before it is known to fit.
    """

    def __init__(self, app: Any, state: ServerState, api_key: str | None) -> None:
        self.app = app
        self.limit = state.settings.limits.max_body
        self.requests = state.metrics.requests
        self.key = api_key.encode() if api_key is not None else None

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = dict(scope["headers"])
        counted = path == PREDICT
        if self.key is not None and path not in _OPEN_PATHS and not _authorised(headers, self.key):
            refusal = error(
                401,
                "unauthorised",
                "this server needs an API key: send `Authorization: Bearer KEY` (or `X-API-Key: KEY`)",
                {"WWW-Authenticate": "Bearer"},
            )
        elif _declared_length(headers) > self.limit:
            refusal = error(413, "body_too_large", BodyTooLarge(self.limit).detail, {"Connection": "close"})
        else:
            await self.app(scope, self._limited(receive), self._counting(send) if counted else send)
            return
        if counted:
            self.requests.labels(path, str(refusal.status_code)).inc()
        await refusal(scope, receive, send)

    def _limited(self, receive: Callable[[], Any]) -> Callable[[], Any]:
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return limited

    def _counting(self, send: Callable[..., Any]) -> Callable[..., Any]:
        async def counting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.requests.labels(PREDICT, str(message["status"])).inc()
            await send(message)

        return counting


def _authorised(headers: dict[bytes, bytes], expected: bytes) -> bool:
    given = headers.get(b"x-api-key")
    if given is None:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        given = token.strip() if scheme.lower() == b"bearer" else b""
    return hmac.compare_digest(given, expected)


def _declared_length(headers: dict[bytes, bytes]) -> int:
    declared = headers.get(b"content-length", b"0")
    return int(declared) if declared.isdigit() else 0
