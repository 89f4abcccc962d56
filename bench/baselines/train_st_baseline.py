"""Baseline: fine-tune a sentence encoder for retrieval the way the sentence-transformers docs show.

The plain training script a user would write with sentence-transformers (its
"Training Overview"): a SentenceTransformer, (query, document) pairs from a BEIR
folder's training judgements, MultipleNegativesRankingLoss with the no-duplicates
batch sampler, SentenceTransformerTrainer, then the InformationRetrievalEvaluator
on the test judgements. Nothing in it comes from bertkit.

    python bench/baselines/train_st_baseline.py --model DIR --beir scifact/ --output result.json

It writes a JSON result: the Trainer's train_runtime and train_samples_per_second
(pairs per second of `trainer.train()`), the test nDCG@10 and MRR@10 (x100).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_beir(folder: Path, split: str) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    corpus = {
        str(r["_id"]): (r.get("title", "") + " " + r.get("text", "")).strip()
        for r in read_jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): r["text"] for r in read_jsonl(folder / "queries.jsonl")}
    relevant: dict[str, set[str]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)  # header
        for qid, cid, score in rows:
            if int(score) > 0:
                relevant.setdefault(qid, set()).add(cid)
    return corpus, queries, relevant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--beir", type=Path, required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/"
    )
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args(argv)

    import tempfile

    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = args.max_length
    corpus, queries, train_relevant = read_beir(args.beir, "train")
    anchors, positives = [], []
    for qid, documents in train_relevant.items():
        for cid in documents:
            anchors.append(queries[qid])
            positives.append(corpus[cid])
    train = Dataset.from_dict({"anchor": anchors, "positive": positives})
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = SentenceTransformerTrainingArguments(
            output_dir=output_dir,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            warmup_steps=args.warmup,
            weight_decay=args.weight_decay,
            seed=args.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10,
            report_to=[],
            use_cpu=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=training_args, train_dataset=train, loss=MultipleNegativesRankingLoss(model)
        )
        start = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - start
    _, _, test_relevant = read_beir(args.beir, "test")
    evaluator = InformationRetrievalEvaluator(
        {qid: queries[qid] for qid in test_relevant}, corpus, test_relevant, batch_size=64, write_csv=False
    )
    scores = evaluator(model)
    result = {
        "tool": "sentence-transformers training script (SentenceTransformerTrainer, MNRL)",
        "pairs": len(train),
        "steps": output.global_step,
        "train_runtime": output.metrics["train_runtime"],
        "train_samples_per_second": output.metrics["train_samples_per_second"],
        "train_seconds": train_seconds,
        "ndcg@10": 100.0 * scores["cosine_ndcg@10"],
        "mrr@10": 100.0 * scores["cosine_mrr@10"],
        "torch_threads": torch.get_num_threads(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        f"nDCG@10 {result['ndcg@10']:.2f}; {result['train_samples_per_second']:.1f} pairs/s; "
        f"wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
