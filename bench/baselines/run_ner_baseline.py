"""Baseline: fine-tune a named-entity tagger the way the Transformers `run_ner.py` example does.

The recipe of examples/pytorch/token-classification/run_ner.py, written out as the short
script a user would keep: words tokenized with `is_split_into_words=True` and truncated to
`--max-length`, the word's tag on its first sub-token and -100 on the others and on special
tokens, `AutoModelForTokenClassification`, `DataCollatorForTokenClassification`, a plain
`Trainer`, and seqeval entity scores. Nothing in it comes from bertkit.

    python bench/baselines/run_ner_baseline.py --model DIR --train train.conll --test test.conll \\
        --output result.json

It writes a JSON result: the Trainer's train runtime and samples/s, and seqeval scores on the
whole test file. Two readings of the test scores, because truncation hides errors:

- `precision`, `recall`, `f1`, `accuracy`: against every entity and word of the test file. A
  word the model never saw (past `--max-length` sub-tokens, or a word the tokenizer turns
  into nothing, such as a lone U+FE0F or U+FFFD) is predicted `O`, so an entity cut off by
  truncation counts as missed. This is the number to compare tools with.
- `run_ner_reported`: what run_ner.py's `compute_metrics` prints. It scores only the words
  whose first sub-token survived truncation, so entities past max_length vanish from the
  gold standard as well as from the predictions.

`test_entities_beyond_max_length` counts the gold entities with at least one word past the
window (`..._partly_...`: those that start inside it).

Entity scores use seqeval's default (conlleval-like) mode, as run_ner.py does through
`evaluate.load("seqeval")`; `f1_strict_iob2` adds `mode="strict", scheme=IOB2`. seqeval is
called directly because `evaluate.load` fetches the metric script from the Hub, and this
script runs offline: `pip install seqeval`.

CoNLL files are read here rather than with `datasets`, because the public files have quirks:
a sentence break is any line that is empty after stripping whitespace (WNUT-17 train breaks
sentences with a lone TAB 2,394 times), `-DOCSTART-` lines are skipped, the token is the first
field and the tag the last (TAB-separated, else whitespace-separated). `--char-positions` strips
the segmentation position that Weibo NER appends to each character (`科0`, `技1`, `e12`).

Standalone on purpose, like the other baselines: it repeats small helpers rather than
importing them, so the file reads as the whole script a user would run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Weibo NER token: the character (one code point, or a damaged emoji of two U+FFFD), then its
# position inside a segmented word. Non-greedy, so `110` is the character `1` at position 10.
CHAR_POSITION = re.compile(r"(.+?)(\d+)")


def read_conll(path: Path, char_positions: bool = False) -> list[dict[str, list[str]]]:
    """Sentences of a CoNLL file as {"words": [...], "tags": [...]}, breaking on blank lines."""
    sentences: list[dict[str, list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if words:
                    sentences.append({"words": words, "tags": tags})
                    words, tags = [], []
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if len(fields) < 2 or not fields[-1].strip():
                raise ValueError(f"{path}:{number}: expected `token<TAB>tag`, got {line!r}")
            word, tag = fields[0], fields[-1].strip()
            if char_positions:
                match = CHAR_POSITION.fullmatch(word)
                if match is None:
                    raise ValueError(f"{path}:{number}: no position digits after the character: {word!r}")
                word = match.group(1)
            words.append(word)
            tags.append(tag)
    if words:
        sentences.append({"words": words, "tags": tags})
    return sentences


def truncation_losses(
    tokenizer: Any, sentences: list[dict[str, list[str]]], word_index: list[list[int]]
) -> dict[str, int]:
    """What truncation hides: the words and gold entities past the window the model saw.

    `word_index[i]` lists the words of sentence i whose first sub-token survived truncation.
    The words are tokenized again without truncation, so that a word the tokenizer turns into
    nothing (a lone U+FE0F or U+FFFD) is not mistaken for a truncated one.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    full = tokenizer([s["words"] for s in sentences], is_split_into_words=True)
    counts = dict.fromkeys(
        (
            "test_entities",
            "test_entities_beyond_max_length",
            "test_entities_partly_beyond_max_length",
            "test_sentences_truncated",
            "test_words_beyond_max_length",
            "test_words_without_subtokens",
        ),
        0,
    )
    for i, sentence in enumerate(sentences):
        present = {word for word in full.word_ids(batch_index=i) if word is not None}
        lost = present - set(word_index[i])
        counts["test_words_without_subtokens"] += len(sentence["words"]) - len(present)
        counts["test_words_beyond_max_length"] += len(lost)
        counts["test_sentences_truncated"] += bool(lost)
        for _, start, end in get_entities(sentence["tags"]):
            counts["test_entities"] += 1
            if any(word in lost for word in range(start, end + 1)):
                counts["test_entities_beyond_max_length"] += 1
                counts["test_entities_partly_beyond_max_length"] += start not in lost
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="local model folder")
    parser.add_argument("--train", type=Path, required=True, help="training file, CoNLL (token, tag)")
    parser.add_argument("--test", type=Path, required=True, help="test file, CoNLL (token, tag)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.0, help="below 1: a share of all steps")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument(
        "--max-length", type=int, default=128, help="sub-tokens per sentence, specials included"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, help="use only the first N training sentences")
    parser.add_argument(
        "--char-positions",
        action="store_true",
        help="tokens are a character then its position in a segmented word (Weibo NER): strip the digits",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # Offline whatever the caller's environment says: the model is a local folder.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"

    try:
        from seqeval.metrics import accuracy_score, classification_report, f1_score
        from seqeval.scheme import IOB2
    except ImportError:
        print("this baseline needs seqeval: pip install seqeval", file=sys.stderr)
        return 2
    import numpy as np
    import torch
    import transformers
    from datasets import Dataset
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    train_sentences = read_conll(args.train, args.char_positions)[: args.limit]
    test_sentences = read_conll(args.test, args.char_positions)
    # run_ner.py sorts the training labels; test labels are added so an unseen one cannot crash it.
    train_labels = {tag for sentence in train_sentences for tag in sentence["tags"]}
    test_labels = {tag for sentence in test_sentences for tag in sentence["tags"]}
    label_list = sorted(train_labels | test_labels)
    label_to_id = {label: i for i, label in enumerate(label_list)}

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if not tokenizer.is_fast:
        raise SystemExit("a fast tokenizer is needed: word_ids() maps sub-tokens back to words")

    def tokenize_and_align(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(
            batch["words"], truncation=True, max_length=args.max_length, is_split_into_words=True
        )
        labels, word_index = [], []
        for i, tags in enumerate(batch["tags"]):
            previous = None
            sentence_labels, sentence_words = [], []
            for word in encoded.word_ids(batch_index=i):
                if word is None or word == previous:
                    sentence_labels.append(-100)  # special token, or a later piece of the word
                else:
                    sentence_labels.append(label_to_id[tags[word]])
                    sentence_words.append(word)
                previous = word
            labels.append(sentence_labels)
            word_index.append(sentence_words)
        encoded["labels"] = labels
        encoded["word_index"] = word_index  # the word each labelled position stands for
        return encoded

    tokenize_start = time.perf_counter()
    train = Dataset.from_list(train_sentences).map(tokenize_and_align, batched=True)
    test = Dataset.from_list(test_sentences).map(tokenize_and_align, batched=True)
    tokenize_seconds = time.perf_counter() - tokenize_start

    test_word_index = list(test["word_index"])
    lost_to_truncation = truncation_losses(tokenizer, test_sentences, test_word_index)
    train_lengths = tokenizer([s["words"] for s in train_sentences], is_split_into_words=True)["input_ids"]
    train_truncated = sum(len(ids) > args.max_length for ids in train_lengths)

    set_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model,
        num_labels=len(label_list),
        id2label=dict(enumerate(label_list)),
        label2id=label_to_id,
        dtype=torch.float32,
    )
    collator = DataCollatorForTokenClassification(tokenizer)
    with tempfile.TemporaryDirectory(prefix="run-ner-baseline-") as scratch:
        training_args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.learning_rate,
            warmup_steps=args.warmup,  # below 1: a ratio of all steps (transformers 5)
            weight_decay=args.weight_decay,
            seed=args.seed,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train,
            processing_class=tokenizer,
            data_collator=collator,
        )
        train_start = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - train_start

        eval_start = time.perf_counter()
        prediction = trainer.predict(test)
        eval_seconds = time.perf_counter() - eval_start

    predicted_ids = np.argmax(prediction.predictions, axis=-1)
    gold_all, predicted_all, gold_seen, predicted_seen = [], [], [], []
    for i, sentence in enumerate(test_sentences):
        mask = prediction.label_ids[i] != -100
        seen_words = test_word_index[i]
        seen_tags = [label_list[label] for label in predicted_ids[i][mask]]
        gold_seen.append([label_list[label] for label in prediction.label_ids[i][mask]])
        predicted_seen.append(seen_tags)
        # Every word of the file: the ones the model did not see are predicted O.
        tags = ["O"] * len(sentence["words"])
        for word, tag in zip(seen_words, seen_tags, strict=True):
            tags[word] = tag
        gold_all.append(sentence["tags"])
        predicted_all.append(tags)

    def scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, Any]:
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
        micro = report["micro avg"]
        return {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "accuracy": float(accuracy_score(gold, predicted)),
            "entities": int(micro["support"]),
            "per_type": {
                name: {
                    "precision": float(row["precision"]),
                    "recall": float(row["recall"]),
                    "f1": float(row["f1-score"]),
                    "support": int(row["support"]),
                }
                for name, row in report.items()
                if not name.endswith(" avg")
            },
        }

    whole = scores(gold_all, predicted_all)
    reported = scores(gold_seen, predicted_seen)
    result: dict[str, Any] = {
        "tool": "run_ner.py recipe (Trainer, tag on the first sub-token)",
        "model": str(args.model),
        "train_file": str(args.train),
        "test_file": str(args.test),
        "train_sentences": len(train_sentences),
        "train_words": sum(len(s["words"]) for s in train_sentences),
        "test_sentences": len(test_sentences),
        "test_words": sum(len(s["words"]) for s in test_sentences),
        "labels": label_list,
        "labels_not_in_train": sorted(test_labels - train_labels),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "max_length": args.max_length,
        "seed": args.seed,
        "limit": args.limit,
        "char_positions": args.char_positions,
        "steps": output.global_step,
        "tokenize_seconds": tokenize_seconds,
        "train_seconds": train_seconds,
        "train_runtime": output.metrics["train_runtime"],
        "train_samples_per_second": output.metrics["train_samples_per_second"],
        "train_loss": output.metrics.get("train_loss"),
        "eval_seconds": eval_seconds,
        "precision": whole["precision"],
        "recall": whole["recall"],
        "f1": whole["f1"],
        "accuracy": whole["accuracy"],
        "f1_strict_iob2": float(
            f1_score(gold_all, predicted_all, mode="strict", scheme=IOB2, zero_division=0)
        ),
        "per_type": whole["per_type"],
        "run_ner_reported": {
            key: reported[key] for key in ("precision", "recall", "f1", "accuracy", "entities")
        },
        **lost_to_truncation,
        "train_sentences_truncated": train_truncated,
        "device": str(trainer.args.device),
        "dtype": str(next(model.parameters()).dtype),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "seqeval": version("seqeval"),
        },
    }
    result["total_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(
        f"f1 {result['f1']:.4f} (run_ner.py would report {reported['f1']:.4f}), "
        f"{result['train_samples_per_second']:.1f} samples/s, "
        f"{lost_to_truncation['test_entities_beyond_max_length']} of "
        f"{lost_to_truncation['test_entities']} test entities past max_length; wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
