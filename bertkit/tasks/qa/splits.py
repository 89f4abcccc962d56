"""A question-answering recipe's data: every split read and its answers checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from bertkit.console import plural, warn
from bertkit.errors import DataError
from bertkit.tasks.qa.data import Questions, check_answers, read_questions
from bertkit.tasks.qa.recipe import QaRecipe

SPLITS = ("train", "validation", "test")


@dataclass
class QaSplits:
    """The questions of a run, and whether some may go unanswered.

    Attributes:
        splits: split name -> questions (only the splits the recipe has).
        unanswerable: whether the model may leave a question unanswered (SQuAD 2.0).
        notes: decisions and counts to show the user.
    """

    splits: dict[str, Questions]
    unanswerable: bool
    notes: list[str] = field(default_factory=list)


def load_qa_data(recipe: QaRecipe, limit: int | None = None) -> QaSplits:
    """Read every split, check its answers against their contexts, decide about unanswerable questions.

    Raises:
        DataError: unreadable data; answers not in their context with `qa.bad_answers: error`;
            unanswerable questions with `qa.unanswerable: false`.
    """
    data, section = recipe.data, recipe.qa
    limit = limit or data.limit
    splits: dict[str, Questions] = {}
    notes: list[str] = []
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        questions = read_questions(source, data)
        count = len(questions)
        questions = questions.head(limit)
        checked, problems, found = check_answers(questions, section.bad_answers)
        if problems and section.bad_answers == "error":
            more = f" ({len(problems) - 1} more in {questions.name})" if len(problems) > 1 else ""
            raise DataError(problems[0].message + more, hint=problems[0].hint)
        limited = f" (first {len(questions):,} used: limit)" if len(questions) < count else ""
        none = f", {checked.unanswerable:,} without an answer" if checked.unanswerable else ""
        notes.append(f"{split}: {plural(count, 'question')} from {questions.name}{limited}{none}")
        notes.extend(found)
        splits[split] = checked
    unanswerable = decide_unanswerable(section.unanswerable, splits)
    if data.validation_split and "validation" not in splits:
        splits["train"], splits["validation"] = carve(
            splits["train"], data.validation_split, recipe.train.seed
        )
        notes.append(
            f"validation: {plural(len(splits['validation']), 'question')} carved from train (by context)"
        )
        # Validation first: its last pass tunes the threshold that test is scored with.
        splits = {split: splits[split] for split in SPLITS if split in splits}
    if not unanswerable:
        notes.append("every question has an answer (SQuAD 1.1 style)")
        others = [split for split, q in splits.items() if q.unanswerable]
        if others:
            warn(
                f"{' and '.join(others)} hold questions without an answer, but train has none: the model "
                "will always answer (set qa.unanswerable: true to train for them)"
            )
    elif "validation" in splits:
        notes.append(
            "questions may have no answer (SQuAD 2.0 style): the no-answer threshold is tuned on validation"
        )
    else:
        notes.append(
            "questions may have no answer (SQuAD 2.0 style); without validation data the no-answer threshold "
            "stays 0 (no answer when it outscores the best answer)"
        )
    return QaSplits(splits, unanswerable, notes)


def decide_unanswerable(setting: object, splits: dict[str, Questions]) -> bool:
    """Whether questions may go unanswered: `qa.unanswerable`, or (auto) whether training has such questions.

    Raises:
        DataError: `qa.unanswerable: false` with data holding unanswerable questions.
    """
    without = {split: q.unanswerable for split, q in splits.items() if q.unanswerable}
    if setting is False and without:
        split, count = next(iter(without.items()))
        raise DataError(
            f"{splits[split].name}: {plural(count, 'question')} with no answer, but qa.unanswerable: false",
            hint="set qa.unanswerable: true (or auto) to train for them, or remove them",
        )
    return bool(setting) if setting != "auto" else bool(without.get("train"))


def carve(questions: Questions, share: float, seed: int) -> tuple[Questions, Questions]:
    """Set a seeded share of the contexts aside with all their questions (no context in both parts)."""
    import numpy as np

    contexts = list(dict.fromkeys(questions.contexts))
    order = np.random.default_rng(seed).permutation(len(contexts))
    held = {contexts[i] for i in order[: max(1, round(len(contexts) * share))]}
    rows = range(len(questions))
    return (
        questions.select([i for i in rows if questions.contexts[i] not in held]),
        questions.select([i for i in rows if questions.contexts[i] in held]),
    )
