"""`bertkit serve` for sentence encoders: a vector per text, as `bertkit embed` gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bertkit.serving.endpoint import Body, Endpoint


class EmbedRequest(Body):
    texts: list[str] = Field(description="The texts to embed.")


class EmbeddingEndpoint(Endpoint):
    task = "embedding"
    body = EmbedRequest
    example = {"texts": ["a man is playing a guitar", "someone plays music"]}
    options = frozenset({"backend", "quantize", "device"})

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        from bertkit.tasks.embedding.backends import refuse_quantize_on_torch

        refuse_quantize_on_torch(options.get("backend", "torch"), options.get("quantize"))

    @classmethod
    def load(cls, folder: Path | None, options: dict[str, Any]) -> EmbeddingEndpoint:
        from bertkit.export.runtime import describe_backend
        from bertkit.tasks.embedding.backends import load_backend_encoder

        encoder = load_backend_encoder(
            folder, backend=options.get("backend", "torch"), quantize=options.get("quantize"),
            device=options.get("device"),
        )  # fmt: skip
        if options.get("backend") != "onnx":
            _pack(encoder)
        return cls(encoder, Path(str(encoder.source)), encoder.max_length, describe_backend(encoder))

    def items(self, body: EmbedRequest) -> list[str]:
        return list(body.texts)

    def run(self, items: list[str]) -> list[np.ndarray]:
        return list(self.predictor.encode(items, batch_size=len(items)))

    def answer(self, body: EmbedRequest, outputs: list[np.ndarray]) -> dict[str, Any]:
        records = [{"text": t, "embedding": v.tolist()} for t, v in zip(body.texts, outputs, strict=True)]
        return {"predictions": records}

    def info(self) -> dict[str, Any]:
        encoder = self.predictor
        return {"dimension": encoder.dimension, "pooling": encoder.pooling, "normalize": encoder.normalize}


def _pack(encoder: Any) -> None:
    """On the CPU, run the encoder's batches as padding-free rows (see bertkit.serving.rows)."""
    from bertkit.training.packing import packing_supported, use_packed_attention

    transformer = encoder.model[0]
    if encoder.device != "cpu" or type(transformer).__name__ != "Transformer":
        return
    if packing_supported(transformer.auto_model) is None:
        from bertkit.tasks.embedding.packed import use_packed_encoder

        use_packed_attention(transformer.auto_model)
        use_packed_encoder(transformer, inference=True)


ENDPOINT = EmbeddingEndpoint
