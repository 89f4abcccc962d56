"""From start and end scores of every window to each question's answers, as the reference recipe does.

In each window the `n_best` highest start and end positions are paired; a pair is an
answer when both lie in the context, the end does not come before the start, and it
is at most `max_answer_length` tokens long; its score is the sum of the two logits.
The candidates of all windows of a question are merged and ranked, and their scores
turned into probabilities (a softmax over the kept candidates and, for a model that
may leave a question unanswered, the "no answer" score too). The "no answer" score
of a question is the lowest one of its windows (a window that holds the answer
scores no-answer low), as in Transformers' run_qa.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bertkit.tasks.qa.features import Features


@dataclass(frozen=True)
class Candidate:
    """One possible answer: its text, where it is in the context, its logit sum and probability."""

    text: str
    start: int
    end: int
    logit: float
    probability: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "start": self.start, "end": self.end, "score": round(self.probability, 4)}


@dataclass(frozen=True)
class Ranked:
    """A question's candidates, best first, and the score of answering nothing (its null score)."""

    candidates: list[Candidate]
    null_logit: float

    @property
    def null_margin(self) -> float:
        """How much more the model scores "no answer" than its best answer (inf without one)."""
        return self.null_logit - self.candidates[0].logit if self.candidates else float("inf")

    def answer(self, unanswerable: bool, threshold: float) -> str:
        """The answer text; empty when the question may be unanswered and no-answer wins by `threshold`."""
        if not self.candidates or (unanswerable and self.null_margin > threshold):
            return ""
        return self.candidates[0].text


def rank_answers(
    features: Features,
    starts: list[np.ndarray],
    ends: list[np.ndarray],
    contexts: list[str],
    questions: int,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    unanswerable: bool = False,
) -> list[Ranked]:
    """Each question's ranked candidates from its windows' start and end logits (one array per window)."""
    found: list[dict[tuple[int, int], float]] = [{} for _ in range(questions)]
    null = np.full(questions, np.inf)
    for window, owner in enumerate(features.question):
        start, end, spans = starts[window], ends[window], features.offsets[window]
        null[owner] = min(null[owner], float(start[0] + end[0]))
        limit = len(spans)
        best_starts = np.argsort(start[:limit])[::-1][:n_best]
        best_ends = np.argsort(end[:limit])[::-1][:n_best]
        for s in best_starts:
            if spans[s] is None:
                continue
            for e in best_ends:
                if spans[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                span = (spans[s][0], spans[e][1])
                logit = float(start[s] + end[e])
                if logit > found[owner].get(span, -np.inf):
                    found[owner][span] = logit
    ranked = []
    for owner, spans in enumerate(found):
        best = sorted(spans.items(), key=lambda item: -item[1])[:n_best]
        logits = np.array(
            [logit for _, logit in best] + ([null[owner]] if unanswerable else []), dtype=np.float64
        )
        probabilities = (
            np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum() if len(logits) else logits
        )
        candidates = [
            Candidate(contexts[owner][a:b], a, b, logit, float(p))
            for ((a, b), logit), p in zip(best, probabilities, strict=False)
        ]
        ranked.append(Ranked(candidates, float(null[owner])))
    return ranked
