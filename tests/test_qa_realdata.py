"""Question answering on the shared public data: SQuAD 2.0, XQuAD English and Chinese.

Run with `bash scripts/test.sh -m realdata`; skipped when ../shared/data is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bertkit.recipe.base import DataSource
from bertkit.tasks.qa.data import check_answers, read_questions
from bertkit.tasks.qa.features import make_features
from bertkit.tasks.qa.recipe import QaData

pytestmark = pytest.mark.realdata

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
XQUAD = DATA / "xquad"
SQUAD_V2 = DATA / "squad_v2" / "dev.json"


def _read(path: Path):
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared public data is absent)")
    return read_questions(DataSource(path=str(path)), QaData())


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from bertkit.models import packaged_model_dir

    folder = packaged_model_dir("minilm")
    if folder is None:
        pytest.skip("MiniLM weights not installed")
    return AutoTokenizer.from_pretrained(folder)


def test_squad_2_dev_reads_its_unanswerable_questions():
    questions = _read(SQUAD_V2)
    assert len(questions) == 1407
    assert questions.unanswerable == 702  # is_impossible, as data/README.md counts them
    checked, problems, _ = check_answers(questions, "error")
    assert problems == [] and checked is questions


@pytest.mark.parametrize("language", ["en", "zh"])
def test_xquad_answers_map_back_to_their_text_through_the_windows(minilm_tokenizer, language):
    """Every labelled window's answer tokens give back the answer's characters.

    Chinese is read a character at a time (MiniLM's English vocabulary makes most
    characters [UNK], but each keeps its own offsets): the answer span is exact. In
    English a labelled span can only be wider than the answer where the answer ends
    inside a word (e.g. "1950s" answered "1950"); such answers are rare.
    """
    questions = _read(XQUAD / f"xquad.{language}.json")
    assert len(questions) == 1190
    features = make_features(minilm_tokenizer, questions, max_length=384, doc_stride=128)
    exact = labelled = 0
    for window, owner in enumerate(features.question):
        start, end = features.starts[window], features.ends[window]
        if not start:
            continue
        labelled += 1
        text, first = questions.answers[owner][0]
        spans = features.offsets[window]
        found = questions.contexts[owner][spans[start][0] : spans[end][1]]
        assert text in found
        exact += found == text
    assert labelled >= len(questions)  # every question's answer is in at least one window
    assert exact / labelled > (0.999 if language == "zh" else 0.97)
