"""Derive the embedding quickstart's triplets from the bundled question-answering set.

Each answerable question of recipes/data/qa/<split>.json becomes (query, positive,
negative): the sentence of its paragraph that holds the answer, and the other
sentence of that paragraph sharing the most words with the question (a hard
negative). This is answer-sentence retrieval, as in ReQA: the model learns to find
the sentence that answers a question among sentences about the same subject.
Deterministic; rerun after editing the QA set:

    python scripts/make_embedding_sample.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "recipes" / "data"
# A sentence ends at . ! or ? followed by a space and a capital letter or a digit.
BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“])")


def sentences(context: str) -> list[tuple[int, str]]:
    """(start offset, sentence) for each sentence of a paragraph."""
    out, start = [], 0
    for match in BOUNDARY.finditer(context):
        out.append((start, context[start : match.start()]))
        start = match.end()
    out.append((start, context[start:]))
    return out


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def triplets(split: str) -> list[dict[str, str]]:
    rows = []
    for article in json.loads((DATA / "qa" / f"{split}.json").read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            parts = sentences(paragraph["context"])
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                answer = qa["answers"][0]
                start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
                holding = [s for offset, s in parts if offset <= start and end <= offset + len(s)]
                others = [s for _, s in parts if s not in holding]
                if len(holding) != 1 or not others:  # an answer across a sentence boundary is left out
                    continue
                asked = words(qa["question"])
                negative = max(others, key=lambda s: len(asked & words(s)))  # the first of equals
                rows.append({"query": qa["question"], "positive": holding[0], "negative": negative})
    return rows


def main() -> None:
    out = DATA / "embedding"
    out.mkdir(exist_ok=True)
    for split in ("train", "validation", "test"):
        rows = triplets(split)
        with (out / f"{split}.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        sentences_ = {r[k] for r in rows for k in ("positive", "negative")}
        print(f"{split}: {len(rows)} triplets, {len(sentences_)} distinct sentences")


if __name__ == "__main__":
    main()
