"""Split raw text into words with their character offsets, as BERT's basic tokenizer does.

An NER model tags words. Raw text (a `predict` argument, a JSONL line with entity
spans) is first cut into words: runs of letters and digits, each other visible
character on its own, and each CJK character on its own, since Chinese and
Japanese text has no spaces and BERT-family vocabularies hold single characters.
Entity boundaries inside a word split it there, so a span always starts and ends
on word edges (`Paris-based` with `Paris` marked gives `Paris`, `-`, `based`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# CJK ideographs (unified, extensions A-F, compatibility) and the kana of Japanese.
_CJK = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f"
)
_WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+|\S")
# Text in these scripts, with their full-width punctuation, runs on without spaces.
_SPACELESS = re.compile(rf"[{_CJK}\u3000-\u303f\uff00-\uffef]")

Span = tuple[int, int]


def split_words(text: str, cuts: Iterable[int] = ()) -> list[Span]:
    """The (start, end) character offsets of the words of `text`, end exclusive.

    Args:
        text: the text.
        cuts: offsets at which a word is split (entity boundaries).
    """
    spans = [match.span() for match in _WORD.finditer(text)]
    inside = sorted(set(cuts))
    if not inside:
        return spans
    out: list[Span] = []
    for start, end in spans:
        edges = [c for c in inside if start < c < end]
        for a, b in zip([start, *edges], [*edges, end], strict=True):
            out.append((a, b))
    return out


def join_words(words: list[str]) -> str:
    """Words as readable text: spaced, except around CJK characters and full-width punctuation."""
    out = ""
    for word in words:
        if out and not (_SPACELESS.fullmatch(out[-1]) and _SPACELESS.fullmatch(word[:1])):
            out += " "
        out += word
    return out
