"""`bertkit serve` for NER models: the entities of texts, with types, character offsets and scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bertkit.serving.endpoint import Body, Endpoint
from bertkit.serving.rows import can_pack, lay_out, packed, run_packed
from bertkit.tasks.ner.inference import Tagger


@dataclass
class PackedTagger(Tagger):
    """A tagger whose batches run as padding-free rows (see bertkit.serving.rows)."""

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        output, mask = run_packed(self.model, batch)
        return lay_out(output.logits[0].float().numpy(), mask)


class TagRequest(Body):
    texts: list[str] = Field(description="The texts to tag (an empty text has no entities).")


class NerEndpoint(Endpoint):
    task = "ner"
    body = TagRequest
    example = {"texts": ["Angela Merkel visited Paris in May."]}
    options = frozenset({"backend", "quantize", "device", "precision", "aggregation"})

    def __init__(self, predictor: Any, source: Path, max_length: int, backend: str, aggregation: str) -> None:
        super().__init__(predictor, source, max_length, backend)
        self.aggregation = aggregation

    @classmethod
    def load(cls, folder: Path | None, options: dict[str, Any]) -> NerEndpoint:
        from bertkit.export.runtime import describe_backend
        from bertkit.tasks.ner.backends import load_backend_tagger

        tagger = load_backend_tagger(
            folder,
            backend=options.get("backend", "torch"),
            quantize=options.get("quantize"),
            device=options.get("device"),
            precision=options.get("precision", "auto"),
        )
        if can_pack(tagger):
            tagger = packed(tagger, PackedTagger)
        aggregation = options.get("aggregation", "first")
        return cls(tagger, tagger.source, tagger.max_length, describe_backend(tagger), aggregation)

    def items(self, body: TagRequest) -> list[str]:
        return list(body.texts)

    def run(self, items: list[str]) -> list[list[dict[str, Any]]]:
        from bertkit.tasks.ner.predict import predict_texts

        return predict_texts(self.predictor, items, batch_size=len(items), aggregation=self.aggregation)

    def answer(self, body: TagRequest, outputs: list[list[dict[str, Any]]]) -> dict[str, Any]:
        from bertkit.tasks.ner.predict import FIELD

        return {"predictions": [{"text": t, FIELD: e} for t, e in zip(body.texts, outputs, strict=True)]}

    def info(self) -> dict[str, Any]:
        return {"types": self.predictor.types, "aggregation": self.aggregation}


ENDPOINT = NerEndpoint
