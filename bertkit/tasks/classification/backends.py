"""A classifier on the backend asked for: torch, torch with int8 linear layers, or ONNX Runtime.

The ONNX classifier is a `Classifier` whose one forward step runs the exported graph,
so tokenization, length-sorted batching, outputs and file formats are the same
whatever the backend.
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
from bertkit.tasks.classification.inference import CONFIG_KEY, Classifier, labels_from_config

_DEFAULT_MAX_LENGTH = 512
CLASSIFIER = "ForSequenceClassification"  # the architecture of a classifier bertkit did not record


def load_backend_classifier(
    model: Path | None,
    *,
    backend: str = "torch",
    quantize: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    root: Path = Path("runs"),
) -> Classifier:
    """A classifier on the chosen backend (see `bertkit.export.runtime.load_on_backend`).

    Raises:
        BertkitError: bad options, nothing to load, or a missing ONNX Runtime.
    """
    from bertkit.tasks.classification.inference import load_classifier

    return load_on_backend(
        model,
        backend=backend,
        quantize=quantize,
        device=device,
        precision=precision,
        root=root,
        load_torch=load_classifier,
        load_onnx=load_onnx_classifier,
    )


@dataclass
class OnnxClassifier(Classifier):
    """A `Classifier` whose forward step runs an ONNX graph with ONNX Runtime.

    `model` is the `onnxruntime.InferenceSession`; `device` is where it runs.
    """

    input_names: tuple[str, ...] = ()
    quantized: bool = False

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        logits = self.model.run([OUTPUT_NAME], session_feed(self.input_names, batch))[0]
        return np.asarray(logits, dtype=np.float32)


def load_onnx_classifier(
    folder: Path, *, quantize: str | None = None, device: str | None = None
) -> OnnxClassifier:
    """Load an exported classifier folder for ONNX Runtime.

    Raises:
        ModelError: not a classifier export, the int8 graph is missing, or no ONNX Runtime.
    """
    from transformers import AutoConfig

    from bertkit.models import load_tokenizer
    from bertkit.tasks.base import recorded_task
    from bertkit.tasks.classification.recipe import read_run_recipe

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    task = recorded_task(folder) or (
        "classification" if any(a.endswith(CLASSIFIER) for a in architectures) else None
    )
    if task != "classification":
        task = task or (architectures[0] if architectures else "bare encoder")
        raise ModelError(
            f"{folder}: the export of a {task} model, not of a text classifier",
            hint=f"give it to `bertkit predict --backend onnx --model {folder}` as the {task} model it is",
        )
    session = open_session(graph_file(folder, quantize), device)
    tokenizer = load_tokenizer(str(folder))
    saved = getattr(config, CONFIG_KEY, None) or {}
    limit = min(tokenizer.model_max_length or _DEFAULT_MAX_LENGTH, _DEFAULT_MAX_LENGTH)
    run = run_of(folder)
    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    return OnnxClassifier(
        model=session,
        tokenizer=tokenizer,
        labels=labels_from_config(config, separator=saved.get("separator")),
        threshold=float(saved.get("threshold", 0.5)),
        max_length=int(saved.get("max_length", limit)),
        pair=saved.get("text_pair"),
        source=folder,
        device="cuda" if "CUDAExecutionProvider" in session.get_providers()[:1] else "cpu",
        run=run,
        recipe=recipe,
        input_names=tuple(i.name for i in session.get_inputs()),
        quantized=quantize is not None,
    )
