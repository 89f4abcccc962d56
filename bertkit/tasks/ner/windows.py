"""Sentences of words into model inputs: sub-tokens, overlapping windows, aligned labels.

A sentence longer than `max_length` sub-tokens is never cut: it is read as windows of
whole words that overlap by about `stride` sub-tokens. Each word is then predicted
from the window where it sits furthest from an edge, so it is read with context on
both sides, and predictions are merged back into one tag per word of the sentence.

Labels sit on the first sub-token of each word (the others are ignored by the loss),
or, with `align: all`, on every sub-token, where a word's continuation of a `B-X`
becomes `I-X`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertkit.errors import ModelError

IGNORE = -100  # the label id the loss skips
_ENCODE_BATCH = 1000


@dataclass
class Windows:
    """Model inputs cut from sentences, and where each came from.

    Attributes:
        features: per window, what the tokenizer returned (input_ids, attention_mask, ...).
        sentence: per window, the index of its sentence.
        span: per window, the (first word, end word) of its sentence it covers.
        word_ids: per window, each position's word index in the sentence (None: special token).
        words: how many words each sentence has.
        lengths: each sentence's length in sub-tokens, special tokens included.
        windowed: how many sentences needed more than one window.
        dropped_words: words the tokenizer turned into no sub-token at all (they are tagged O).
        cut_words: words longer than a whole window (their tail is not read).
    """

    features: list[dict[str, list[int]]] = field(default_factory=list)
    sentence: list[int] = field(default_factory=list)
    span: list[tuple[int, int]] = field(default_factory=list)
    word_ids: list[list[int | None]] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    windowed: int = 0
    dropped_words: int = 0
    cut_words: int = 0

    def __len__(self) -> int:
        return len(self.features)


def make_windows(tokenizer: Any, sentences: list[list[str]], max_length: int, stride: int) -> Windows:
    """Tokenize sentences of words into windows of at most `max_length` sub-tokens.

    Raises:
        ModelError: a tokenizer that cannot say which word a sub-token belongs to.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"{type(tokenizer).__name__} is a slow tokenizer; NER needs to map sub-tokens to words",
            hint="use a model whose folder has a tokenizer.json (a fast tokenizer)",
        )
    out = Windows(words=[len(s) for s in sentences])
    for start in range(0, len(sentences), _ENCODE_BATCH):
        batch = sentences[start : start + _ENCODE_BATCH]
        encoded = tokenizer(batch, is_split_into_words=True, truncation=False, verbose=False)
        for i, words in enumerate(batch):
            ids = encoded["input_ids"][i]
            word_ids = encoded.word_ids(i)
            counts = np.bincount([w for w in word_ids if w is not None], minlength=len(words))
            out.dropped_words += int((counts == 0).sum())
            out.lengths.append(len(ids))
            if len(ids) <= max_length:
                _add(out, start + i, (0, len(words)), {k: v[i] for k, v in encoded.items()}, word_ids, 0)
            else:
                specials = len(ids) - int(counts.sum())
                spans = plan_windows(counts, max_length - specials, stride)
                out.cut_words += int((counts > max_length - specials).sum())
                out.windowed += 1
                for first, end in spans:
                    part = tokenizer(
                        [words[first:end]],
                        is_split_into_words=True,
                        truncation=True,
                        max_length=max_length,
                    )
                    _add(
                        out,
                        start + i,
                        (first, end),
                        {k: v[0] for k, v in part.items()},
                        part.word_ids(0),
                        first,
                    )
    return out


def _add(
    out: Windows,
    sentence: int,
    span: tuple[int, int],
    features: dict[str, list[int]],
    word_ids: list[int | None],
    offset: int,
) -> None:
    out.features.append(features)
    out.sentence.append(sentence)
    out.span.append(span)
    out.word_ids.append([None if w is None else w + offset for w in word_ids])


def plan_windows(counts: Any, body: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges (first, end) of windows of at most `body` sub-tokens overlapping by up to `stride`.

    A word longer than `body` gets a window of its own (the tokenizer cuts its tail).
    """
    n = len(counts)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end, total = start, 0
        while end < n and total + counts[end] <= body:
            total += counts[end]
            end += 1
        end = max(end, start + 1)
        spans.append((start, end))
        if end >= n:
            return spans
        back, shared = end, 0
        while back - 1 > start and shared + counts[back - 1] <= stride:
            back -= 1
            shared += counts[back]
        # No overlap when the next word would not fit beside it (it may fill a window alone).
        start = max(back, start + 1) if shared + counts[end] <= body else end


def align_labels(
    windows: Windows, tags: list[list[str]], label2id: dict[str, int], align: str
) -> list[list[int]]:
    """Each window's label ids: a word's tag on its first sub-token (or all, with `align: all`)."""
    labels = []
    for sentence, word_ids in zip(windows.sentence, windows.word_ids, strict=True):
        row, previous = [], None
        for word in word_ids:
            if word is None:
                row.append(IGNORE)
            elif word != previous:
                row.append(label2id[tags[sentence][word]])
            elif align == "all":
                tag = tags[sentence][word]
                row.append(label2id["I-" + tag[2:] if tag.startswith("B-") else tag])
            else:
                row.append(IGNORE)
            previous = word
        labels.append(row)
    return labels


def word_scores(windows: Windows, outputs: list[np.ndarray], aggregation: str = "first") -> list[np.ndarray]:
    """Per sentence, one row of label probabilities per word, merged from its windows.

    Args:
        windows: the windows the outputs are for.
        outputs: per window, label probabilities of each position (positions x labels).
        aggregation: how a word's sub-tokens make its scores: `first` (its first
            sub-token's), `average` (their mean), or `max` (the sub-token most sure of its label).

    Returns:
        Per sentence, an array (words x labels); a word without sub-tokens has a row of NaN.
    """
    labels = outputs[0].shape[-1] if outputs else 0
    merged = [np.full((n, labels), np.nan, dtype=np.float32) for n in windows.words]
    best = [np.full(n, -1.0) for n in windows.words]  # how central each word's chosen window is
    for index, probabilities in enumerate(outputs):
        sentence = windows.sentence[index]
        first, end = windows.span[index]
        total = windows.words[sentence]
        rows: dict[int, list[int]] = {}
        for position, word in enumerate(windows.word_ids[index]):
            if word is not None:
                rows.setdefault(word, []).append(position)
        for word, positions in rows.items():
            # Distance to the nearest window edge that is not the sentence's own edge.
            left = word - first if first > 0 else total
            right = end - 1 - word if end < total else total
            centrality = min(left, right)
            if centrality <= best[sentence][word]:
                continue
            best[sentence][word] = centrality
            merged[sentence][word] = _aggregate(probabilities[positions], aggregation)
    return merged


def _aggregate(rows: np.ndarray, how: str) -> np.ndarray:
    if how == "first":
        return rows[0]
    if how == "average":
        return rows.mean(axis=0)
    return rows[int(rows.max(axis=1).argmax())]
