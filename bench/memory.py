"""Memory benchmark: peak RSS of `bertkit predict` on a file of a million lines.

`bertkit predict --input FILE --output FILE` streams: it reads, predicts and writes
a window of rows at a time, so its memory should stay flat however long the file.
This runs it in a child process on a generated text file (SST-2 train sentences,
cycled, one per line) and samples the child's /proc status twice a second while it
works: its resident set size (VmRSS) and the kernel's own high-water mark of it
(VmHWM), which catches peaks between samples. Flat means the RSS late in the run is
no higher than early on, and the peak stays under the budget.

The peak is not taken from `ru_maxrss` (wait4, getrusage): Linux carries the
high-water mark of the parent's memory into a child across fork and exec, so a
child started by a big process (bench/run.py, after the predict and export
benchmarks, is one) reports the parent's peak as its own. VmHWM belongs to the
child's own address space, which starts fresh at exec.

There is no baseline: `transformers.pipeline` has no file mode to compare with.
Target (from the issue): peak RSS under 1.5 GB on 1,000,000 lines.

The model is MiniLM with a seeded, new two-class head unless `--model` names a
classifier (speed and memory do not depend on the head's weights). On a laptop CPU a
million lines take a while (roughly lines / the rows/s of `bench/predict.py`);
`--backend onnx --quantize int8` needs an exported `--model`.

    python bench/memory.py                    # 1,000,000 lines
    python bench/memory.py --quick            # 50,000 lines: a smoke run
    python bench/memory.py --lines 200000 --model runs/latest
    python bench/memory.py --json             # for scripts
    python bench/memory.py --check            # exit 1 when over budget

Skips (exit 0, "skipped: ...") when ../shared/data/sst2 or the MiniLM weights are absent.
`bench/run.py` calls `run(quick)` and `summary(result)`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench import finetune as finetune_bench  # noqa: E402
from bench import predict as predict_bench  # noqa: E402

DATA = REPO.parent / "shared" / "data"
LINES = 1_000_000
QUICK_LINES = 50_000
BUDGET_MB = 1500.0
SAMPLE_SECONDS = 0.5


def write_lines(path: Path, lines: int) -> int:
    """Write `lines` SST-2 train sentences (cycled) one per line; return the file's bytes."""
    sentences, _ = finetune_bench.read_sst2("train.tsv", finetune_bench.SST2_TRAIN_ROWS)
    sentences = [s.strip() for s in sentences if s.strip()]
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, lines, len(sentences)):
            handle.write("\n".join(sentences[: min(len(sentences), lines - start)]) + "\n")
    return path.stat().st_size


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a live process in MB: resident now and at its peak; None once it is gone."""
    values: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        return None
    if "VmRSS" not in values or "VmHWM" not in values:
        return None  # a zombie: its memory is gone
    return values["VmRSS"], values["VmHWM"]


def measure(argv: list[str], log: Path) -> dict[str, Any]:
    """Run `argv`, sampling its memory; return wall time, RSS samples and its peak RSS (VmHWM).

    Raises:
        RuntimeError: the command failed (with the end of its log).
    """
    samples: list[tuple[float, float]] = []
    peak = 0.0
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                value = memory_mb(process.pid)
                if value is not None:
                    samples.append((time.perf_counter() - start, value[0]))
                    peak = max(peak, value[1])
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        process.wait()
        done.set()
        sampler.join()
        wall = time.perf_counter() - start
    if process.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {process.returncode}:\n{tail}")
    return {"wall_seconds": wall, "samples": samples, "peak_rss_mb": peak}


def flatness(samples: list[tuple[float, float]]) -> dict[str, float]:
    """RSS early and late in the run: the highest sample in the first and last quarter of its time."""
    if not samples:
        return {"early_mb": 0.0, "late_mb": 0.0, "growth_mb": 0.0}
    end = samples[-1][0]
    # The first seconds are start-up (imports, model loading); "early" starts after them.
    early = [mb for t, mb in samples if end * 0.1 <= t <= end * 0.35] or [samples[0][1]]
    late = [mb for t, mb in samples if t >= end * 0.75] or [samples[-1][1]]
    return {"early_mb": max(early), "late_mb": max(late), "growth_mb": max(late) - max(early)}


def run(
    quick: bool = False,
    *,
    lines: int | None = None,
    model: Path | None = None,
    backend: str = "torch",
    quantize: str | None = None,
) -> dict[str, Any]:
    """Predict a generated file with `bertkit predict` in a child process; return its memory use.

    Args:
        quick: 50,000 lines instead of 1,000,000.
        lines: how many lines (overrides quick).
        model: a classifier (run directory, model folder, or export folder for onnx);
            default MiniLM with a new two-class head.
        backend, quantize: passed to `bertkit predict`.

    Returns:
        Peak RSS (kernel), early and late RSS, rows/s, whether every line was
        predicted, the budget and whether it is met; `skipped` when data is absent.
    """
    from bertkit.models import packaged_model_dir

    minilm = packaged_model_dir("minilm")
    if not (DATA / "sst2" / "train.tsv").is_file():
        return {"benchmark": "memory", "quick": quick, "skipped": f"{DATA / 'sst2' / 'train.tsv'} not found"}
    if model is None and minilm is None:
        return {"benchmark": "memory", "quick": quick, "skipped": "MiniLM weights not installed"}
    count = lines or (QUICK_LINES if quick else LINES)
    shown = str(model) if model is not None else "MiniLM + new 2-class head (seeded)"
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-memory-"))
    try:
        source = work / "lines.txt"
        size = write_lines(source, count)
        if model is None:
            import transformers

            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            model = predict_bench.random_head_classifier(work / "model", minilm)
        output = work / "predictions.jsonl"
        argv = [sys.executable, "-m", "bertkit", "predict", "--model", str(model)]
        argv += ["--input", str(source), "--output", str(output), "--backend", backend]
        if quantize:
            argv += ["--quantize", quantize]
        measured = measure(argv, work / "predict.log")
        with output.open("rb") as handle:
            predicted = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        log = (work / "predict.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shape = flatness(measured["samples"])
    peak = measured["peak_rss_mb"]
    return {
        "benchmark": "memory",
        "quick": quick,
        "lines": count,
        "input_mb": size / 1e6,
        "model": shown,
        "backend": backend + (f" {quantize}" if quantize else ""),
        "command": "bertkit predict --input FILE --output FILE.jsonl" + f" --backend {backend}",
        "wall_seconds": measured["wall_seconds"],
        "rows_per_second": count / measured["wall_seconds"],
        "predicted_rows": predicted,
        "all_rows_predicted": predicted == count,
        "peak_rss_mb": peak,
        **shape,
        "samples": len(measured["samples"]),
        "summary_line": log[-1] if log else "",
        "budget_mb": BUDGET_MB,
        "met": peak < BUDGET_MB and predicted == count,
    }


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the results table of bench/run.py."""
    if result.get("skipped") or result.get("error"):
        return []
    return [
        {
            "benchmark": f"predict peak memory, {result['lines']:,}-line file",
            "bertkit": f"{result['peak_rss_mb']:,.0f} MB peak RSS "
            f"(early {result['early_mb']:,.0f} MB, late {result['late_mb']:,.0f} MB)",
            "baseline": "-",
            "ratio": None,
            "target": f"flat, < {BUDGET_MB / 1000:g} GB RSS",
            "met": result["met"],
        }
    ]


def render(result: dict[str, Any]) -> str:
    """A plain-text report of `run()`'s result."""
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    verdict = "met" if result["met"] else "MISSED"
    lines = [
        f"{result['lines']:,} lines ({result['input_mb']:.0f} MB of SST-2 sentences), {result['model']}, "
        f"backend {result['backend']}",
        f"peak RSS {result['peak_rss_mb']:,.0f} MB (VmHWM, the kernel's high-water mark); sampled RSS early "
        f"{result['early_mb']:,.0f} MB, late {result['late_mb']:,.0f} MB ({result['growth_mb']:+,.0f} MB)",
        f"{result['predicted_rows']:,} rows predicted in {result['wall_seconds']:.0f}s "
        f"({result['rows_per_second']:,.0f} rows/s end to end)",
        f"budget: < {result['budget_mb']:,.0f} MB with every row predicted: {verdict}",
    ]
    if result["quick"]:
        lines.append("quick run: a smaller file; use it to check the set-up works")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LINES:,} lines: a smoke run")
    parser.add_argument("--lines", type=int, help=f"lines in the file (default {LINES:,})")
    parser.add_argument("--model", type=Path, help="a classifier (run directory, model or export folder)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--quantize", choices=("int8",))
    parser.add_argument("--check", action="store_true", help="exit 1 when over budget")
    args = parser.parse_args(argv)
    if args.lines is not None and args.lines < 1:
        parser.error("--lines must be at least 1")
    result = run(
        quick=args.quick, lines=args.lines, model=args.model, backend=args.backend, quantize=args.quantize
    )
    print(json.dumps(result, indent=2) if args.json else render(result))
    if args.check and not result.get("skipped") and not result["met"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
