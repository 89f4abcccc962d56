"""Masked-LM pretraining the way it is usually hand-written: one line per example,
every line padded (and truncated) to max_length, the Transformers MLM collator and
Trainer. The baseline of bench/pretrain.py.

    python bench/baselines/line_padded_mlm.py --corpus corpus.txt --model DIR --output result.json

Writes JSON: train runtime and samples/s (the Trainer's clock), the share of
non-padding tokens in what it trained on, and how many corpus tokens truncation cut.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from datasets import load_dataset
    from transformers import (
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lines = load_dataset("text", data_files=str(args.corpus), split="train")
    lines = lines.filter(lambda row: bool(row["text"].strip()))

    def tokenize(batch):
        full = tokenizer(batch["text"], add_special_tokens=True)
        encoded = tokenizer(batch["text"], padding="max_length", truncation=True, max_length=args.max_length)
        encoded["corpus_tokens"] = [len(ids) - 2 for ids in full["input_ids"]]
        return encoded

    dataset = lines.map(tokenize, batched=True, remove_columns=["text"])
    kept = sum(sum(mask) - 2 for mask in dataset["attention_mask"])
    corpus_tokens = sum(dataset["corpus_tokens"])
    non_pad_share = sum(sum(mask) for mask in dataset["attention_mask"]) / (len(dataset) * args.max_length)
    dataset = dataset.remove_columns(["corpus_tokens"])

    model = AutoModelForMaskedLM.from_pretrained(args.model)
    training_args = TrainingArguments(
        output_dir=str(args.output.parent / "line-padded-out"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        seed=args.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15),
    )
    metrics = trainer.train().metrics
    result = {
        "train_runtime": metrics["train_runtime"],
        "train_samples_per_second": metrics["train_samples_per_second"],
        "sequences": len(dataset),
        "non_pad_share": non_pad_share,
        "corpus_tokens": corpus_tokens,
        "dropped_tokens": corpus_tokens - kept,
    }
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
