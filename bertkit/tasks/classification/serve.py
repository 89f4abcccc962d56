"""`bertkit serve` for classifiers: labels and scores of texts (and text pairs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bertkit.serving.endpoint import Body, Endpoint, RequestProblem
from bertkit.serving.rows import can_pack, packed, run_packed
from bertkit.tasks.classification.inference import Classifier


@dataclasses.dataclass
class PackedClassifier(Classifier):
    """A classifier whose batches run as padding-free rows (see bertkit.serving.rows)."""

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        output, _ = run_packed(self.model, batch)
        return output.logits.float().numpy()


class ClassifyRequest(Body):
    texts: list[str] = Field(description="The texts to classify (an empty text gets empty fields).")
    pairs: list[str] | None = Field(
        None, description="Sentence-pair models: the second text of each pair, as many as texts."
    )
    top_k: int = Field(1, ge=1, description="Single-label models: also list the k most likely labels.")
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Multi-label models: labels at least this likely (default: the model's).",
    )


class ClassificationEndpoint(Endpoint):
    task = "classification"
    body = ClassifyRequest
    example = {"texts": ["what a wonderful film", "the soup was cold"]}
    options = frozenset({"backend", "quantize", "device", "precision"})

    @classmethod
    def load(cls, folder: Path | None, options: dict[str, Any]) -> ClassificationEndpoint:
        from bertkit.export.runtime import describe_backend
        from bertkit.tasks.classification.backends import load_backend_classifier

        classifier = load_backend_classifier(
            folder,
            backend=options.get("backend", "torch"),
            quantize=options.get("quantize"),
            device=options.get("device"),
            precision=options.get("precision", "auto"),
        )
        if can_pack(classifier):
            from bertkit.tasks.classification.packed import use_packed_classifier

            classifier = packed(classifier, PackedClassifier)
            use_packed_classifier(classifier.model)
        return cls(classifier, classifier.source, classifier.max_length, describe_backend(classifier))

    def items(self, body: ClassifyRequest) -> list[tuple[str, str | None]]:
        problem = self.predictor.labels.problem
        if body.top_k > 1 and problem != "single":
            raise RequestProblem("top_k", f"ranks the labels of single-label models; this one is {problem}")
        if body.threshold is not None and problem != "multi":
            raise RequestProblem("threshold", f"applies to multi-label models; this one is {problem}")
        if body.pairs is not None and len(body.pairs) != len(body.texts):
            raise RequestProblem(
                "pairs", f"{len(body.pairs)} pairs for {len(body.texts)} texts; give one per text"
            )
        pair_model = self.predictor.pair
        if pair_model is not None and pair_model != (body.pairs is not None):
            wanted = "sentence pairs: give `pairs`" if pair_model else "single texts: leave out `pairs`"
            raise RequestProblem("pairs", f"the model was trained on {wanted}")
        return list(zip(body.texts, body.pairs or [None] * len(body.texts), strict=True))

    def texts(self, item: tuple[str, str | None]) -> list[str]:
        return [text for text in item if text is not None]

    def prepare(self, items: list[tuple[str, str | None]]) -> list[tuple[int, dict[str, Any] | None]]:
        """Token ids per unit as `Classifier.logits` makes them (tokenized once); None: an empty text."""
        from bertkit.tokenization import clip

        tokenizer, limit = self.predictor.tokenizer, self.max_length
        prepared: list[tuple[int, dict[str, Any] | None]] = [(0, None)] * len(items)
        keep = [i for i, (text, _) in enumerate(items) if text.strip()]
        for index, texts, pairs in _by_kind(items, keep):
            second = [clip(pair, limit) for pair in pairs] if pairs is not None else None
            encoded = tokenizer(
                [clip(text, limit) for text in texts], second, truncation=True, max_length=limit
            )
            for row, i in enumerate(index):
                features = {key: encoded[key][row] for key in encoded}
                prepared[i] = (len(features["input_ids"]), features)
        return prepared

    def run(self, units: list[dict[str, Any] | None]) -> list[np.ndarray | None]:
        """Logits of each unit; None for an empty text (`bertkit predict` leaves its fields empty)."""
        outputs: list[np.ndarray | None] = [None] * len(units)
        keep = [i for i, unit in enumerate(units) if unit is not None]
        if keep:
            batch = self.predictor.tokenizer.pad([units[i] for i in keep], return_tensors="np")
            for i, row in zip(keep, self.predictor.forward(dict(batch)), strict=True):
                outputs[i] = row
        return outputs

    def answer(self, body: ClassifyRequest, outputs: list[np.ndarray | None]) -> dict[str, Any]:
        from bertkit.tasks.classification.predict import empty_fields, prediction_fields

        classifier = self.predictor
        if body.threshold is not None:
            classifier = dataclasses.replace(classifier, threshold=body.threshold)
        records = []
        for index, (text, logits) in enumerate(zip(body.texts, outputs, strict=True)):
            record: dict[str, Any] = {"text": text}
            if body.pairs is not None:
                record["text_pair"] = body.pairs[index]
            if logits is None:
                record |= empty_fields(classifier, body.top_k)
            else:
                record |= prediction_fields(classifier, logits[None, :], body.top_k)[0]
            records.append(record)
        return {"predictions": records}

    def info(self) -> dict[str, Any]:
        labels = self.predictor.labels
        described: dict[str, Any] = {"problem": labels.problem, "pairs": self.predictor.pair}
        if labels.problem != "regression":
            described["labels"] = list(labels.names)
        if labels.problem == "multi":
            described["threshold"] = self.predictor.threshold
        return described


def _by_kind(
    items: list[tuple[str, str | None]], chosen: Any
) -> list[tuple[list[int], list[str], list[str] | None]]:
    """The chosen units as (indices, texts, pairs): single texts and pairs apart.

    Both kinds meet only on a model that does not say which it takes (one bertkit did
    not train), whose requests may differ.
    """
    singles = [i for i in chosen if items[i][1] is None]
    pairs = [i for i in chosen if items[i][1] is not None]
    groups: list[tuple[list[int], list[str], list[str] | None]] = []
    if singles:
        groups.append((singles, [items[i][0] for i in singles], None))
    if pairs:
        groups.append((pairs, [items[i][0] for i in pairs], [items[i][1] or "" for i in pairs]))
    return groups


ENDPOINT = ClassificationEndpoint
