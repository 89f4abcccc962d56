"""`bertkit serve`: a model behind an HTTP API, with dynamic batching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import (
    AggregationOption,
    Backend,
    BackendOption,
    DeviceOption,
    InferencePrecision,
    ModelDirOption,
    PrecisionOption,
    QuantizeOption,
    refuse_options,
    value,
)


@app.command("serve")
def serve(
    model: ModelDirOption = None,
    backend: BackendOption = Backend.torch,
    quantize: QuantizeOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = InferencePrecision.auto,
    aggregation: AggregationOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Processes, each with its own model and a share of the CPU threads (many-core machines).",
        ),
    ] = 1,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Inputs per forward pass.")] = 32,
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", min=1, help="Padded tokens (inputs x longest) per forward pass."),
    ] = 16384,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms", min=0.0, help="How long a waiting input may wait for others to batch with."
        ),
    ] = 2.0,
    queue_size: Annotated[
        int,
        typer.Option(
            "--queue-size", min=1, help="Inputs waiting at most; beyond, requests get 503 + Retry-After."
        ),
    ] = 2048,
    max_texts: Annotated[
        int, typer.Option("--max-texts", min=1, help="Inputs per request (413 beyond).")
    ] = 256,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=1, help="Characters per text (413 beyond).")
    ] = 20_000,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds a request may take (504 beyond).")
    ] = 30.0,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="Require the API key held in this file (default: BERTKIT_API_KEY, when set).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")
    ] = False,
) -> None:
    """Serve a model over HTTP: POST /v1/predict answers as `bertkit predict` does.

    Every task is served: classifiers (labels and scores), NER (entities),
    question answering (answers from contexts), embeddings (vectors, as `bertkit
    embed`) and masked-LM (fill-mask). Concurrent requests are batched together,
    sorted by length, on an inference thread; /health, /metrics (Prometheus),
    /v1/model and /docs stay responsive under load. SIGTERM or Ctrl-C stops
    taking requests and answers the ones in flight first.

    Requests carry the API key as `Authorization: Bearer KEY` when one is required
    (--api-key-file, or the BERTKIT_API_KEY environment variable).

    Uses the latest run unless --model is given. Needs the serve extra:
    pip install "bertkit[serve]".

    \b
    Examples:
      bertkit serve --model runs/latest
      curl -s localhost:8000/v1/predict -H 'content-type: application/json' \\
           -d '{"texts": ["what a wonderful film"]}'
      bertkit serve --model runs/ner-20250101-120000 --backend onnx --quantize int8
      BERTKIT_API_KEY=$(cat key.txt) bertkit serve --host 0.0.0.0 --workers 4
    """
    import os

    from bertkit.errors import UsageError

    _require_serve_extra()
    from bertkit.export.runtime import backend_model_dir, check_backend_options
    from bertkit.runs import latest_run
    from bertkit.serving.batching import BatchPolicy
    from bertkit.serving.settings import API_KEY_ENV, Limits, ServeSettings
    from bertkit.tasks import task_of

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise UsageError(
            f"--log-level {log_level!r}: expected debug, info, warning or error", hint="use info"
        )
    if max_texts > queue_size:
        raise UsageError(
            f"--max-texts {max_texts}: over --queue-size {queue_size}, so such a request could never run",
            hint="raise --queue-size, or lower --max-texts",
        )
    check_backend_options(value(backend), value(quantize), value(device), value(precision))
    folder = backend_model_dir(model, value(backend))
    task = task_of(folder)
    endpoint = task.endpoint()
    options = {
        "backend": None if backend is Backend.torch else value(backend),
        "quantize": value(quantize),
        "device": value(device),
        "precision": None if precision is InferencePrecision.auto else value(precision),
        "aggregation": value(aggregation),
    }
    given = {name: setting for name, setting in options.items() if setting is not None}
    refuse_options("serve", task, given, endpoint.options)
    endpoint.check(given)
    settings = ServeSettings(
        model=str(model) if model is not None else str(latest_run(Path("runs")).path),
        task=task.name,
        options=given,
        policy=BatchPolicy(max_batch, max_tokens, max_wait_ms / 1000, queue_size),
        limits=Limits(max_texts, max_chars, timeout),
        api_key_file=str(api_key_file) if api_key_file is not None else None,
        api_key_env=api_key_file is None and API_KEY_ENV in os.environ,
        threads=max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None,
    )
    key = settings.api_key()  # a missing or empty key fails here, not in every worker
    from bertkit.console import err
    from bertkit.serving.server import bind
    from bertkit.serving.server import serve as run_server

    sock = bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    address = f"http://{shown_host}:{sock.getsockname()[1]}"
    processes = f"{workers} worker{'s' if workers > 1 else ''}{', API key required' if key else ''}"
    from rich.markup import escape

    serving = f"serving the {task.name} model {settings.model} on {address} ({processes})"
    err.print(escape(f"{serving}; docs at {address}/docs"))
    try:
        run_server(settings, sock, workers=workers, log_level=log_level.lower(), access_log=access_log)
    finally:
        sock.close()


def _require_serve_extra() -> None:
    import importlib.util

    from bertkit.errors import UsageError

    missing = [
        name for name in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise UsageError(
            f"bertkit serve needs {', '.join(missing)}, which are not installed",
            hint='pip install "bertkit[serve]"',
        )
