"""A masked language model on the backend asked for: torch, torch int8, or ONNX Runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bertkit.export.runtime import (
    OUTPUT_NAME,
    check_backend_options,
    find_onnx_dir,
    graph_file,
    open_session,
    quantize_linear_int8,
    run_of,
    session_feed,
)
from bertkit.tasks.mlm.inference import MaskedLM


def load_backend_masked_lm(
    model: Path | None,
    *,
    backend: str = "torch",
    quantize: str | None = None,
    device: str | None = None,
    root: Path = Path("runs"),
) -> Any:
    """A `MaskedLM` for `fill_mask` on the chosen backend.

    Raises:
        BertkitError: bad options, nothing to load, or a missing ONNX Runtime.
    """
    from bertkit.models import load_tokenizer
    from bertkit.tasks.mlm.inference import load_masked_lm

    check_backend_options(backend, quantize, device)
    if backend == "torch":
        mlm = load_masked_lm(model, root=root, device="cpu" if quantize else device)
        if quantize:
            mlm.model = quantize_linear_int8(mlm.model)
        return mlm
    folder = find_onnx_dir(model, root)
    session = open_session(graph_file(folder, quantize), device)
    tokenizer = load_tokenizer(str(folder))
    # fill_mask moves its batch to `device` as torch tensors; ONNX Runtime takes them on the CPU.
    graph = _OnnxMaskedLMModel(session)
    return OnnxMaskedLM(graph, tokenizer, folder, "cpu", run_of(folder), graph.names, quantize is not None)


@dataclass
class OnnxMaskedLM(MaskedLM):
    """A `MaskedLM` whose model runs an exported graph on ONNX Runtime (what `describe_backend` reads)."""

    input_names: tuple[str, ...] = ()
    quantized: bool = False


class _OnnxMaskedLMModel:
    """Runs an exported masked-LM graph the way `fill_mask` calls a torch model."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.names = tuple(i.name for i in session.get_inputs())

    def __call__(self, **batch: Any) -> Any:
        import torch

        arrays = {k: v.cpu().numpy() for k, v in batch.items()}
        logits = self.session.run([OUTPUT_NAME], session_feed(self.names, arrays))[0]
        return SimpleNamespace(logits=torch.from_numpy(np.asarray(logits, dtype=np.float32)))
