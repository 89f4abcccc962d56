"""Evaluate a question-answering model: SQuAD scores, a report, every question's result and the worst misses.

`bertkit eval` with no arguments evaluates the latest run on its recipe's validation
data (or test data with `--split test`); any QA model folder and any SQuAD-style file
work too. During training the same scoring runs on the Trainer's logits
(`make_compute_metrics`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import DataError, UsageError
from bertkit.files import atomic_write_json, atomic_write_text, check_writable_folder
from bertkit.recipe.base import DataSource
from bertkit.reports import cell, markdown_table
from bertkit.runs import eval_report_dir
from bertkit.tasks.base import CONFIG_KEY
from bertkit.tasks.qa.answers import Ranked, rank_answers
from bertkit.tasks.qa.data import Questions, check_answers, read_questions
from bertkit.tasks.qa.features import Features
from bertkit.tasks.qa.recipe import QaData
from bertkit.tasks.qa.scoring import best_thresholds, question_scores, squad_scores

WORST = 50  # misses listed in report.md


def scores(
    questions: Questions, ranked: list[Ranked], unanswerable: bool, threshold: float
) -> dict[str, float]:
    """SQuAD scores of ranked answers at a threshold (and the best thresholds, for unanswerable questions)."""
    predictions = {
        qid: r.answer(unanswerable, threshold) for qid, r in zip(questions.ids, ranked, strict=True)
    }
    references = dict(zip(questions.ids, ([t for t, _ in a] for a in questions.answers), strict=True))
    out = squad_scores(predictions, references)
    if unanswerable:
        best = {
            qid: r.candidates[0].text if r.candidates else ""
            for qid, r in zip(questions.ids, ranked, strict=True)
        }
        margins = {qid: r.null_margin for qid, r in zip(questions.ids, ranked, strict=True)}
        out.update(best_thresholds(best, margins, references))
        out["threshold"] = threshold
    return out


def make_compute_metrics(questions: Questions, features: Features, model: Any, *, tune: bool) -> Any:
    """A Trainer `compute_metrics` for one split: the logits of its windows into SQuAD scores.

    With `tune` (validation data of a model that may leave questions unanswered), the
    no-answer threshold that maximises F1 is found first and written into the model's
    config (for the test split and the saved model), and the scores are those at that
    threshold: what `bertkit eval` of the saved model on the same data gives.
    """

    def compute(prediction: Any) -> dict[str, float]:
        saved = getattr(model.config, CONFIG_KEY)
        starts, ends = (np.asarray(x) for x in prediction.predictions[:2])
        lengths = [len(f["input_ids"]) for f in features.inputs]
        ranked = rank_answers(
            features,
            [row[:n] for row, n in zip(starts, lengths, strict=True)],
            [row[:n] for row, n in zip(ends, lengths, strict=True)],
            questions.contexts,
            len(questions),
            n_best=saved["n_best"],
            max_answer_length=saved["max_answer_length"],
            unanswerable=saved["unanswerable"],
        )
        if tune and saved["unanswerable"]:
            best = scores(questions, ranked, True, saved["null_threshold"])["best_f1_threshold"]
            saved["null_threshold"] = robust_threshold(best, [r.null_margin for r in ranked])
        return scores(questions, ranked, saved["unanswerable"], saved["null_threshold"])

    return compute


def robust_threshold(best: float, margins: list[float]) -> float:
    """The threshold to keep: midway from the best one to the next question's margin above it.

    The best threshold is some question's own margin, so float noise (another batch
    size, another backend) would flip that question; any value up to the next margin
    answers the same questions on this data.
    """
    above = [m for m in margins if m > best and m != float("inf")]
    return (best + min(above)) / 2 if above else best + 1.0


@dataclass
class QaEvaluation:
    """Scores of one evaluation and where its report went."""

    metrics: dict[str, float]
    data: str
    questions: int
    model: Path
    report_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


def evaluate_qa(
    model: Path | None = None,
    *,
    data: Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    output: Path | None = None,
    root: Path = Path("runs"),
    device: str | None = None,
) -> QaEvaluation:
    """Answer every question, score the answers, write report.md, results.jsonl and metrics.json.

    Raises:
        BertkitError: no model or data, malformed answers.
    """
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.qa.inference import load_reader

    if output is not None:
        check_writable_folder(output, "--output")
    reader = load_reader(model, root=root, device=device)
    recipe = reader.recipe
    columns = recipe.data if recipe is not None else QaData()
    source, split_name = _source(columns if recipe is not None else None, data, split)
    questions = read_questions(source, columns).head(limit)
    questions, problems, notes = check_answers(questions, recipe.qa.bad_answers if recipe else "search")
    if problems and recipe is not None and recipe.qa.bad_answers == "error":
        more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(problems[0].message + more, hint=problems[0].hint)
    from bertkit.console import note

    notes = [*questions.notes, *notes]
    for line in notes:
        note(line)
    report_dir = output or _report_dir(reader, questions.name, split_name)
    check_writable_folder(report_dir, "--output")
    ranked, _ = reader.rank(questions, batch_size or DEFAULT_INFERENCE_BATCH[reader.device])
    metrics = scores(questions, ranked, reader.unanswerable, reader.threshold)
    title = f"Evaluation of {reader.run.path.name if reader.run else reader.source}"
    files = write_report(report_dir, questions, ranked, reader, metrics, title, notes)
    return QaEvaluation(metrics, questions.name, len(questions), reader.source, report_dir, files)


def write_report(
    folder: Path,
    questions: Questions,
    ranked: list[Ranked],
    reader: Any,
    metrics: dict[str, float],
    title: str,
    notes: list[str],
) -> dict[str, Path]:
    """report.md (scores, the worst misses), results.jsonl (every question) and metrics.json, written last."""
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for index, r in enumerate(ranked):
        answer = r.answer(reader.unanswerable, reader.threshold)
        references = [t for t, _ in questions.answers[index]]
        exact, f1 = question_scores(answer, references)
        result = {
            "id": questions.ids[index],
            "question": questions.questions[index],
            "answer": answer,
            "references": references,
            "exact_match": exact,
            "f1": round(f1, 4),
            "where": questions.origins[index],
        }
        if reader.unanswerable:
            # What the SQuAD 2.0 script reads: the best non-empty answer and how much more the
            # model scores "no answer" (answered when at most the threshold).
            result["best_answer"] = r.candidates[0].text if r.candidates else ""
            result["no_answer_margin"] = r.null_margin if r.candidates else None
        results.append(result)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    worst = sorted((r for r in results if r["exact_match"] < 1), key=lambda r: (r["f1"], r["exact_match"]))[
        :WORST
    ]
    md = [f"# {cell(title)}", "", f"- Data: {cell(questions.name)} ({len(questions):,} questions)"]
    md += [f"- {cell(n)}" for n in notes]
    shown = [{"metric": k, "value": round(v, 2)} for k, v in metrics.items() if not k.endswith("total")]
    md += ["", "## Scores (SQuAD: percentages)", "", markdown_table(shown, ["metric", "value"]), ""]
    md += [f"## The {len(worst)} worst misses", ""]
    rows = [
        {
            "question": r["question"],
            "answer": r["answer"] or "(none)",
            "reference": " | ".join(r["references"]) or "(none)",
            "f1": r["f1"],
        }
        for r in worst
    ]
    md.append(markdown_table(rows, ["question", "answer", "reference", "f1"]) if rows else "None.")
    files = {
        "results": atomic_write_text(folder / "results.jsonl", lines),
        "report": atomic_write_text(folder / "report.md", "\n".join(md) + "\n"),
    }
    summary = {
        "title": title,
        "task": "qa",
        "data": questions.name,
        "n_examples": len(questions),
        "metrics": metrics,
    }
    files["metrics"] = atomic_write_json(folder / "metrics.json", summary)
    return files


def _source(columns: QaData | None, data: Path | None, split: str | None) -> tuple[DataSource, str]:
    if data is not None:
        return DataSource(path=str(data)), data.stem
    if columns is None:
        raise UsageError(
            "no data to evaluate on: this model folder has no bertkit recipe",
            hint="give a SQuAD-style file with --data FILE",
        )
    order = [split] if split else ["validation", "test"]
    for name in order:
        source = getattr(columns, name, None)
        if source is not None:
            return source, name
    raise DataError(f"the run's recipe has no {' or '.join(order)} data", hint="give a file with --data FILE")


def _report_dir(reader: Any, data_name: str, split: str) -> Path:
    return eval_report_dir(reader.run, reader.source.name, data_name, split)
