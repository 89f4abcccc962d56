"""SQuAD scores: exact match and token F1 with the official normalisation, and SQuAD 2.0's extras.

The rules are those of the official SQuAD v1.1 and v2.0 evaluation scripts, written
here because the `evaluate` library fetches its copy from the Hub: an answer is
lowercased, stripped of punctuation and of the articles a/an/the, and its whitespace
collapsed; a prediction scores the best match over the reference answers; a
question without an answer is matched by the empty prediction only. Scores are
percentages, as SQuAD reports them. tests/test_qa_units.py checks the rules on
hand-computed cases; bench/qa.py compares whole evaluations with the official
scripts' numbers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (the official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """F1 over the normalised tokens; an empty side scores 1 only against another empty side."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction: str, references: list[str]) -> tuple[float, float]:
    """(exact, f1) of one prediction: the best over its references ([] means no answer).

    References that normalise to nothing (an answer "the") are left out, as the SQuAD 2.0
    script does; without any, only the empty prediction is right.
    """
    references = [r for r in references if normalize_answer(r)] or [""]
    return max(exact(prediction, r) for r in references), max(token_f1(prediction, r) for r in references)


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, list[str]]) -> dict[str, float]:
    """Exact match and F1 over every question (percentages), with HasAns/NoAns parts when some have no answer.

    A question without a prediction scores 0, as in the official scripts.
    """
    per = {qid: question_scores(predictions.get(qid, ""), refs) if qid in predictions else (0.0, 0.0)
           for qid, refs in references.items()}  # fmt: skip
    out = _mean(per, list(references), "")
    has = [qid for qid, refs in references.items() if refs]
    if len(has) < len(references):
        out.update(_mean(per, has, "has_answer_"))
        out.update(_mean(per, [qid for qid in references if qid not in set(has)], "no_answer_"))
    return out


def _mean(per: dict[str, tuple[float, float]], ids: list[str], prefix: str) -> dict[str, float]:
    if not ids:
        return {}
    return {
        f"{prefix}exact_match": 100.0 * sum(per[q][0] for q in ids) / len(ids),
        f"{prefix}f1": 100.0 * sum(per[q][1] for q in ids) / len(ids),
        f"{prefix}total": float(len(ids)),
    }


def best_thresholds(
    answers: Mapping[str, str], null_margins: Mapping[str, float], references: Mapping[str, list[str]]
) -> dict[str, float]:
    """The no-answer thresholds that maximise exact match and F1, as the official SQuAD 2.0 script finds them.

    Args:
        answers: each question's best non-empty answer.
        null_margins: how much more the model scores "no answer" than that answer; a
            question is left unanswered when its margin is above the threshold.
        references: the reference answers ([] for unanswerable questions).

    Returns:
        best_exact_match, best_exact_match_threshold, best_f1, best_f1_threshold (scores
        as percentages).
    """
    per = {qid: question_scores(answers.get(qid, ""), refs) for qid, refs in references.items()}
    order = sorted(references, key=lambda q: null_margins.get(q, 0.0))
    total = max(len(references), 1)
    out = {}
    for name, index in (("exact_match", 0), ("f1", 1)):
        # Every question unanswered first; then, in order of margin, each one answered.
        current = best = float(sum(1 for refs in references.values() if not refs))
        threshold = 0.0
        for qid in order:
            if references[qid]:
                current += per[qid][index]
            elif answers.get(qid):
                current -= 1
            if current > best:
                best, threshold = current, null_margins.get(qid, 0.0)
        out[f"best_{name}"] = 100.0 * best / total
        out[f"best_{name}_threshold"] = threshold
    return out
