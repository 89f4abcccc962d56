"""`bertkit serve`: any bertkit model behind an HTTP API, with dynamic batching.

- `endpoint.py`: what a task serves (its request body, the units it batches, its
  answer); each task package has a `serve.py` with its own `Endpoint`.
- `batching.py`: merges the texts of concurrent requests into length-sorted batches
  on one inference thread, off the event loop.
- `app.py`: the FastAPI application (routes, limits, errors, API key, metrics).
- `server.py`: settings, and running it on uvicorn with one or several processes.

FastAPI, uvicorn and prometheus-client come with the `serve` extra
(`pip install "bertkit[serve]"`); only the command imports them.
"""
