"""`bertkit serve` for masked-LM models: the most likely tokens for each [MASK] of a text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from bertkit.serving.endpoint import Body, Endpoint, RequestProblem, run_by_setting, token_counts


class FillRequest(Body):
    texts: list[str] = Field(description="Texts with at least one mask token each, e.g. `a [MASK] day`.")
    top_k: int = Field(5, ge=1, le=100, description="Candidates per mask.")


class MlmEndpoint(Endpoint):
    task = "mlm"
    body = FillRequest
    example = {"texts": ["the food was [MASK] ."], "top_k": 5}
    options = frozenset({"backend", "quantize", "device"})

    @classmethod
    def load(cls, folder: Path | None, options: dict[str, Any]) -> MlmEndpoint:
        from bertkit.export.runtime import describe_backend
        from bertkit.tasks.mlm.backends import load_backend_masked_lm

        mlm = load_backend_masked_lm(
            folder, backend=options.get("backend", "torch"), quantize=options.get("quantize"),
            device=options.get("device"),
        )  # fmt: skip
        positions = getattr(getattr(mlm.model, "config", None), "max_position_embeddings", 512)
        return cls(mlm, mlm.source, min(positions, mlm.tokenizer.model_max_length), describe_backend(mlm))

    def items(self, body: FillRequest) -> list[tuple[str, int]]:
        mask = self.predictor.tokenizer.mask_token
        for index, text in enumerate(body.texts):
            if mask not in text:
                raise RequestProblem(f"texts.{index}", f"no {mask}: put {mask} where a word is missing")
        return [(text, body.top_k) for text in body.texts]

    def texts(self, item: tuple[str, int]) -> list[str]:
        return [item[0]]

    def lengths(self, items: list[tuple[str, int]]) -> list[int]:
        return token_counts(self.predictor.tokenizer, [t for t, _ in items], max_length=self.max_length)

    def run(self, items: list[tuple[str, int]]) -> list[Any]:
        """Candidates per mask; units asking for different top_k are filled apart."""
        from bertkit.tasks.mlm.inference import fill_mask

        return run_by_setting(
            items,
            lambda item: item[1],
            lambda units, top_k: fill_mask(self.predictor, [t for t, _ in units], top_k),
        )

    def answer(self, body: FillRequest, outputs: list[Any]) -> dict[str, Any]:
        return {"predictions": [{"text": t, "masks": m} for t, m in zip(body.texts, outputs, strict=True)]}

    def info(self) -> dict[str, Any]:
        return {"mask_token": self.predictor.tokenizer.mask_token}


ENDPOINT = MlmEndpoint
