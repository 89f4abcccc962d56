"""`bertkit serve` for question-answering models: the answer to each question from its context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from bertkit.serving.endpoint import Body, Endpoint, run_by_setting, token_counts


class Question(Body):
    question: str = Field(description="The question.")
    context: str = Field(description="The text to answer from (any length: it is read in windows).")


class AnswerRequest(Body):
    inputs: list[Question] = Field(description="Questions, each with its context.")
    top_k: int = Field(1, ge=1, le=20, description="Also list the next k-1 candidate answers.")


class QaEndpoint(Endpoint):
    task = "qa"
    body = AnswerRequest
    example = {
        "inputs": [
            {
                "question": "Where do water droplets collide with ice crystals?",
                "context": "Precipitation forms as smaller droplets coalesce via collision with other rain "
                "drops or ice crystals within a cloud.",
            }
        ]
    }
    options = frozenset({"backend", "quantize", "device"})

    @classmethod
    def load(cls, folder: Path | None, options: dict[str, Any]) -> QaEndpoint:
        from bertkit.export.runtime import describe_backend
        from bertkit.tasks.qa.backends import load_backend_reader

        reader = load_backend_reader(
            folder, backend=options.get("backend", "torch"), quantize=options.get("quantize"),
            device=options.get("device"),
        )  # fmt: skip
        return cls(reader, reader.source, reader.max_length, describe_backend(reader))

    def items(self, body: AnswerRequest) -> list[tuple[str, str, int]]:
        return [(q.question, q.context, body.top_k) for q in body.inputs]

    def texts(self, item: tuple[str, str, int]) -> list[str]:
        return [item[0], item[1]]

    def lengths(self, items: list[tuple[str, str, int]]) -> list[int]:
        """Tokens of question and context, untruncated: a long context is several windows."""
        tokenizer = self.predictor.tokenizer
        questions = token_counts(tokenizer, [q for q, _, _ in items], max_length=self.max_length)
        contexts = tokenizer([c for _, c, _ in items], add_special_tokens=False, return_length=True)["length"]
        return [q + c for q, c in zip(questions, contexts, strict=True)]

    def run(self, items: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
        """Answer records; units asking for different top_k are answered apart."""
        from bertkit.devices import DEFAULT_INFERENCE_BATCH
        from bertkit.tasks.qa.predict import answer_records

        reader = self.predictor
        batch_size = DEFAULT_INFERENCE_BATCH[reader.device]  # windows per forward pass, as predict reads them

        def answer(units: list[tuple[str, str, int]], top_k: int) -> list[dict[str, Any]]:
            questions, contexts = [q for q, _, _ in units], [c for _, c, _ in units]
            return answer_records(reader, questions, contexts, top_k=top_k, batch_size=batch_size)

        return run_by_setting(items, lambda item: item[2], answer)

    def answer(self, body: AnswerRequest, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        records = [{"question": q.question, **a} for q, a in zip(body.inputs, outputs, strict=True)]
        return {"predictions": records}

    def info(self) -> dict[str, Any]:
        reader = self.predictor
        return {"unanswerable": reader.unanswerable, "doc_stride": reader.doc_stride}


ENDPOINT = QaEndpoint
