"""Baseline: fine-tune a classifier the way the Transformers tutorial does.

This is the script a user copies from the "Fine-tune a pretrained model" tutorial:
tokenize in `dataset.map` with `padding="max_length"` (every example becomes 128
tokens), the default collator, and a plain `Trainer`. Nothing in it comes from bertkit.

    python bench/baselines/tutorial_trainer.py --train train.tsv --model DIR --output result.json

It writes a JSON result: tokenization and training times, the Trainer's
`train_samples_per_second`, the share of pad tokens in the batches it trained on,
and (with --dev) accuracy on the dev file. `--save-model DIR` keeps the model so a
driver can evaluate every tool with one piece of code.

Standalone on purpose: `dynamic_padding_trainer.py` repeats the small helpers rather
than importing them, so each file reads as the whole script a user would run.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def read_tsv(path: Path, rows: int | None) -> dict[str, list[Any]]:
    """`sentence` and `label` columns of a GLUE-style TSV (unquoted: a bare `"` is text)."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        sentences, labels = [], []
        for record in reader:
            if rows is not None and len(sentences) >= rows:
                break
            sentences.append(record["sentence"])
            labels.append(int(record["label"]))
    return {"sentence": sentences, "label": labels}


class PaddingCounter:
    """Wraps a collator and counts real and pad tokens in the batches it builds."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.real = 0
        self.total = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        mask = batch["attention_mask"]
        self.real += int(mask.sum())
        self.total += mask.numel()
        return batch

    @property
    def padding_share(self) -> float | None:
        return 1 - self.real / self.total if self.total else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="training TSV (sentence, label)")
    parser.add_argument("--dev", type=Path, help="dev TSV; when given, report accuracy on it")
    parser.add_argument("--rows", type=int, help="use only the first N training rows")
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--save-model", type=Path, help="save the fine-tuned model and tokenizer here")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=float, default=0.1, help="below 1: a share of all steps")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-length", type=int, default=128)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import numpy as np
    import torch
    import transformers
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def tokenize(batch: dict[str, list[Any]]) -> dict[str, Any]:
        return tokenizer(batch["sentence"], padding="max_length", truncation=True, max_length=args.max_length)

    tokenize_start = time.perf_counter()
    train = Dataset.from_dict(read_tsv(args.train, args.rows)).map(tokenize, batched=True)
    dev = Dataset.from_dict(read_tsv(args.dev, None)).map(tokenize, batched=True) if args.dev else None
    tokenize_seconds = time.perf_counter() - tokenize_start

    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    collator = PaddingCounter(default_data_collator)
    with tempfile.TemporaryDirectory(prefix="tutorial-trainer-") as scratch:
        training_args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.lr,
            warmup_steps=args.warmup,  # below 1: a ratio of all steps (transformers 5)
            weight_decay=args.weight_decay,
            seed=args.seed,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=collator)
        train_start = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - train_start

        result: dict[str, Any] = {
            "tool": "tutorial Trainer (pad to max_length)",
            "rows": len(train),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "seed": args.seed,
            "max_length": args.max_length,
            "steps": output.global_step,
            "tokenize_seconds": tokenize_seconds,
            "train_seconds": train_seconds,
            "train_runtime": output.metrics["train_runtime"],
            "train_samples_per_second": output.metrics["train_samples_per_second"],
            "train_loss": output.metrics.get("train_loss"),
            "padding_share": collator.padding_share,
            "tokens_in_batches": collator.total,
            "real_tokens": collator.real,
            "torch_threads": torch.get_num_threads(),
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            },
        }
        if dev is not None:
            eval_start = time.perf_counter()
            prediction = trainer.predict(dev)
            predicted = np.argmax(prediction.predictions, axis=-1)
            result["dev_accuracy"] = float((predicted == np.array(dev["label"])).mean())
            result["dev_rows"] = len(dev)
            result["eval_seconds"] = time.perf_counter() - eval_start
        if args.save_model:
            trainer.save_model(str(args.save_model))
            tokenizer.save_pretrained(str(args.save_model))
            result["model_dir"] = str(args.save_model)

    result["total_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
