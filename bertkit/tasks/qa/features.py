"""Questions and contexts into model inputs: windows over long contexts, answer positions, offsets.

Each question is encoded with its context, the question first; a context longer
than the window is read as several windows that share `doc_stride` tokens, as the
reference recipe (Transformers' run_qa.py) does. For training, a window holding the
whole answer is labelled with the answer's first and last token; any other window,
and every window of an unanswerable question, points at the first token ([CLS]).
Each window keeps the character offsets of its context tokens, so an answer found
in any window maps back to the context's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bertkit.errors import ModelError
from bertkit.tasks.qa.data import Questions

_ENCODE_BATCH = 512


@dataclass
class Features:
    """Windows of question-context pairs, and what maps them back to their questions.

    Attributes:
        inputs: per window, what the tokenizer returned (input_ids, attention_mask, ...).
        question: per window, the index of its question.
        offsets: per window, the (start, end) characters of each context token in the
            context, None for the question's tokens and special tokens.
        starts, ends: per window, the answer's first and last token (0: no answer here).
        windowed: questions whose context needed more than one window.
        without_answer: windows of answerable questions that do not hold the answer.
        clipped_questions: questions cut to half the window so the context fits.
    """

    inputs: list[dict[str, list[int]]] = field(default_factory=list)
    question: list[int] = field(default_factory=list)
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    windowed: int = 0
    without_answer: int = 0
    clipped_questions: int = 0

    def __len__(self) -> int:
        return len(self.inputs)


def make_features(tokenizer: Any, questions: Questions, max_length: int, doc_stride: int) -> Features:
    """Encode every question with its context in windows, with answer positions from its first answer.

    Raises:
        ModelError: a tokenizer that cannot give character offsets (a slow tokenizer).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"{type(tokenizer).__name__} is a slow tokenizer; question answering needs character offsets",
            hint="use a model whose folder has a tokenizer.json (a fast tokenizer)",
        )
    if tokenizer.padding_side != "right":
        raise ModelError(
            f"{type(tokenizer).__name__} pads on the left; question answering reads answer positions "
            "from the start of each window",
            hint="use a tokenizer that pads on the right (BERT-family tokenizers do)",
        )
    out = Features()
    for begin in range(0, len(questions), _ENCODE_BATCH):
        rows = range(begin, min(begin + _ENCODE_BATCH, len(questions)))
        asked = [
            _clip_question(tokenizer, questions.questions[i].lstrip(), max_length // 2, out) for i in rows
        ]
        contexts = [questions.contexts[i] for i in rows]
        encoded = tokenizer(
            asked,
            contexts,
            truncation="only_second",  # the question first, as in the reference recipe
            max_length=max_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            verbose=False,
        )
        owners = encoded.pop("overflow_to_sample_mapping")
        offsets = encoded.pop("offset_mapping")
        seen: dict[int, int] = {}
        for window, owner in enumerate(owners):
            index = begin + owner
            seen[index] = seen.get(index, 0) + 1
            sequence = encoded.sequence_ids(window)
            spans = [tuple(span) if sequence[k] == 1 else None for k, span in enumerate(offsets[window])]
            start, end = _answer_tokens(spans, questions.answers[index])
            out.inputs.append({key: values[window] for key, values in encoded.items()})
            out.question.append(index)
            out.offsets.append(spans)
            out.starts.append(start)
            out.ends.append(end)
            out.without_answer += bool(questions.answers[index]) and start == 0
        out.windowed += sum(count > 1 for count in seen.values())
    return out


def _clip_question(tokenizer: Any, question: str, limit: int, out: Features) -> str:
    """The question, cut to `limit` tokens when longer (else no context would fit beside it)."""
    encoded = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    if len(encoded["input_ids"]) <= limit:
        return question
    out.clipped_questions += 1
    return question[: encoded["offset_mapping"][limit - 1][1]]


def _answer_tokens(spans: list[tuple[int, int] | None], answers: list[tuple[str, int]]) -> tuple[int, int]:
    """The first and last token of the first answer in this window, or (0, 0) when it is not all here."""
    if not answers:
        return 0, 0
    text, first = answers[0]
    last = first + len(text)
    tokens = [k for k, span in enumerate(spans) if span is not None]
    if not tokens or spans[tokens[0]][0] > first or spans[tokens[-1]][1] < last:
        return 0, 0
    start = next(k for k in tokens if spans[k][1] > first)
    end = next(k for k in reversed(tokens) if spans[k][0] < last)
    return start, end
