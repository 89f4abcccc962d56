"""Checks of question-answering data: rows, answers against contexts, unanswerable share, windows, leakage."""

from __future__ import annotations

from functools import partial
from typing import Any

from bertkit.checks.report import LISTED, SAMPLE_ROWS, CheckReport, SplitStats, TokenStats, plural
from bertkit.checks.texts import check_leakage, check_texts, read_split
from bertkit.errors import DataError
from bertkit.io.reading import Table
from bertkit.tasks.qa.data import Questions, check_answers, read_questions
from bertkit.tasks.qa.recipe import QaRecipe as Recipe
from bertkit.tasks.qa.splits import SPLITS, decide_unanswerable


def check_data(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    splits: dict[str, Questions] = {}
    for split in SPLITS:
        source = getattr(recipe.data, split)
        if source is None:
            continue
        questions = read_split(split, source, partial(read_questions, source, recipe.data), report)
        if questions is None:
            continue
        report.splits[split] = SplitStats(split, questions.name, len(questions), len(questions))
        questions = questions.head(limit)
        checked, problems, notes = check_answers(questions, recipe.qa.bad_answers)
        level = "error" if recipe.qa.bad_answers == "error" else "warning"
        for problem in problems[:LISTED]:
            report.add(level, "answer_not_in_context", problem, split=split)
        if len(problems) > LISTED:
            report.add(
                level,
                "answer_not_in_context",
                f"{questions.name}: {len(problems) - LISTED} more like these",
                split=split,
            )
        report.notes.extend(notes)
        report.splits[split].used = len(checked)
        answered = len(checked) - checked.unanswerable
        report.splits[split].labels = {"answered": answered, "no answer": checked.unanswerable}
        splits[split] = checked
    if "train" not in splits:
        return
    try:
        decide_unanswerable(recipe.qa.unanswerable, splits)
    except DataError as exc:
        report.add("error", "unanswerable", exc)
    tables = {split: Table(q.name, {"question": q.questions}) for split, q in splits.items()}
    keys = {
        split: [f"{a.strip()}\t{c.strip()}" for a, c in zip(q.questions, q.contexts, strict=True)]
        for split, q in splits.items()
    }
    for split, table in tables.items():
        check_texts(split, table, keys[split], recipe.data.question, report, key="data.question")
    check_leakage(tables, keys, report)
    if tokenizer is not None:
        for split, questions in splits.items():
            _check_windows(split, questions.head(SAMPLE_ROWS), tokenizer, recipe, report)


def _check_windows(
    split: str, questions: Questions, tokenizer: Any, recipe: Recipe, report: CheckReport
) -> None:
    """How long the pairs are, how many contexts need windows, and how many windows miss the answer."""
    import numpy as np

    from bertkit.errors import BertkitError
    from bertkit.tasks.qa.features import make_features

    try:
        features = make_features(tokenizer, questions, recipe.data.max_length, recipe.data.doc_stride)
    except BertkitError as exc:
        report.add("error", "model", exc)
        return
    lengths = np.zeros(len(questions), dtype=np.int64)
    for owner, inputs in zip(features.question, features.inputs, strict=True):
        lengths[owner] += len(inputs["input_ids"])
    stats = report.splits[split]
    stats.tokens = TokenStats.of(lengths, 0)
    stats.windowed = features.windowed
    answered = sum(1 for owner in features.question if questions.answers[owner])
    if features.windowed:
        report.notes.append(
            f"{split}: {plural(features.windowed, 'context')} longer than "
            f"data.max_length={recipe.data.max_length} "
            f"read in {plural(len(features), 'window')} overlapping by {recipe.data.doc_stride} tokens; "
            f"{features.without_answer:,} of {answered:,} windows of answered questions "
            f"({features.without_answer / max(answered, 1):.1%}) do not hold the answer "
            "(trained to point at [CLS])"
        )
    if features.clipped_questions:
        report.add(
            "warning",
            "long_questions",
            f"{questions.name}: {plural(features.clipped_questions, 'question')} longer than half of "
            f"data.max_length, cut there so the context fits",
            hint="raise data.max_length, or shorten those questions",
            split=split,
        )
