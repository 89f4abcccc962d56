"""The settings of one `bertkit serve`, shared by every worker process.

Worker processes (`--workers N`) are started by uvicorn from an import string, so
they receive the settings as JSON in an environment variable. The API key is never
part of them: each process reads it from the file, or the environment variable,
named here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import UsageError
from bertkit.serving.batching import BatchPolicy

ENV = "BERTKIT_SERVE_SETTINGS"
API_KEY_ENV = "BERTKIT_API_KEY"


@dataclass(frozen=True)
class Limits:
    """What one request may hold.

    Attributes:
        max_texts: units (texts, question-context pairs) per request (413 beyond).
        max_chars: characters per text (413 beyond).
        timeout: seconds a request may take before it is answered 504.
    """

    max_texts: int = 256
    max_chars: int = 20_000
    timeout: float = 30.0

    @property
    def max_body(self) -> int:
        """Bytes a request body may hold: its texts at 4 bytes a character (UTF-8's most), and JSON."""
        return self.max_texts * (self.max_chars * 4 + 256) + 65_536


@dataclass(frozen=True)
class ServeSettings:
    """Everything a server process needs to load its model and answer requests.

    Attributes:
        model: the model folder (resolved: a run's model/, or an export folder).
        task: the task recorded in it.
        options: the predictor options (backend, quantize, device, precision, aggregation).
        policy: dynamic batching.
        limits: per-request limits.
        api_key_file: the file holding the API key, if one is required.
        api_key_env: whether the key is read from BERTKIT_API_KEY.
        threads: torch threads of each process (None: torch's default).
    """

    model: str
    task: str
    options: dict[str, Any] = field(default_factory=dict)
    policy: BatchPolicy = BatchPolicy()
    limits: Limits = Limits()
    api_key_file: str | None = None
    api_key_env: bool = False
    threads: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        return cls(**{**data, "policy": BatchPolicy(**data["policy"]), "limits": Limits(**data["limits"])})

    @classmethod
    def from_environment(cls) -> ServeSettings:
        return cls.from_json(os.environ[ENV])

    def api_key(self) -> str | None:
        """The key requests must carry, or None when the server is open.

        Raises:
            UsageError: the key file cannot be read, or the key is empty.
        """
        if self.api_key_file is not None:
            path = Path(self.api_key_file)
            try:
                key = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(
                    f"--api-key-file {path}: cannot read it ({exc.__class__.__name__})",
                    hint="give a readable text file holding the key on one line",
                ) from None
            where = f"--api-key-file {path}"
        elif self.api_key_env:
            key, where = os.environ.get(API_KEY_ENV, "").strip(), API_KEY_ENV
        else:
            return None
        if not key:
            raise UsageError(f"{where}: the API key is empty", hint="put the key in it, or leave it out")
        return key
