"""The NER evaluation report: scores per type, a type confusion table, and every wrong entity.

Files: report.md, errors.jsonl (the wrong, missed and spurious entities with their
sentence, at most `max_errors`) and metrics.json, written last.

Each gold entity is compared with the predicted entities of its sentence: the same
span and type is a hit; the same span with another type is a type confusion; an
overlapping span is a boundary error; no overlap at all is a miss. A predicted
entity that overlaps no gold entity is spurious.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bertkit.files import atomic_write_json, atomic_write_text
from bertkit.reports import cell, markdown_table
from bertkit.tasks.ner.schemes import Chunk
from bertkit.tasks.ner.tagging import chunks_of

BOUNDARY, MISSED, NONE = "(boundary)", "(missed)", "(none)"


def compare(
    gold: list[list[str]], predicted: list[list[str]]
) -> tuple[Counter[tuple[str, str]], list[dict[str, Any]]]:
    """The type confusion counts (gold type, predicted type or BOUNDARY/MISSED; NONE, type for
    spurious ones) and one error record per wrong entity: (sentence index, kind, gold, predicted)."""
    confusion: Counter[tuple[str, str]] = Counter()
    errors: list[dict[str, Any]] = []
    for index, (truth, guess) in enumerate(zip(gold, predicted, strict=True)):
        real, found = chunks_of(truth), chunks_of(guess)
        spans = {(c.start, c.end): c for c in found}
        for chunk in real:
            same = spans.get((chunk.start, chunk.end))
            overlapping = [c for c in found if c.start < chunk.end and chunk.start < c.end]
            if same is not None:
                confusion[(chunk.type, same.type)] += 1
                if same.type != chunk.type:
                    errors.append({"sentence": index, "kind": "type", "gold": chunk, "predicted": same})
            elif overlapping:
                confusion[(chunk.type, BOUNDARY)] += 1
                errors.append(
                    {"sentence": index, "kind": "boundary", "gold": chunk, "predicted": overlapping[0]}
                )
            else:
                confusion[(chunk.type, MISSED)] += 1
                errors.append({"sentence": index, "kind": "missed", "gold": chunk, "predicted": None})
        for chunk in found:
            if not any(c.start < chunk.end and chunk.start < c.end for c in real):
                confusion[(NONE, chunk.type)] += 1
                errors.append({"sentence": index, "kind": "spurious", "gold": None, "predicted": chunk})
    return confusion, errors


def write_ner_report(
    out_dir: Path,
    *,
    metrics: dict[str, float],
    per_type: dict[str, dict[str, float]],
    types: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    words: list[list[str]],
    where: list[str],
    title: str,
    data_description: str,
    max_errors: int = 1000,
) -> dict[str, Path]:
    """Write the report folder; returns the paths by name (metrics, report, errors)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    confusion, errors = compare(gold, predicted)
    records = _error_records(errors[: max(max_errors, 0)], words, where)
    kinds = Counter(e["kind"] for e in errors)
    md = _markdown(title, data_description, len(gold), metrics, per_type, confusion, types)
    summary = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common()) or "none"
    md += [
        "",
        "## Errors",
        "",
        f"{len(errors):,} wrong entities ({summary}); `errors.jsonl` lists {len(records):,}.",
    ]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    paths = {
        "errors": atomic_write_text(out_dir / "errors.jsonl", lines),
        "report": atomic_write_text(out_dir / "report.md", "\n".join(md) + "\n"),
    }
    paths["metrics"] = atomic_write_json(
        out_dir / "metrics.json",
        {
            "title": title,
            "task": "ner",
            "data": data_description,
            "n_examples": len(gold),
            "types": types,
            "metrics": metrics,
            "per_type": {k: v for k, v in per_type.items() if not k.endswith(" avg")},
            "errors": dict(kinds),
        },
    )
    return paths


def _markdown(
    title: str,
    data_description: str,
    sentences: int,
    metrics: dict[str, float],
    per_type: dict[str, dict[str, float]],
    confusion: Counter[tuple[str, str]],
    types: list[str],
) -> list[str]:
    """report.md up to its errors section: what was evaluated, the scores, the type confusion."""
    md = [f"# {cell(title)}", "", f"- Data: {cell(data_description)}", f"- Sentences: {sentences:,}"]
    md += ["- Scores: entity level, exact span and type (the CoNLL convention, computed by seqeval)", ""]
    headline = [
        {"metric": k, "value": metrics[k]} for k in ("f1", "precision", "recall", "accuracy") if k in metrics
    ]
    md += ["## Metrics", "", markdown_table(headline, ["metric", "value"]), "", "## Per entity type", ""]
    rows = [
        {
            "type": kind,
            "precision": r["precision"],
            "recall": r["recall"],
            "f1": r["f1-score"],
            "support": int(r["support"]),
        }
        for kind, r in per_type.items()
        if not kind.endswith(" avg")
    ]
    md.append(
        markdown_table(rows, ["type", "precision", "recall", "f1", "support"]) if rows else "No entities."
    )
    return [*md, "", "## Type confusion", "", _confusion_text(), "", _confusion_table(confusion, types)]


def _error_records(
    errors: list[dict[str, Any]], words: list[list[str]], where: list[str]
) -> list[dict[str, Any]]:
    """errors.jsonl's records: the kind of error, where, the gold and predicted entity, the sentence."""
    from bertkit.tasks.ner.data import join_words

    def entity(chunk: Chunk | None, sentence: int) -> dict[str, Any] | None:
        if chunk is None:
            return None
        text = join_words(words[sentence][chunk.start : chunk.end])
        return {"type": chunk.type, "text": text, "words": [chunk.start, chunk.end]}

    return [
        {
            "kind": e["kind"],
            "where": where[e["sentence"]],
            "gold": entity(e["gold"], e["sentence"]),
            "predicted": entity(e["predicted"], e["sentence"]),
            "sentence": join_words(words[e["sentence"]]),
        }
        for e in errors
    ]


def _confusion_text() -> str:
    return (
        "Rows are the types of the gold entities, columns what was predicted on exactly the same "
        f"words; `{BOUNDARY}`: a predicted entity overlaps with other boundaries, `{MISSED}`: nothing "
        f"predicted there; row `{NONE}`: predicted entities that overlap no gold one."
    )


def _confusion_table(confusion: Counter[tuple[str, str]], types: list[str]) -> str:
    corner = "gold \\ predicted"
    columns = [corner, *types, BOUNDARY, MISSED]
    rows = []
    for kind in [*types, NONE]:
        row: dict[str, Any] = {corner: kind}
        for column in columns[1:]:
            row[column] = (
                "" if kind == NONE and column in (BOUNDARY, MISSED) else confusion.get((kind, column), 0)
            )
        rows.append(row)
    return markdown_table(rows, columns)
