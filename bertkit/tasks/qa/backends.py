"""A question-answering reader on ONNX Runtime: a `Reader` whose forward step runs the exported graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertkit.errors import ModelError
from bertkit.export.runtime import graph_file, open_session, run_of, session_feed
from bertkit.tasks.qa.inference import OUTPUTS, Reader, settings


@dataclass
class OnnxReader(Reader):
    """A `Reader` whose forward step runs an ONNX graph (`model` is the ONNX Runtime session)."""

    input_names: tuple[str, ...] = ()
    quantized: bool = False

    def forward(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.model.run(list(OUTPUTS), session_feed(self.input_names, batch))
        return np.asarray(start, dtype=np.float32), np.asarray(end, dtype=np.float32)


def load_backend_reader(
    model: Path | None, *, backend: str = "torch", quantize: str | None = None, device: str | None = None
) -> Reader:
    """A reader on the chosen backend (see `bertkit.export.runtime.load_on_backend`); fp32 on torch.

    Raises:
        BertkitError: bad options, nothing to load, or a missing ONNX Runtime.
    """
    from bertkit.export.runtime import load_on_backend
    from bertkit.tasks.qa.inference import load_reader

    return load_on_backend(
        model,
        backend=backend,
        quantize=quantize,
        device=device,
        precision="auto",
        root=Path("runs"),
        load_torch=load_reader,
        load_onnx=load_onnx_reader,
    )


def load_onnx_reader(folder: Path, *, quantize: str | None = None, device: str | None = None) -> OnnxReader:
    """Load an exported question-answering folder for ONNX Runtime.

    Raises:
        ModelError: not the export of a QA model, the int8 graph is missing, or no ONNX Runtime.
    """
    from transformers import AutoConfig

    from bertkit.models import load_tokenizer
    from bertkit.tasks.base import recorded_task
    from bertkit.tasks.qa.recipe import read_run_recipe

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    task = recorded_task(folder) or (
        "qa" if any(a.endswith("ForQuestionAnswering") for a in architectures) else None
    )
    if task != "qa":
        raise ModelError(
            f"{folder}: the export of a {task or 'different'} model, not of a question-answering model",
            hint=f"give it to `bertkit predict --backend onnx --model {folder}` as the model it is",
        )
    session = open_session(graph_file(folder, quantize), device)
    tokenizer = load_tokenizer(str(folder))
    run = run_of(folder)
    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    return OnnxReader(
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
