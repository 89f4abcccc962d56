"""Export a sentence encoder to ONNX with its pooling and normalisation inside the graph.

Common exporters write only the transformer, leaving pooling to the user, who then
gets other vectors than the model's unless they pool exactly as it does. Here the
graph takes token ids and returns `sentence_embedding`: the whole sentence-transformers
pipeline (transformer, pooling, normalisation). The check compares the graph's
vectors with `encode`'s by cosine similarity on sample texts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bertkit.export.onnx import ExportResult, finish, write_graphs
from bertkit.export.parity import Tolerances, judge

OUTPUT = "sentence_embedding"
SAME = 0.99  # int8: a text agrees when its vector's cosine with the original's is at least this
SAMPLE = 256

BUILTIN = [
    "A man is playing a guitar.",
    "Someone plays an instrument on stage.",
    "The stock market fell sharply on Monday.",
    "How do I reset my password?",
    "Forgot my login details, what now?",
    "The recipe needs two eggs and a cup of flour.",
    "Children are playing football in the park.",
    "A cat sleeps on the warm windowsill.",
]


def graph_module(st: Any) -> Any:
    """The whole encoder as a module whose output has `sentence_embedding` (and the encoder's config)."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st
            self.config = st[0].auto_model.config

        def forward(self, **inputs: torch.Tensor) -> Any:
            return SimpleNamespace(sentence_embedding=self.st(dict(inputs))[OUTPUT])

    return Encoder().eval()


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
    from bertkit.tasks.embedding.backends import load_onnx_encoder
    from bertkit.tasks.embedding.encoder import load_encoder
    from bertkit.tasks.embedding.evaluate import pairwise_cosine

    encoder = load_encoder(run.path if run is not None else folder, device="cpu")
    texts, where = sample_texts(encoder, data)
    info = write_graphs(
        graph_module(encoder.model),
        encoder.tokenizer,
        folder,
        tmp,
        quantize,
        optimize,
        False,
        step,
        (OUTPUT,),
    )
    _write_settings(tmp, encoder)
    step(f"checking the export on {where}")
    ours = encoder.encode(texts, batch_size=32)
    checks = []
    for variant in ("fp32", *(["int8"] if quantize else [])):
        exported = load_onnx_encoder(tmp, quantize=quantize if variant == "int8" else None, device="cpu")
        theirs = exported.encode(texts, batch_size=32)
        cosines = pairwise_cosine(ours, theirs)
        diff = float(np.abs(ours - theirs).max()) if len(texts) else 0.0
        agreement = float((cosines >= SAME).mean()) if len(texts) else 1.0
        checks.append(
            judge(variant, len(texts), len(texts), diff, agreement, f"vectors (cosine >= {SAME})", limits)
        )
    result = finish("sentence-embedding", info, checks, where)
    result.info["pooling"], result.info["normalize"] = encoder.pooling, encoder.normalize
    result.example = '"a sentence"'
    return result


def _write_settings(tmp: Path, encoder: Any) -> None:
    """Record the encoder's pooling, normalisation and length in the export's config.json."""
    import json

    from bertkit.tasks.base import CONFIG_KEY

    path = tmp / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    section = config.setdefault(CONFIG_KEY, {})
    section.update(
        task="embedding", pooling=encoder.pooling, normalize=encoder.normalize, max_length=encoder.max_length
    )
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def sample_texts(encoder: Any, data: Path | None) -> tuple[list[str], str]:
    """Texts for the parity check: a file's (its `text` column, or both texts of pairs), else the run's
    validation data, else built-in sentences."""
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.embedding.data import is_beir, read_pairs

    texts_columns, score_column = None, None
    source = DataSource(path=str(data)) if data is not None else None
    if source is None and encoder.run is not None and encoder.run.recipe_file.is_file():
        from bertkit.tasks.embedding.recipe import read_run_recipe

        recipe = read_run_recipe(encoder.run.recipe_file)
        source = recipe.data.validation or recipe.data.train
        texts_columns, score_column = recipe.data.texts, recipe.data.score
    if source is None or (source.path is not None and is_beir(Path(source.path))):
        return BUILTIN, "built-in sentences"
    if data is not None:
        from bertkit.io.reading import read_table

        table = read_table(Path(data))
        if "text" in table.columns:  # a .txt file (one text a line), or rows with a text column
            lines = [str(t) for t in table.columns["text"] if t and str(t).strip()][:SAMPLE]
            return lines, f"{len(lines)} texts from {data}"
    pairs = read_pairs(source, texts_columns, score_column)
    texts = [t for column in pairs.texts for t in column][:SAMPLE]
    return texts, f"{len(texts)} texts from {source.describe()}"
