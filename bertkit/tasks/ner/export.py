"""Export an NER model to ONNX and check it: its logits, and the tag of every word."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.export.onnx import SAMPLE_TEXTS, ExportResult, finish, write_graphs
from bertkit.export.parity import Tolerances, judge


def export_checks(
    folder: Path,
    run: Any,
    tmp: Path,
    quantize: str | None,
    optimize: bool,
    data: Path | None,
    limits: Tolerances,
    step: Callable[[str], None],
) -> ExportResult:
    from bertkit.tasks.ner.backends import load_onnx_tagger
    from bertkit.tasks.ner.inference import load_tagger
    from bertkit.tasks.ner.parity import sample_sentences

    original = load_tagger(folder if run is None else run.path, device="cpu", precision="fp32")
    sample = sample_sentences(original.recipe, data, SAMPLE_TEXTS)
    info = write_graphs(original.model, original.tokenizer, folder, tmp, quantize, optimize, False, step)
    step(f"checking the export on {sample.where}")
    reference = original.word_scores(sample.sentences, batch_size=32)
    tags = _tags(reference)
    words = sum(len(row) for row in tags)
    checks = []
    for variant in ("fp32", *(["int8"] if quantize else [])):
        exported = load_onnx_tagger(tmp, quantize=quantize if variant == "int8" else None, device="cpu")
        scores = exported.word_scores(sample.sentences, batch_size=32)
        same = sum(int((a == b).sum()) for a, b in zip(tags, _tags(scores), strict=True))
        diff = max(
            (float(np.nanmax(np.abs(a - b))) for a, b in zip(reference, scores, strict=True) if a.size),
            default=0.0,
        )
        checks.append(
            judge(variant, len(sample.sentences), words, diff, same / max(words, 1), "word tags", limits)
        )
    return finish("token-classifier", info, checks, sample.where)


def _tags(scores: list[np.ndarray]) -> list[np.ndarray]:
    return [
        np.nan_to_num(row, nan=-1.0).argmax(axis=-1) if row.size else np.zeros(0, dtype=int) for row in scores
    ]
