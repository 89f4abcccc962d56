"""`bertkit eval` and `bertkit predict` on a masked language model: perplexity, and fill-mask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.errors import UsageError
from bertkit.tasks.base import Outcome

DEFAULT_TOP_K = 5  # fill-mask candidates shown when --top-k is not given
EVAL_BATCH = 32


def evaluate(model: Path | None, options: dict[str, Any]) -> Outcome:
    from bertkit.tasks.mlm.inference import evaluate_masked_lm

    result = evaluate_masked_lm(
        model,
        data=options.get("data"),
        baseline=options.get("baseline"),
        limit=options.get("limit"),
        batch_size=options.get("batch-size") or EVAL_BATCH,
        output=options.get("output"),
        device=options.get("device"),
    )
    return Outcome(
        metrics=result.metrics,
        main_metric="perplexity",
        title=f"{result.data}: {result.sequences:,} sequences, fixed masks",
        report_dir=result.report_dir,
        data=result.data,
        examples=result.sequences,
        baseline=result.baseline,
        baseline_name=options.get("baseline"),
    )


def predict(model: Path | None, texts: list[str], options: dict[str, Any]) -> None:
    """Fill every [MASK] of each text with its most likely tokens."""
    from rich.table import Table

    from bertkit.console import out
    from bertkit.tasks.mlm.backends import load_backend_masked_lm
    from bertkit.tasks.mlm.inference import fill_mask

    if not texts:
        raise UsageError(
            "fill-mask takes texts as arguments, not --input", hint='bertkit predict "a [MASK] day"'
        )
    top_k = options.get("top-k") or DEFAULT_TOP_K
    mlm = load_backend_masked_lm(
        model,
        backend=options.get("backend", "torch"),
        quantize=options.get("quantize"),
        device=options.get("device"),
    )
    results = fill_mask(mlm, texts, top_k=top_k)
    if options.get("json"):
        out.print_json(json.dumps([{"text": t, "masks": r} for t, r in zip(texts, results, strict=True)]))
        return
    for text, masks in zip(texts, results, strict=True):
        table = Table(title=text, title_justify="left", box=None, pad_edge=False)
        for index in range(len(masks)):
            table.add_column(f"mask {index + 1}" if len(masks) > 1 else "token")
            table.add_column("p", justify="right")
        for rank in range(top_k):
            cells = []
            for candidates in masks:
                cells += [candidates[rank]["token"], f"{candidates[rank]['score']:.3f}"]
            table.add_row(*cells)
        out.print(table)
