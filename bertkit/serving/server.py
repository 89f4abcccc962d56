"""Run the server on uvicorn: in this process, or in several worker processes sharing one socket."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import tempfile
from typing import Any

from bertkit.errors import ModelError, UsageError
from bertkit.serving.settings import ENV, ServeSettings

GRACE = 5.0  # seconds past the request timeout a stopping server waits for in-flight requests


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: a free one), bound before the model loads.

    Raises:
        UsageError: the address is in use or cannot be bound.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}",
            hint="pick another --port, or stop what is using it",
        ) from None
    return sock


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with bertkit's own messages (ready, stopped, failures) alongside."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bertkit.serve"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def serve(
    settings: ServeSettings, sock: socket.socket, *, workers: int, log_level: str, access_log: bool
) -> None:
    """Answer requests until SIGTERM or Ctrl-C; in-flight requests are finished first.

    Raises:
        ModelError: the model could not be loaded (one worker: the server stops).
    """
    import uvicorn

    options: dict[str, Any] = {
        "log_level": log_level,
        "log_config": log_config(log_level),
        "access_log": access_log,
        "timeout_graceful_shutdown": settings.limits.timeout + GRACE,
        "server_header": False,
    }
    if workers == 1:
        _serve_here(settings, sock, options)
        return
    # uvicorn's supervisor starts the workers from an import string and binds the
    # address itself: the socket that checked it (and chose a free port for --port 0)
    # gives it up just before.
    host, port = sock.getsockname()[:2]
    sock.close()
    metrics_dir = tempfile.mkdtemp(prefix="bertkit-metrics-")
    os.environ[ENV] = settings.to_json()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "bertkit.serving.server:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **options,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_here(settings: ServeSettings, sock: socket.socket, options: dict[str, Any]) -> None:
    import uvicorn

    from bertkit.serving.app import create_app
    from bertkit.tasks import get_task

    failures: list[str] = []
    server: uvicorn.Server | None = None

    def stop(message: str) -> None:
        failures.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, get_task(settings.task).endpoint(), settings.api_key(), on_failure=stop)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    # uvicorn stops gracefully on SIGTERM or SIGINT, then raises the signal again for the
    # handler it found. Found: one that lets the command end normally (exit 0), as it
    # does under uvicorn's own supervisor with several workers.
    stopped = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in stopped.items():
            signal.signal(sig, handler)
    if failures:
        raise ModelError(f"{settings.model}: {failures[0]}", hint="check the model with bertkit predict")


def _stopped(signum: int, frame: Any) -> None:
    """The signal that stopped the server, raised again once it has stopped: nothing more to do."""


def worker_app() -> Any:
    """The application of one worker process (uvicorn's factory; settings from the environment)."""
    from bertkit.serving.app import create_app
    from bertkit.tasks import get_task

    settings = ServeSettings.from_environment()
    return create_app(settings, get_task(settings.task).endpoint(), settings.api_key(), load_first=True)
