"""Export a classifier to ONNX and check it: its logits, its labels, its accuracy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.export.onnx import SAMPLE_TEXTS, ExportResult, finish, write_graphs
from bertkit.export.parity import Tolerances, judge
from bertkit.tasks.classification.parity import prediction_agreement, sample_accuracy, sample_texts


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
    from bertkit.tasks.classification.backends import load_onnx_classifier
    from bertkit.tasks.classification.inference import load_classifier

    original = load_classifier(folder if run is None else run.path, device="cpu")
    sample = sample_texts(original.recipe, data, original.pair, SAMPLE_TEXTS, original.labels)
    texts, pairs = sample.texts, sample.pairs
    info = write_graphs(
        original.model, original.tokenizer, folder, tmp, quantize, optimize, pairs is not None, step
    )
    step(f"checking the export on {len(texts)} texts ({sample.where})")
    problem, threshold = original.labels.problem, original.threshold
    reference = original.logits(texts, pairs, batch_size=32)
    targets = sample.targets if texts else None
    if targets is not None:
        reference_accuracy = sample_accuracy(problem, threshold, reference, targets)
    checks = []
    for variant in ("fp32", *(["int8"] if quantize else [])):
        exported = load_onnx_classifier(tmp, quantize=quantize if variant == "int8" else None, device="cpu")
        logits = exported.logits(texts, pairs, batch_size=32)
        agreement, of = prediction_agreement(problem, threshold, reference, logits)
        diff = float(np.abs(reference - logits).max()) if len(texts) else 0.0
        accuracy = None
        if targets is not None:
            accuracy = (len(texts), sample_accuracy(problem, threshold, logits, targets), reference_accuracy)
        checks.append(judge(variant, len(texts), len(texts), diff, agreement, of, limits, accuracy))
    return finish("classifier", info, checks, sample.where)
