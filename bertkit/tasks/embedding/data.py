"""Embedding data: text pairs, triplets and scored pairs; retrieval folders in the BEIR layout.

Two shapes:

- Rows (CSV/TSV/JSON/JSONL/Parquet, Hub datasets) of two or three texts and maybe a
  score: (anchor, positive) pairs, (anchor, positive, negative) triplets, or
  (sentence1, sentence2, score) scored pairs. Columns are named in the recipe
  (`data.texts`, `data.score`) or found by their usual names.
- A BEIR folder: `corpus.jsonl` ({_id, title, text}), `queries.jsonl` ({_id, text})
  and `qrels/<split>.tsv` (query-id, corpus-id, score). For training, each relevant
  (query, document) pair is a positive pair; for evaluation, the queries are searched
  in the corpus.

The GLUE TSV files (STS-B) are not CSV-quoted; bertkit's reader keeps their quotes.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.console import plural
from bertkit.errors import DataError
from bertkit.recipe.base import DataSource

# Usual column names, most specific first: the first set a file has is used.
TEXT_COLUMNS = (
    ("anchor", "positive", "negative"),
    ("anchor", "positive"),
    ("query", "positive", "negative"),
    ("query", "positive"),
    ("query", "document"),
    ("sentence1", "sentence2"),
    ("sentence_A", "sentence_B"),
    ("text1", "text2"),
)
SCORE_COLUMNS = ("score", "label", "relatedness_score", "similarity")


@dataclass
class Pairs:
    """Rows of two or three texts, with a score per row or none.

    Attributes:
        name: the source as users know it.
        columns: the text columns, in order (2: pairs, 3: triplets).
        texts: per column, its texts.
        scores: per row, its gold similarity (scored pairs), else None.
        score_column: the column the scores came from.
    """

    name: str
    columns: list[str]
    texts: list[list[str]]
    scores: list[float] | None = None
    score_column: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts[0])

    @property
    def shape(self) -> str:
        """scored pairs, triplets or pairs."""
        if self.scores is not None:
            return "scored pairs"
        return "triplets" if len(self.columns) == 3 else "pairs"

    def head(self, limit: int | None) -> Pairs:
        if limit is None or limit >= len(self):
            return self
        return Pairs(
            self.name,
            self.columns,
            [t[:limit] for t in self.texts],
            self.scores[:limit] if self.scores is not None else None,
            self.score_column,
            self.notes,
        )


@dataclass
class Retrieval:
    """A BEIR retrieval set: queries, a corpus, and which documents answer which query."""

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, dict[str, int]]  # query id -> {document id: relevance > 0}

    def __len__(self) -> int:
        return len(self.relevant)

    def pairs(self) -> Pairs:
        """Every relevant (query, document) pair: training pairs for in-batch negatives."""
        anchors, positives = [], []
        for qid, documents in self.relevant.items():
            for cid in documents:
                anchors.append(self.queries[qid])
                positives.append(self.corpus[cid])
        return Pairs(self.name, ["query", "document"], [anchors, positives])


def is_beir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def read_retrieval(folder: Path, split: str) -> Retrieval:
    """A BEIR folder's queries with relevance judgements in `qrels/<split>.tsv`, and its corpus.

    Raises:
        DataError: a missing file, a malformed line, a judgement naming an unknown query or document.
    """
    qrels = folder / "qrels" / f"{split}.tsv"
    if not qrels.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DataError(f"{qrels}: not found", hint=f"splits in {folder}/qrels: {', '.join(found) or 'none'}")
    corpus = {
        str(r["_id"]): " ".join(t for t in (r.get("title") or "", r.get("text") or "") if t).strip()
        for r in _jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): str(r.get("text") or "") for r in _jsonl(folder / "queries.jsonl")}
    relevant: dict[str, dict[str, int]] = {}
    with qrels.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # the header
            if len(row) != 3:
                raise DataError(f"{qrels}:{number}: expected query-id, corpus-id, score", hint="fix the line")
            qid, cid, score = row[0], row[1], int(row[2])
            for kind, key, known in (("query", qid, queries), ("document", cid, corpus)):
                if key not in known:
                    raise DataError(f"{qrels}:{number}: unknown {kind} id {key!r}", hint="check the folder")
            if score > 0:
                relevant.setdefault(qid, {})[cid] = score
    if not relevant:
        raise DataError(f"{qrels}: no relevant documents", hint="check the file")
    return Retrieval(f"{folder} ({split})", queries, corpus, relevant)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: not found", hint="a BEIR folder has corpus.jsonl, queries.jsonl and qrels/")
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}", hint="fix the line") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise DataError(f"{path}:{number}: a record needs an `_id`", hint="fix the line")
            rows.append(row)
    return rows


def read_pairs(source: DataSource, texts: list[str] | None = None, score: str | None = None) -> Pairs:
    """Rows of two or three texts (and a score) from a file or a Hub dataset.

    Raises:
        DataError: unreadable data; columns not found; a score that is not a number.
    """
    from bertkit.io.reading import read_hub, read_table

    if source.hub is not None:
        table = read_hub(source.hub, source.split or "train", source.config, source.revision)
    else:
        table = read_table(Path(str(source.path)), source.format)
    columns = list(table.columns)
    chosen = texts or next((list(c) for c in TEXT_COLUMNS if all(x in columns for x in c)), None)
    if chosen is None or any(c not in columns for c in chosen):
        missing = [c for c in chosen or [] if c not in columns]
        raise DataError(
            f"{table.name}: {'no column ' + repr(missing[0]) if missing else 'no text columns found'}; "
            f"columns are {', '.join(columns)}",
            hint="name the text columns with data.texts (two or three, e.g. [sentence1, sentence2])",
        )
    if not 2 <= len(chosen) <= 3:
        raise DataError(
            f"data.texts: {len(chosen)} columns; give two (pairs) or three (triplets)",
            hint="e.g. [anchor, positive]",
        )
    if score is not None and len(chosen) == 3:
        raise DataError(
            f"data.score: {score!r} with three text columns; scores belong to pairs, triplets have none",
            hint="give two data.texts columns for scored pairs, or drop data.score for triplets",
        )
    score_column = score or next((c for c in SCORE_COLUMNS if c in columns and c not in chosen), None)
    if score is not None and score not in columns:
        raise DataError(
            f"{table.name}: no score column {score!r}; columns are {', '.join(columns)}",
            hint="fix data.score",
        )
    values = [[_text(v) for v in table.columns[c]] for c in chosen]
    scores = None
    if score_column is not None and len(chosen) == 2:
        scores = []
        for row, value in enumerate(table.columns[score_column]):
            try:
                scores.append(float(value))
            except (TypeError, ValueError):
                raise DataError(
                    f"{table.where(row)}: score {value!r} is not a number",
                    hint=f"fix the row, or name the score column with data.score (now {score_column!r})",
                ) from None
    out = Pairs(table.name, chosen, values, scores, score_column if scores is not None else None)
    if not len(out):
        raise DataError(f"{table.name}: no rows", hint="check the file")
    out.notes.append(
        f"{table.name}: {plural(len(out), 'row')} of {out.shape} ({', '.join(chosen)}"
        + (f"; score {score_column}" if scores is not None else "")
        + ")"
    )
    return out


def _text(value: Any) -> str:
    return "" if value is None else str(value)
