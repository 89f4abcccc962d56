"""The tasks bertkit trains, one package each, and the registry that names them.

Adding a task is one package (bertkit/tasks/<name>/) and one line in TASKS. Nothing
outside the task packages branches on a task's name: the recipe schema, training,
evaluation, prediction and export look the task up here.
"""

from __future__ import annotations

import json
from pathlib import Path

from bertkit.errors import ModelError
from bertkit.tasks.base import CONFIG_KEY, Task
from bertkit.tasks.classification import TASK as CLASSIFICATION
from bertkit.tasks.embedding import TASK as EMBEDDING
from bertkit.tasks.mlm import TASK as MLM
from bertkit.tasks.ner import TASK as NER
from bertkit.tasks.qa import TASK as QA

TASKS: dict[str, Task] = {
    "classification": CLASSIFICATION,
    "mlm": MLM,
    "ner": NER,
    "qa": QA,
    "embedding": EMBEDDING,
}


def _sentence_transformer(folder: Path) -> bool:
    """A sentence-transformers folder of a sentence encoder (not a CrossEncoder or SparseEncoder)."""
    try:
        config = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # older folders have no such file; they are all sentence encoders
    return config.get("model_type", "SentenceTransformer") == "SentenceTransformer"


def get_task(name: str) -> Task:
    """The task registered under `name` (recipes are validated first, so it exists)."""
    return TASKS[name]


def task_of(folder: Path) -> Task:
    """The task of a model folder: the one bertkit recorded in its config.json.

    Folders bertkit did not write (a plain Hub model), and runs written before the
    task was recorded, are recognised by their architecture.

    Raises:
        ModelError: config.json is unreadable, or names no architecture bertkit knows.
    """
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder}: cannot read config.json: {exc}", hint="check the model folder") from None
    recorded = (config.get(CONFIG_KEY) or {}).get("task")  # see base.recorded_task
    if recorded in TASKS:
        return TASKS[recorded]
    if (folder / "modules.json").is_file() and _sentence_transformer(folder):
        return TASKS["embedding"]
    architectures = config.get("architectures") or []
    for task in TASKS.values():
        if any(a.endswith(task.architectures) for a in architectures):
            return task
    shown = architectures[0] if architectures else "no architecture"
    raise ModelError(
        f"{folder}: a {shown} model, which no bertkit task uses",
        hint=f"bertkit's tasks: {', '.join(TASKS)}; fine-tune or pretrain it first",
    )
