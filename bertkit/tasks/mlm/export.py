"""Export a masked language model to ONNX and check it: its logits and top-1 tokens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.export.onnx import ExportResult, finish, write_graphs
from bertkit.export.parity import BUILTIN_TEXTS, Tolerances, judge
from bertkit.export.runtime import INT8_FILE, MODEL_FILE, OUTPUT_NAME, open_session, session_feed

SAMPLE_TEXTS = 64  # masked-LM logits are (sequence x vocabulary) per text
MAX_LENGTH = 128


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
    from bertkit.tasks.mlm.inference import load_masked_lm
    from bertkit.tasks.mlm.recipe import read_run_recipe

    original = load_masked_lm(folder if run is None else run.path, device="cpu")
    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    texts, where = sample_texts(recipe, data)
    info = write_graphs(original.model, original.tokenizer, folder, tmp, quantize, optimize, False, step)
    step(f"checking the export on {len(texts)} texts ({where})")
    checks = []
    for variant in ("fp32", *(["int8"] if quantize else [])):
        session = open_session(tmp / (INT8_FILE if variant == "int8" else MODEL_FILE), "cpu")
        diff, agreement, tokens = masked_lm_parity(original.model, original.tokenizer, session, texts)
        checks.append(judge(variant, len(texts), tokens, diff, agreement, "top-1 tokens", limits))
    return finish("masked-lm", info, checks, where)


def sample_texts(recipe: Any, data: Path | None) -> tuple[list[str], str]:
    """Texts for the parity check: the `data` file, else the run's held-out text, else built-in ones.

    Raises:
        DataError: the `data` file cannot be read.
    """
    from bertkit.console import warn
    from bertkit.errors import DataError
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.mlm.corpus import load_corpus
    from bertkit.tasks.mlm.recipe import MlmData, MlmSection

    source = DataSource(path=str(data)) if data is not None else (recipe.data.validation if recipe else None)
    if source is not None:
        try:
            columns, settings = (recipe.data, recipe.mlm) if recipe else (MlmData(), MlmSection())
            corpus = load_corpus(source, columns, settings)
        except DataError as exc:
            if data is not None:
                raise
            warn(f"checking the export on built-in sentences: the run's text cannot be read ({exc.message})")
        else:
            texts = corpus.select(range(min(SAMPLE_TEXTS, len(corpus))))["text"]
            return texts, f"{len(texts)} texts from {source.describe()}"
    return list(BUILTIN_TEXTS)[:SAMPLE_TEXTS], "built-in sentences"


def masked_lm_parity(model: Any, tokenizer: Any, session: Any, texts: list[str]) -> tuple[float, float, int]:
    """Max |logit difference|, top-1 token agreement and token count over every real (non-pad) token."""
    import torch

    names = tuple(i.name for i in session.get_inputs())
    worst = 0.0
    same = total = 0
    for start in range(0, len(texts), 8):
        batch = tokenizer(
            texts[start : start + 8],
            padding=True,
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="np",
        )
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
            reference = model(**inputs).logits.float().numpy()
        logits = session.run([OUTPUT_NAME], session_feed(names, dict(batch)))[0]
        real = batch["attention_mask"].astype(bool)
        worst = max(worst, float(np.abs(reference - logits)[real].max()))
        same += int((reference.argmax(-1) == logits.argmax(-1))[real].sum())
        total += int(real.sum())
    return worst, same / max(total, 1), total
