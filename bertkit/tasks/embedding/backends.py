"""A sentence encoder on ONNX Runtime: the exported graph (pooling and normalisation inside) per batch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import ModelError, UsageError
from bertkit.export.runtime import find_onnx_dir, graph_file, open_session, run_of, session_feed

OUTPUT = "sentence_embedding"


@dataclass
class OnnxEncoder:
    """Encodes like `Encoder.encode`: texts sorted by length, batched, vectors in input order."""

    model: Any  # the ONNX Runtime session
    tokenizer: Any
    source: str
    pooling: str
    normalize: bool
    max_length: int
    dimension: int
    device: str
    input_names: tuple[str, ...] = ()
    quantized: bool = False
    run: Any = None
    own_modules: bool = True

    def describe(self) -> str:
        unit = ", normalised" if self.normalize else ""
        kind = "int8 " if self.quantized else ""
        return f"ONNX {kind}graph, {self.pooling} pooling inside{unit}, {self.dimension} dimensions"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            (vectors,) = self.model.run([OUTPUT], session_feed(self.input_names, dict(batch)))
            out[index] = vectors
        return out


def refuse_quantize_on_torch(backend: str, quantize: str | None) -> None:
    """Sentence encoders run int8 only as an ONNX export (the graph holds the pooling too).

    Raises:
        UsageError: `--quantize` without `--backend onnx`.
    """
    if quantize is not None and backend != "onnx":
        raise UsageError("--quantize: with --backend onnx", hint="export with --quantize int8 first")


def load_backend_encoder(
    model: str | Path | None,
    *,
    backend: str = "torch",
    quantize: str | None = None,
    device: str | None = None,
    **torch_settings: Any,
) -> Any:
    """A sentence encoder on the backend asked for: an `Encoder` (torch), or an `OnnxEncoder`.

    `torch_settings` (pooling, normalize, max_length) go to `load_encoder`.

    Raises:
        BertkitError: `--quantize` on torch, nothing to load, or not a sentence encoder.
    """
    refuse_quantize_on_torch(backend, quantize)
    if backend == "onnx":
        return load_onnx_encoder(
            find_onnx_dir(Path(model) if model else None), quantize=quantize, device=device
        )
    from bertkit.tasks.embedding.encoder import load_encoder

    return load_encoder(model, device=device, **torch_settings)


def load_onnx_encoder(folder: Path, *, quantize: str | None = None, device: str | None = None) -> OnnxEncoder:
    """Load the ONNX export of a sentence encoder.

    Raises:
        ModelError: not the export of a sentence encoder; the int8 graph is missing.
    """
    from bertkit.models import load_tokenizer
    from bertkit.tasks.base import CONFIG_KEY

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    section = config.get(CONFIG_KEY) or {}
    if section.get("task") != "embedding" or "pooling" not in section:
        raise ModelError(
            f"{folder}: not the ONNX export of a sentence encoder",
            hint="export one with `bertkit export --model MODEL` (pooling goes inside the graph)",
        )
    session = open_session(graph_file(folder, quantize), device)
    output = session.get_outputs()[0]
    return OnnxEncoder(
        model=session,
        tokenizer=load_tokenizer(str(folder)),
        source=str(folder),
        pooling=section["pooling"],
        normalize=bool(section.get("normalize")),
        max_length=int(section.get("max_length") or 512),
        dimension=int(output.shape[-1]) if isinstance(output.shape[-1], int) else int(config["hidden_size"]),
        device="cuda" if "CUDAExecutionProvider" in session.get_providers()[:1] else "cpu",
        input_names=tuple(i.name for i in session.get_inputs()),
        quantized=quantize is not None,
        run=run_of(folder),
    )
