"""Read question-answering data into questions, contexts and answer spans, and check every answer.

Three shapes are read into the same `Questions`:

- SQuAD v1.1/v2.0 JSON: `{"data": [{"paragraphs": [{"context", "qas": [...]}]}]}`;
  `is_impossible` questions (and questions without answers) have no answer.
- Records (JSON, JSONL, CSV, TSV, Parquet, Hub datasets) with a question, a context
  and either the SQuAD `answers` column (`{text: [...], answer_start: [...]}`) or one
  answer in two columns (`answer`, `answer_start`); an empty answer means none.

An answer is a span of its context: its text must sit at its `answer_start`. Real
data breaks this (a start of -1, an off-by-one after an edit); `check_answers` finds
every such answer and, as the recipe says, looks for its text in the context, drops
the question, or stops, and always says how many.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bertkit.console import plural
from bertkit.errors import DataError
from bertkit.io.reading import iter_rows
from bertkit.io.text import OnError, raise_error
from bertkit.recipe.base import DataSource
from bertkit.tasks.qa.recipe import QaData

Answer = tuple[str, int]  # (text, first character in the context)


@dataclass
class Questions:
    """The questions of one split with their contexts and answers, and where each came from.

    Attributes:
        name: the source as users know it.
        ids: each question's id.
        questions, contexts: the texts.
        answers: each question's answers ([] for a question the context does not answer).
        origins: where each question is (`file, question ID` or `file:line`).
        notes: decisions taken while reading.
    """

    name: str
    ids: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    answers: list[list[Answer]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, qid: str, question: str, context: str, answers: list[Answer], origin: str) -> None:
        self.ids.append(qid)
        self.questions.append(question)
        self.contexts.append(context)
        self.answers.append(answers)
        self.origins.append(origin)

    def select(self, rows: Any) -> Questions:
        rows = list(rows)
        return replace(
            self,
            ids=[self.ids[i] for i in rows],
            questions=[self.questions[i] for i in rows],
            contexts=[self.contexts[i] for i in rows],
            answers=[self.answers[i] for i in rows],
            origins=[self.origins[i] for i in rows],
        )

    def head(self, limit: int | None) -> Questions:
        return self if limit is None or limit >= len(self) else self.select(range(limit))

    @property
    def unanswerable(self) -> int:
        """How many questions have no answer."""
        return sum(not answers for answers in self.answers)


def read_questions(source: DataSource, data: QaData, on_error: OnError | None = None) -> Questions:
    """Read one split from its source.

    Raises:
        DataError: a missing or unreadable file, missing columns, malformed answers.
    """
    report = on_error or raise_error
    if source.hub is not None:
        from bertkit.io.reading import load_hub_split

        name, dataset = load_hub_split(source.hub, source.split or "train", source.config, source.revision)
        out = Questions(name)
        for index, record in enumerate(dataset):
            _add_record(out, record, data, f"{name} row {index + 1}", index, report)
    else:
        path = Path(str(source.path))
        squad = (
            _squad_json(path) if path.suffix.lower() == ".json" and source.format in (None, "json") else None
        )
        if squad is not None:
            out = _from_squad(path, squad)
        else:
            out = Questions(str(path))
            for number, record in iter_rows(path, source.format, on_error=report):
                where = f"{path}:{number}" if number is not None else f"{path}, record {len(out) + 1}"
                _add_record(out, record, data, where, len(out), report)
    if not len(out):
        raise DataError(
            f"{out.name}: no questions", hint="check the file holds questions, contexts and answers"
        )
    return _merge_repeats(out)


def _merge_repeats(questions: Questions) -> Questions:
    """One question per id: rows that repeat an id with the same question and context add answers
    (flat files give one reference answer a row).

    Raises:
        DataError: an id repeated with another question or context.
    """
    first: dict[str, int] = {}
    keep: list[int] = []
    for row, qid in enumerate(questions.ids):
        if qid not in first:
            first[qid] = row
            keep.append(row)
            continue
        earlier = first[qid]
        same = (questions.questions[row], questions.contexts[row]) == (
            questions.questions[earlier],
            questions.contexts[earlier],
        )
        if not same:
            raise DataError(
                f"{questions.origins[row]}: question id {qid!r} repeats {questions.origins[earlier]} with "
                "another question or context",
                hint="give each question its own id",
            )
        for answer in questions.answers[row]:
            if answer not in questions.answers[earlier]:
                questions.answers[earlier].append(answer)
    if len(keep) == len(questions):
        return questions
    merged = questions.select(keep)
    merged.notes.append(
        f"{questions.name}: {plural(len(questions), 'row')} with repeated question ids merged into "
        f"{plural(len(merged), 'question')} with several reference answers"
    )
    return merged


def _squad_json(path: Path) -> Any:
    """The parsed file when it is a SQuAD-layout JSON file (a mapping with `data`), else None."""
    if not path.is_file():
        raise DataError(
            f"{path}: file not found", hint="check the path; relative paths resolve against the recipe"
        )
    try:
        parsed = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}", hint="check the file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8", hint="re-save the file as UTF-8") from None
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("data"), list) else None


def _from_squad(path: Path, squad: dict[str, Any]) -> Questions:
    out = Questions(str(path))
    for article in squad["data"]:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                qid = str(qa.get("id", len(out)))
                where = f"{path}, question {qid}"
                if not isinstance(context, str) or not isinstance(qa.get("question"), str):
                    raise DataError(f"{where}: no context or question text", hint="check the SQuAD layout")
                answers = [] if qa.get("is_impossible") else _answer_list(qa.get("answers") or [], where)
                out.add(qid, qa["question"], context, answers, where)
    return out


def _add_record(
    out: Questions, record: dict[str, Any], data: QaData, where: str, index: int, report: OnError
) -> None:
    missing = [c for c in (data.question, data.context) if c not in record]
    if missing or (data.answers not in record and data.answer not in record):
        wanted = ", ".join(
            [data.question, data.context, f"{data.answers} (or {data.answer} and {data.answer_start})"]
        )
        raise DataError(
            f"{where}: columns are {', '.join(record) or 'none'}; a question-answering row needs {wanted}",
            hint="name the columns with data.question, data.context and data.answers (or data.answer)",
        )
    question, context = record[data.question], record[data.context]
    if not isinstance(question, str) or not isinstance(context, str) or not context.strip():
        report(DataError(f"{where}: the question and the context must be non-empty text", hint="fix the row"))
        return
    try:
        if data.answers in record:
            answers = _answer_list(record[data.answers], where)
        else:
            answers = _flat_answer(record.get(data.answer), record.get(data.answer_start), where)
    except DataError as exc:
        report(exc)
        return
    qid = str(record.get(data.id)) if record.get(data.id) is not None else str(index + 1)
    out.add(qid, question, context, answers, where)


def _answer_list(value: Any, where: str) -> list[Answer]:
    """SQuAD answers: {text: [...], answer_start: [...]} or [{text, answer_start}, ...]."""
    if isinstance(value, dict):
        texts, starts = value.get("text") or [], value.get("answer_start") or []
        if len(texts) != len(starts):
            raise DataError(
                f"{where}: {len(texts)} answer texts but {len(starts)} starts", hint="pair every text"
            )
        value = [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=True)]
    if not isinstance(value, list):
        raise DataError(
            f"{where}: answers must be a list or a mapping of lists",
            hint='e.g. {"text": ["..."], "answer_start": [12]}',
        )
    answers = []
    for answer in value:
        if not isinstance(answer, dict):
            raise DataError(
                f"{where}: answer {answer!r} is not {{text, answer_start}}", hint="fix the answers"
            )
        answers += _flat_answer(answer.get("text"), answer.get("answer_start"), where)
    return answers


def _flat_answer(text: Any, start: Any, where: str) -> list[Answer]:
    if text is None or (isinstance(text, str) and not text.strip()):
        return []  # no answer: an unanswerable question
    try:
        begin = int(float(start))  # CSV cells are text
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: answer {text!r} has no answer_start ({start!r})", hint="give its first character"
        ) from None
    return [(str(text), begin)]


def check_answers(questions: Questions, mode: str) -> tuple[Questions, list[DataError], list[str]]:
    """Every answer against its context, dealt with as `qa.bad_answers` says.

    Returns:
        The questions kept (with `search`, answers moved to where their text is), one
        error per question with an answer that is not where it says (with `search`:
        nowhere in the context), and notes with the counts. With `error` the
        questions come back unchanged for the caller to refuse; otherwise the
        questions with such answers are dropped and the errors are for reporting.
    """
    moved, rows, kept, problems = 0, [], [], []
    for index, (context, answers) in enumerate(zip(questions.contexts, questions.answers, strict=True)):
        fixed, bad = [], []
        for text, start in answers:
            if start >= 0 and context[start : start + len(text)] == text:
                fixed.append((text, start))
            elif mode == "search" and text in context:
                fixed.append((text, _nearest(context, text, start)))
                moved += 1
            else:
                bad.append((text, start))
        if bad:
            text, start = bad[0]
            there = context[start : start + len(text)] if 0 <= start < len(context) else None
            shown = f"the context has {there!r} there" if there is not None else "outside the context"
            if mode == "search":
                shown += ", and the text is nowhere in the context"
            problems.append(
                DataError(
                    f"{questions.origins[index]}: answer {text!r} is not at answer_start {start} ({shown})",
                    hint="fix answer_start, or set qa.bad_answers: search (find the text) or drop",
                )
            )
            continue
        rows.append(index)
        kept.append(fixed)
    notes = []
    if moved:
        notes.append(
            f"{questions.name}: {plural(moved, 'answer')} not at their answer_start, found elsewhere in the "
            "context (qa.bad_answers: search)"
        )
    if mode == "error" or not (moved or problems):
        return questions, problems, notes
    if problems:
        notes.append(
            f"{questions.name}: {plural(len(problems), 'question')} dropped: an answer is not in its context "
            f"(qa.bad_answers: {mode})"
        )
    out = questions.select(rows)
    out.answers = kept
    return out, problems, notes


def _nearest(context: str, text: str, start: int) -> int:
    """The occurrence of `text` in `context` closest to `start`."""
    found, at = [], context.find(text)
    while at != -1:
        found.append(at)
        at = context.find(text, at + 1)
    return min(found, key=lambda position: abs(position - start))
