"""Baseline: fine-tune extractive question answering the way the Transformers `run_qa.py` example does.

The recipe of examples/pytorch/question-answering/run_qa.py (with utils_qa.py and trainer_qa.py),
written out as the short script a user would keep. Nothing in it comes from bertkit.

    python bench/baselines/run_qa_baseline.py --model DIR --train train-v1.1.json \\
        --test dev-v1.1.json --output result.json

- Data: SQuAD-format JSON files (data[].paragraphs[].qas[]), v1.1 or v2.0. A training question
  uses its first answer; a test question may have several, and scores take the best of them.
  With `--version-2-with-negative`, a question without answers is unanswerable.
- Features, as run_qa.py: the question (left whitespace stripped) first and the context second,
  `truncation="only_second"` to `--max-length` sub-tokens, windows overlapping by `--doc-stride`
  (`return_overflowing_tokens`), offset mappings, padded to max_length (run_qa.py's default
  `pad_to_max_length=True`) unless `--no-pad-to-max-length`. A training window is labelled with
  the start and end tokens of the answer, or with the CLS token when the answer is not wholly
  inside it; so one question gives one or more training samples (windows).
- Model and training: `AutoModelForQuestionAnswering` in fp32, `default_data_collator`
  (`DataCollatorWithPadding` without padding to max length), a plain `Trainer` on the CPU, no
  saving or evaluation while training.
- Answers, as utils_qa.py `postprocess_qa_predictions`: over all windows of a question, the 20
  best start and 20 best end logits, spans of at most 30 tokens inside the context, score = start
  + end logit. With `--version-2-with-negative` the null answer (CLS score, the minimum over the
  windows) wins when it beats the best span by more than 0.0.
- Scores: the official SQuAD v1.1 evaluation (exact match and token F1 after lower-casing and
  removing punctuation, articles and extra whitespace, the maximum over gold answers), or the
  official v2.0 one with `--version-2-with-negative` (an empty gold answer means no answer; also
  HasAns/NoAns). The scoring is written out here because `evaluate.load("squad")` fetches the
  metric from the Hub, and this script runs offline.

It writes a JSON result: the Trainer's train_runtime and train_samples_per_second (a sample is a
window, as the Trainer counts them; `train_examples` and `train_features` give the questions and
windows, so questions/s = train_examples * epochs / train_runtime), the test scores, counts and
prediction time. The predictions, question id -> answer text, go to `<output stem>.predictions.json`
beside the result, in the format the official evaluation scripts read.

`--limit N` keeps the first N training questions. (run_qa.py's `--max_train_samples N` also keeps
at most N windows after tokenizing; this script keeps all windows of the N questions.)

Standalone on purpose, like the other baselines: it repeats small helpers rather than importing
them, so the file reads as the whole script a user would run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N_BEST_SIZE = 20
MAX_ANSWER_LENGTH = 30
NULL_SCORE_DIFF_THRESHOLD = 0.0
PUNCTUATION = set(string.punctuation)
ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def read_squad(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """One record per question, flattened as the `squad` dataset is, and the file's version field."""
    with path.open(encoding="utf-8") as handle:
        document = json.load(handle)
    questions = []
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa.get("answers", [])
                questions.append(
                    {
                        "id": str(qa["id"]),
                        "question": qa["question"],
                        "context": paragraph["context"],
                        "answers": {
                            "text": [answer["text"] for answer in answers],
                            "answer_start": [int(answer["answer_start"]) for answer in answers],
                        },
                    }
                )
    return questions, document.get("version")


# --- Official SQuAD evaluation (v1.1 evaluate-v1.1.py, v2.0 evaluate-v2.0.py), same arithmetic ---


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in PUNCTUATION)
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str, empty_matches_empty: bool) -> float:
    """Token F1. v2.0 (`empty_matches_empty`): if either side is empty, 1 when both are, else 0."""
    predicted = normalize_answer(prediction).split()
    reference = normalize_answer(gold).split()
    if empty_matches_empty and (not predicted or not reference):
        return int(predicted == reference)
    same = sum((collections.Counter(predicted) & collections.Counter(reference)).values())
    if same == 0:
        return 0
    precision = 1.0 * same / len(predicted)
    recall = 1.0 * same / len(reference)
    return (2 * precision * recall) / (precision + recall)


def squad_v1_scores(questions: list[dict[str, Any]], predictions: dict[str, str]) -> dict[str, float]:
    """evaluate-v1.1.py: exact match and F1 in percent, best over gold answers, averaged over questions."""
    exact = f1 = 0.0
    for question in questions:
        if question["id"] not in predictions:
            continue  # scores 0, as the official script does
        prediction = predictions[question["id"]]
        golds = question["answers"]["text"]
        exact += max(normalize_answer(prediction) == normalize_answer(gold) for gold in golds)
        f1 += max(token_f1(prediction, gold, empty_matches_empty=False) for gold in golds)
    total = len(questions)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total, "total": total}


def squad_v2_scores(questions: list[dict[str, Any]], predictions: dict[str, str]) -> dict[str, float]:
    """evaluate-v2.0.py without a no-answer probability file: exact and F1 overall, HasAns and NoAns."""
    exact_scores: dict[str, float] = {}
    f1_scores: dict[str, float] = {}
    has_answer = {question["id"]: bool(question["answers"]["text"]) for question in questions}
    for question in questions:
        golds = [gold for gold in question["answers"]["text"] if normalize_answer(gold)] or [""]
        if question["id"] not in predictions:
            continue  # left out of the average, as the official script does
        prediction = predictions[question["id"]]
        exact_scores[question["id"]] = max(
            int(normalize_answer(gold) == normalize_answer(prediction)) for gold in golds
        )
        f1_scores[question["id"]] = max(
            token_f1(prediction, gold, empty_matches_empty=True) for gold in golds
        )
    total = len(exact_scores)
    scores = {
        "exact": 100.0 * sum(exact_scores.values()) / total,
        "f1": 100.0 * sum(f1_scores.values()) / total,
        "total": total,
    }
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid, has in has_answer.items() if has == wanted]
        if ids:
            scores[f"{name}_exact"] = 100.0 * sum(exact_scores[qid] for qid in ids) / len(ids)
            scores[f"{name}_f1"] = 100.0 * sum(f1_scores[qid] for qid in ids) / len(ids)
            scores[f"{name}_total"] = len(ids)
    return scores


# --- utils_qa.py postprocess_qa_predictions ---


def best_answers(
    questions: list[dict[str, Any]],
    example_ids: list[str],
    offsets: list[list[Any]],
    start_logits: Any,
    end_logits: Any,
    with_negative: bool,
) -> dict[str, str]:
    """Answer text per question id, from the logits of all its windows.

    `offsets[i]` is window i's offset mapping with None for every token outside the context.
    """
    import numpy as np

    windows = collections.defaultdict(list)
    for index, example_id in enumerate(example_ids):
        windows[example_id].append(index)

    answers: dict[str, str] = {}
    for question in questions:
        candidates = []
        null = None
        for index in windows[question["id"]]:
            starts, ends, window_offsets = start_logits[index], end_logits[index], offsets[index]
            # The null answer is the CLS position (index 0); keep the lowest null score of the windows.
            if null is None or null["score"] > starts[0] + ends[0]:
                null = {"offsets": (0, 0), "score": starts[0] + ends[0], "start": starts[0], "end": ends[0]}
            best_starts = np.argsort(starts)[-1 : -N_BEST_SIZE - 1 : -1].tolist()
            best_ends = np.argsort(ends)[-1 : -N_BEST_SIZE - 1 : -1].tolist()
            for start in best_starts:
                for end in best_ends:
                    if start >= len(window_offsets) or end >= len(window_offsets):
                        continue  # a padding position
                    if window_offsets[start] is None or window_offsets[end] is None:
                        continue  # outside the context
                    if end < start or end - start + 1 > MAX_ANSWER_LENGTH:
                        continue
                    candidates.append(
                        {
                            "offsets": (window_offsets[start][0], window_offsets[end][1]),
                            "score": starts[start] + ends[end],
                            "start": starts[start],
                            "end": ends[end],
                        }
                    )
        if with_negative:
            candidates.append(null)
        ranked = sorted(candidates, key=lambda candidate: candidate["score"], reverse=True)[:N_BEST_SIZE]
        if with_negative and not any(candidate["offsets"] == (0, 0) for candidate in ranked):
            ranked.append(null)
        for candidate in ranked:
            candidate["text"] = question["context"][candidate["offsets"][0] : candidate["offsets"][1]]
        if not ranked or (len(ranked) == 1 and ranked[0]["text"] == ""):
            ranked.insert(0, {"text": "empty", "score": 0.0, "start": 0.0, "end": 0.0})

        if not with_negative:
            answers[question["id"]] = ranked[0]["text"]
            continue
        best = next(candidate for candidate in ranked if candidate["text"] != "")
        score_diff = null["score"] - best["start"] - best["end"]
        answers[question["id"]] = "" if score_diff > NULL_SCORE_DIFF_THRESHOLD else best["text"]
    return answers


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="local model folder")
    parser.add_argument("--train", type=Path, required=True, help="training file, SQuAD JSON")
    parser.add_argument("--test", type=Path, required=True, help="test file, SQuAD JSON")
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--warmup", type=float, default=0.0, help="below 1: a share of all steps")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--max-length", type=int, default=384, help="sub-tokens per window, question and specials included"
    )
    parser.add_argument("--doc-stride", type=int, default=128, help="sub-tokens shared by adjacent windows")
    parser.add_argument(
        "--no-pad-to-max-length",
        dest="pad_to_max_length",
        action="store_false",
        help="pad each batch to its longest window (DataCollatorWithPadding) instead of to --max-length",
    )
    parser.add_argument("--limit", type=int, help="use only the first N training questions")
    parser.add_argument(
        "--version-2-with-negative",
        action="store_true",
        help="SQuAD v2.0: questions may have no answer; predict the null answer and score with v2.0",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # Offline whatever the caller's environment says: the model is a local folder.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"

    import datasets
    import numpy as np
    import torch
    import transformers
    from datasets import Dataset
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    set_seed(args.seed)
    train_questions, train_version = read_squad(args.train)
    train_questions = train_questions[: args.limit]
    test_questions, test_version = read_squad(args.test)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if not tokenizer.is_fast:
        raise SystemExit("a fast tokenizer is needed: offset mappings map sub-tokens back to characters")
    # Padding side decides the order: (question, context), or (context, question) for left-padding models.
    pad_on_right = tokenizer.padding_side == "right"
    context_index = 1 if pad_on_right else 0
    max_length = min(args.max_length, tokenizer.model_max_length)

    def tokenize(batch: dict[str, list[Any]]) -> Any:
        questions = [question.lstrip() for question in batch["question"]]
        return tokenizer(
            questions if pad_on_right else batch["context"],
            batch["context"] if pad_on_right else questions,
            truncation="only_second" if pad_on_right else "only_first",
            max_length=max_length,
            stride=args.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length" if args.pad_to_max_length else False,
        )

    def training_features(batch: dict[str, list[Any]]) -> Any:
        encoded = tokenize(batch)
        owner = encoded.pop("overflow_to_sample_mapping")
        starts, ends = [], []
        for i, offsets in enumerate(encoded.pop("offset_mapping")):
            input_ids = encoded["input_ids"][i]
            if tokenizer.cls_token_id in input_ids:
                cls_index = input_ids.index(tokenizer.cls_token_id)
            elif tokenizer.bos_token_id in input_ids:
                cls_index = input_ids.index(tokenizer.bos_token_id)
            else:
                cls_index = 0
            answers = batch["answers"][owner[i]]
            if not answers["answer_start"]:  # no answer (SQuAD v2.0): point at CLS
                starts.append(cls_index)
                ends.append(cls_index)
                continue
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            sequence_ids = encoded.sequence_ids(i)
            first = 0  # first and last context token of the window
            while sequence_ids[first] != context_index:
                first += 1
            last = len(input_ids) - 1
            while sequence_ids[last] != context_index:
                last -= 1
            if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
                starts.append(cls_index)  # the answer is not wholly inside this window
                ends.append(cls_index)
                continue
            # Walk in from both ends of the context to the answer's tokens (the answer may end the
            # context, so the start walk can step past the last offset).
            while first < len(offsets) and offsets[first][0] <= start_char:
                first += 1
            starts.append(first - 1)
            while offsets[last][1] >= end_char:
                last -= 1
            ends.append(last + 1)
        encoded["start_positions"] = starts
        encoded["end_positions"] = ends
        return encoded

    def test_features(batch: dict[str, list[Any]]) -> Any:
        encoded = tokenize(batch)
        owner = encoded.pop("overflow_to_sample_mapping")
        encoded["example_id"] = [batch["id"][sample] for sample in owner]
        # Keep offsets only for context tokens, so a span outside the context is easy to reject.
        kept = []
        for i, offsets in enumerate(encoded["offset_mapping"]):
            sequence_ids = encoded.sequence_ids(i)
            kept.append([o if sequence_ids[k] == context_index else None for k, o in enumerate(offsets)])
        encoded["offset_mapping"] = kept
        return encoded

    columns = ["id", "question", "context", "answers"]
    tokenize_start = time.perf_counter()
    train = Dataset.from_list(train_questions).map(training_features, batched=True, remove_columns=columns)
    test = Dataset.from_list(test_questions).map(test_features, batched=True, remove_columns=columns)
    tokenize_seconds = time.perf_counter() - tokenize_start
    test_example_ids = list(test["example_id"])
    test_offsets = list(test["offset_mapping"])
    test_inputs = test.remove_columns(["example_id", "offset_mapping"])
    # Windows whose answer is not inside them: their label is the CLS token.
    train_cls_labelled = sum(
        ids[start] in (tokenizer.cls_token_id, tokenizer.bos_token_id) and start == end
        for ids, start, end in zip(
            train["input_ids"], train["start_positions"], train["end_positions"], strict=True
        )
    )

    model = AutoModelForQuestionAnswering.from_pretrained(args.model, dtype=torch.float32)
    collator = default_data_collator if args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    with tempfile.TemporaryDirectory(prefix="run-qa-baseline-") as scratch:
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

        predict_start = time.perf_counter()
        prediction = trainer.predict(test_inputs)
        predict_seconds = time.perf_counter() - predict_start

    postprocess_start = time.perf_counter()
    start_logits, end_logits = prediction.predictions[:2]
    predictions = best_answers(
        test_questions, test_example_ids, test_offsets, start_logits, end_logits, args.version_2_with_negative
    )
    postprocess_seconds = time.perf_counter() - postprocess_start
    if args.version_2_with_negative:
        scores = squad_v2_scores(test_questions, predictions)
        exact_match, f1 = scores["exact"], scores["f1"]
    else:
        scores = squad_v1_scores(test_questions, predictions)
        exact_match, f1 = scores["exact_match"], scores["f1"]

    predictions_path = args.output.with_name(args.output.stem + ".predictions.json")
    windows_per_question = collections.Counter(test_example_ids)
    result: dict[str, Any] = {
        "tool": "run_qa.py recipe (Trainer, utils_qa post-processing, official SQuAD scoring)",
        "model": str(args.model),
        "train_file": str(args.train),
        "test_file": str(args.test),
        "train_file_version": train_version,
        "test_file_version": test_version,
        "version_2_with_negative": args.version_2_with_negative,
        "train_examples": len(train_questions),
        "train_features": len(train),
        "train_features_labelled_cls": train_cls_labelled,
        "test_examples": len(test_questions),
        "test_features": len(test),
        "test_examples_with_several_windows": sum(count > 1 for count in windows_per_question.values()),
        "test_unanswerable": sum(not question["answers"]["text"] for question in test_questions),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "max_length": max_length,
        "doc_stride": args.doc_stride,
        "pad_to_max_length": args.pad_to_max_length,
        "n_best_size": N_BEST_SIZE,
        "max_answer_length": MAX_ANSWER_LENGTH,
        "null_score_diff_threshold": NULL_SCORE_DIFF_THRESHOLD,
        "seed": args.seed,
        "limit": args.limit,
        "steps": output.global_step,
        "tokenize_seconds": tokenize_seconds,
        "train_seconds": train_seconds,
        "train_runtime": output.metrics["train_runtime"],
        "train_samples_per_second": output.metrics["train_samples_per_second"],
        "train_examples_per_second": len(train_questions) * args.epochs / output.metrics["train_runtime"],
        "train_loss": output.metrics.get("train_loss"),
        "predict_seconds": predict_seconds,
        "postprocess_seconds": postprocess_seconds,
        "exact_match": exact_match,
        "f1": f1,
        "scores": scores,
        "scorer": "official SQuAD v2.0" if args.version_2_with_negative else "official SQuAD v1.1",
        "predictions_file": str(predictions_path),
        "device": str(trainer.args.device),
        "dtype": str(next(model.parameters()).dtype),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
            "numpy": np.__version__,
        },
    }
    result["total_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    predictions_path.write_text(json.dumps(predictions, indent=2, ensure_ascii=False), encoding="utf-8")
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(
        f"exact match {exact_match:.2f}, f1 {f1:.2f} on {len(test_questions)} questions; "
        f"{result['train_samples_per_second']:.1f} windows/s "
        f"({result['train_examples_per_second']:.1f} questions/s); wrote {args.output} and {predictions_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
