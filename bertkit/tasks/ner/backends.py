"""An NER tagger on the backend asked for: torch, torch with int8 linear layers, or ONNX Runtime.

The ONNX tagger is a `Tagger` whose one forward step runs the exported graph, so
words, windows, batching, entities and file formats are the same whatever the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertkit.errors import ModelError
from bertkit.export.runtime import (
    OUTPUT_NAME,
    graph_file,
    load_on_backend,
    open_session,
    run_of,
    session_feed,
)
from bertkit.tasks.ner.inference import Tagger, settings


def load_backend_tagger(
    model: Path | None,
    *,
    backend: str = "torch",
    quantize: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    root: Path = Path("runs"),
) -> Tagger:
    """A tagger on the chosen backend (see `bertkit.export.runtime.load_on_backend`).

    Raises:
        BertkitError: bad options, nothing to load, or a missing ONNX Runtime.
    """
    from bertkit.tasks.ner.inference import load_tagger

    return load_on_backend(
        model,
        backend=backend,
        quantize=quantize,
        device=device,
        precision=precision,
        root=root,
        load_torch=load_tagger,
        load_onnx=load_onnx_tagger,
    )


@dataclass
class OnnxTagger(Tagger):
    """A `Tagger` whose forward step runs an ONNX graph with ONNX Runtime (`model` is the session)."""

    input_names: tuple[str, ...] = ()
    quantized: bool = False

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        logits = self.model.run([OUTPUT_NAME], session_feed(self.input_names, batch))[0]
        return np.asarray(logits, dtype=np.float32)


def load_onnx_tagger(folder: Path, *, quantize: str | None = None, device: str | None = None) -> OnnxTagger:
    """Load an exported NER folder for ONNX Runtime.

    Raises:
        ModelError: not the export of an NER model, the int8 graph is missing, or no ONNX Runtime.
    """
    from transformers import AutoConfig

    from bertkit.models import load_tokenizer
    from bertkit.tasks.base import recorded_task
    from bertkit.tasks.ner.recipe import read_run_recipe

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    task = recorded_task(folder) or (
        "ner" if any(a.endswith("ForTokenClassification") for a in architectures) else None
    )
    if task != "ner":
        task = task or (architectures[0] if architectures else "bare encoder")
        raise ModelError(
            f"{folder}: the export of a {task} model, not of an NER model",
            hint=f"give it to `bertkit predict --backend onnx --model {folder}` as the {task} model it is",
        )
    session = open_session(graph_file(folder, quantize), device)
    tokenizer = load_tokenizer(str(folder))
    run = run_of(folder)
    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    return OnnxTagger(
        model=session,
        tokenizer=tokenizer,
        source=folder,
        device="cuda" if "CUDAExecutionProvider" in session.get_providers()[:1] else "cpu",
        run=run,
        recipe=recipe,
        input_names=tuple(i.name for i in session.get_inputs()),
        quantized=quantize is not None,
        **settings(config, tokenizer),
    )
