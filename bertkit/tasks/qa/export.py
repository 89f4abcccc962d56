"""Export a question-answering model to ONNX and check it: its start and end logits, and its answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.export.onnx import ExportResult, finish, write_graphs
from bertkit.export.parity import Tolerances, judge
from bertkit.tasks.qa.inference import OUTPUTS

SAMPLE_QUESTIONS = 128


def export_checks(
    folder: Path,
    run: Any,
    tmp: Path,
    quantize: str | None,
    optimize: bool,
    data: Path | None,
    limits: Tolerances,
    step: Callable[[str], None],
) -> ExportResult:
    from bertkit.tasks.qa.backends import load_onnx_reader
    from bertkit.tasks.qa.features import make_features
    from bertkit.tasks.qa.inference import load_reader

    original = load_reader(folder if run is None else run.path, device="cpu")
    questions, where, labelled = sample_questions(original.recipe, data)
    info = write_graphs(
        original.model, original.tokenizer, folder, tmp, quantize, optimize, True, step, OUTPUTS
    )
    step(f"checking the export on {where}")
    features = make_features(original.tokenizer, questions, original.max_length, original.doc_stride)
    starts, ends = original.logits(features, batch_size=16)
    answers = original.answers(questions, batch_size=16)
    references = [[text for text, _ in a] for a in questions.answers]
    checks = []
    for variant in ("fp32", *(["int8"] if quantize else [])):
        exported = load_onnx_reader(tmp, quantize=quantize if variant == "int8" else None, device="cpu")
        their_starts, their_ends = exported.logits(features, batch_size=16)
        diff = max(
            (
                float(np.abs(a - b).max())
                for pair in ((starts, their_starts), (ends, their_ends))
                for a, b in zip(*pair, strict=True)
            ),
            default=0.0,
        )
        theirs = exported.answers(questions, batch_size=16)
        same = sum(a == b for a, b in zip(answers, theirs, strict=True))
        f1 = (len(questions), _f1(theirs, references), _f1(answers, references)) if labelled else None
        checks.append(
            judge(variant, len(questions), len(questions), diff, same / max(len(questions), 1), "answers",
                  limits, f1, quality="F1")
        )  # fmt: skip
    return finish("question-answering", info, checks, where)


def _f1(answers: list[str], references: list[list[str]]) -> float:
    """Mean SQuAD F1 of the answers, as a share (0-1) like accuracy."""
    from bertkit.tasks.qa.scoring import question_scores

    total = sum(question_scores(a, r)[1] for a, r in zip(answers, references, strict=True))
    return total / max(len(answers), 1)


def sample_questions(recipe: Any, data: Path | None) -> tuple[Any, str, bool]:
    """Questions for the parity check: the `data` file's, else the run's validation data, else built-in ones.

    Returns:
        The questions, where they came from, and whether they have reference answers
        (the built-in ones have none).

    Raises:
        DataError: the `data` file cannot be read.
    """
    from bertkit.console import warn
    from bertkit.errors import DataError
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.qa.data import Questions, read_questions
    from bertkit.tasks.qa.recipe import QaData

    source = DataSource(path=str(data)) if data is not None else (recipe.data.validation if recipe else None)
    if source is not None:
        try:
            questions = read_questions(source, recipe.data if recipe else QaData()).head(SAMPLE_QUESTIONS)
        except DataError as exc:
            if data is not None:
                raise
            warn(f"checking on built-in questions: the run's validation data cannot be read ({exc.message})")
        else:
            return questions, f"{len(questions)} questions from {source.describe()}", True
    builtin = Questions("built-in")
    context = (
        "The Brennan Bridge opened in 1932 after four years of work. It crosses the River Alde at Hollin, "
        "a market town of about 12,000 people, and was designed by the engineer Mary Castell. "
        "Its central span is 240 metres long, and it carried trams until 1961."
    )
    for index, question in enumerate(
        ["When did the bridge open?", "Who designed the bridge?", "How long is the central span?",
         "Which river does it cross?", "How many people live in Hollin?", "Until when did it carry trams?"]
    ):  # fmt: skip
        builtin.add(str(index), question, context, [], "built-in")
    return builtin, "built-in questions", False
