"""NER data: tag schemes, CoNLL/JSONL/span readers, words, windows and entity scores (no model training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.errors import DataError
from bertkit.recipe.base import DataSource
from bertkit.tasks.ner.data import join_words, looks_positioned, name_tags, read_sentences
from bertkit.tasks.ner.metrics import entity_scores, make_compute_metrics
from bertkit.tasks.ner.recipe import NerData, TagsSection
from bertkit.tasks.ner.report import compare
from bertkit.tasks.ner.schemes import Chunk, detect_scheme, read_chunks, to_iob2
from bertkit.tasks.ner.tagging import convert, decide_tags
from bertkit.tasks.ner.windows import align_labels, make_windows, plan_windows, word_scores
from bertkit.tasks.ner.words import split_words

# --------------------------------------------------------------------------- schemes


def write_scheme(chunks: list[Chunk], length: int, scheme: str) -> list[str]:
    """Tags of `chunks` in `scheme`, written independently of the reader under test."""
    tags = ["O"] * length
    previous_end, previous_type = -1, None
    inside = {"bmes": "M"}.get(scheme, "I")
    end_mark, single = {"bilou": ("L", "U")}.get(scheme, ("E", "S"))
    for chunk in chunks:
        size = chunk.end - chunk.start
        if scheme in ("bioes", "bilou", "bmes"):
            if size == 1:
                tags[chunk.start] = f"{single}-{chunk.type}"
                continue
            tags[chunk.start] = f"B-{chunk.type}"
            for i in range(chunk.start + 1, chunk.end - 1):
                tags[i] = f"{inside}-{chunk.type}"
            tags[chunk.end - 1] = f"{end_mark}-{chunk.type}"
        elif scheme == "iob1":
            adjacent = previous_end == chunk.start and previous_type == chunk.type
            tags[chunk.start] = f"{'B' if adjacent else 'I'}-{chunk.type}"
            for i in range(chunk.start + 1, chunk.end):
                tags[i] = f"I-{chunk.type}"
        else:
            tags[chunk.start] = f"B-{chunk.type}"
            for i in range(chunk.start + 1, chunk.end):
                tags[i] = f"I-{chunk.type}"
        previous_end, previous_type = chunk.end, chunk.type
    return tags


@st.composite
def chunked(draw):
    """A sentence length and non-overlapping entities in it."""
    length = draw(st.integers(1, 14))
    chunks, position = [], 0
    while position < length:
        position += draw(st.integers(0, 2))
        if position >= length:
            break
        size = draw(st.integers(1, min(4, length - position)))
        chunks.append(
            Chunk(draw(st.sampled_from(["PER", "LOC", "creative-work"])), position, position + size)
        )
        position += size
    return length, chunks


@settings(max_examples=150, deadline=None)
@given(chunked(), st.sampled_from(["iob2", "iob1", "bioes", "bilou", "bmes"]))
def test_every_scheme_reads_back_the_entities_it_wrote(case, scheme):
    length, chunks = case
    tags = write_scheme(chunks, length, scheme)
    read, errors = read_chunks(tags, scheme)
    assert errors == []
    assert read == chunks
    assert read_chunks(to_iob2(read, length), "iob2") == (chunks, [])


@pytest.mark.parametrize(
    ("sentences", "scheme"),
    [
        ([["B-PER", "I-PER", "O", "B-LOC"]], "iob2"),
        ([["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], "iob1"),
        ([["B-PER", "E-PER", "O", "S-LOC"]], "bioes"),
        ([["B-PER", "L-PER", "O", "U-LOC"]], "bilou"),
        ([["B-PER", "M-PER", "E-PER", "O", "S-LOC"]], "bmes"),
        ([["O", "O"]], "iob2"),
    ],
)
def test_the_scheme_is_detected(sentences, scheme):
    assert detect_scheme(sentences)[0] == scheme


def test_an_iob2_corpus_with_a_few_broken_tags_is_still_iob2():
    # Weibo NER: B- starts entities, and a handful of I- tags follow O by mistake.
    assert detect_scheme([["B-PER", "I-PER", "O"], ["O", "I-LOC"], ["B-LOC", "O"]])[0] == "iob2"


def test_prefixes_of_two_schemes_are_refused():
    with pytest.raises(ValueError, match="belong to no one scheme"):
        detect_scheme([["B-PER", "M-PER", "L-PER"]])


def test_an_i_after_o_in_iob2_is_an_error_with_its_position_and_repair_starts_an_entity():
    tags = ["O", "I-PER", "I-PER", "B-LOC"]
    chunks, errors = read_chunks(tags, "iob2")
    assert [(e.position, e.message) for e in errors] == [
        (1, "I-PER follows O: an entity must start with B-PER")
    ]
    repaired, none = read_chunks(tags, "iob2", repair=True)
    assert none == []
    assert repaired == [Chunk("PER", 1, 3), Chunk("LOC", 3, 4)]


def test_an_unfinished_bioes_entity_is_an_error():
    _, errors = read_chunks(["B-PER", "I-PER", "O", "S-LOC", "B-ORG"], "bioes")
    assert [e.position for e in errors] == [2, 4]


# --------------------------------------------------------------------------- reading


def test_conll_reads_tabs_spaces_whitespace_breaks_and_docstart(tmp_path):
    path = tmp_path / "data.conll"
    path.write_text(
        "-DOCSTART- -X- O O\n\nAngela\tB-PER\nMerkel\tI-PER\n\t\nvisited O\nNew B-LOC\n  \nYork\tB-LOC\n",
        encoding="utf-8",
    )
    sentences = read_sentences(DataSource(path=str(path)), NerData())
    assert sentences.tokens == [["Angela", "Merkel"], ["visited", "New"], ["York"]]
    assert sentences.tags == [["B-PER", "I-PER"], ["O", "B-LOC"], ["B-LOC"]]
    assert sentences.where(1, 1) == f"{path}:7"


def test_conll_with_crlf_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes("\ufeffParis\tB-LOC\r\n\r\nRome\tB-LOC\r\n".encode())
    sentences = read_sentences(DataSource(path=str(path)), NerData())
    assert sentences.tokens == [["Paris"], ["Rome"]]


def test_conll_columns_pick_the_fields(tmp_path):
    path = tmp_path / "four.conll"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n", encoding="utf-8")
    assert read_sentences(DataSource(path=str(path)), NerData()).tags == [["B-ORG", "O"]]
    chunks = read_sentences(DataSource(path=str(path)), NerData(conll_columns=(0, 2)))
    assert chunks.tags == [["B-NP", "B-VP"]]


def test_a_conll_line_without_a_tag_names_its_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Paris\tB-LOC\nRome\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conll:2: expected a token and its tag, found 1 field"):
        read_sentences(DataSource(path=str(path)), NerData())


def test_jsonl_token_lists_with_integer_tags_and_names(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"words": ["Paris", "is", "big"], "ner": [1, 0, 0]}) + "\n", encoding="utf-8")
    data = NerData(tokens="words", tags="ner")
    sentences = read_sentences(DataSource(path=str(path)), data)
    with pytest.raises(DataError, match="tags are integer ids and nothing names them"):
        name_tags(sentences, None)
    assert name_tags(sentences, ["O", "B-LOC", "I-LOC"]).tags == [["B-LOC", "O", "O"]]


def test_jsonl_with_a_different_number_of_tokens_and_tags(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.jsonl:1: 2 tokens but 1 tags"):
        read_sentences(DataSource(path=str(path)), NerData())


def test_entity_spans_become_words_and_iob2_tags(tmp_path):
    text = "Angela Merkel met Paris-based  reporters."
    record = {
        "text": text,
        "entities": [{"start": 0, "end": 14, "label": "PER"}, [18, 23, "LOC"]],  # a trailing space is trimmed
    }
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    sentences = read_sentences(DataSource(path=str(path)), NerData())
    assert sentences.tokens == [["Angela", "Merkel", "met", "Paris", "-", "based", "reporters", "."]]
    assert sentences.tags == [["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O", "O"]]
    assert sentences.offsets[0][3] == (18, 23)


@pytest.mark.parametrize(
    ("entities", "says"),
    [
        ([[0, 5, "PER"], [3, 9, "LOC"]], "overlap at characters 3-5"),
        ([[0, 99, "PER"]], "lies outside the text"),
        ([{"start": 0, "label": "PER"}], "is not {start, end, label}"),
        ([[5, 6, "PER"]], "covers only spaces"),
    ],
)
def test_bad_entity_spans_name_the_line(tmp_path, entities, says):
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"text": "Paris Rome", "entities": entities}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"spans.jsonl:1: .*{says}"):
        read_sentences(DataSource(path=str(path)), NerData())


def test_position_suffixes_are_stripped_and_recognised(tmp_path):
    path = tmp_path / "weibo.train"
    path.write_text("科0\tB-ORG.NAM\n技1\tI-ORG.NAM\n80\tO\n12\tO\n", encoding="utf-8")
    raw = read_sentences(DataSource(path=str(path)), NerData())
    assert looks_positioned(raw)
    stripped = read_sentences(DataSource(path=str(path)), NerData(position_suffix=True))
    assert stripped.tokens == [["科", "技", "8", "1"]]
    assert join_words(stripped.tokens[0]) == "科技 8 1"


def test_words_split_like_bert_and_at_entity_edges():
    text = "Merkel's visit to 北京, e-mail."
    assert [text[a:b] for a, b in split_words(text)] == [
        "Merkel", "'", "s", "visit", "to", "北", "京", ",", "e", "-", "mail", ".",
    ]  # fmt: skip
    joined = "Parisbased"
    assert [joined[a:b] for a, b in split_words(joined, [5])] == ["Paris", "based"]


# --------------------------------------------------------------------------- tags of a corpus


def _sentences(tmp_path, text: str, name: str = "train.conll"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_sentences(DataSource(path=str(path)), NerData())


def test_decide_tags_detects_and_converts_bioes(tmp_path):
    train = _sentences(tmp_path, "New\tB-LOC\nYork\tE-LOC\nis\tO\nbig\tS-MISC\n")
    spec = decide_tags(train, TagsSection())
    assert (spec.scheme, spec.types) == ("bioes", ("LOC", "MISC"))
    assert "detected" in spec.reason
    converted, errors, _ = convert(train, spec, repair=False)
    assert errors == []
    assert converted.tags == [["B-LOC", "I-LOC", "O", "B-MISC"]]


def test_tag_errors_name_the_file_and_line_and_repair_counts_them(tmp_path):
    train = _sentences(tmp_path, "Paris\tB-LOC\n\nthe\tO\nfilm\tI-MISC\n")
    spec = decide_tags(train, TagsSection(scheme="iob2"))
    _, errors, _ = convert(train, spec, repair=False)
    assert [e.message for e in errors] == [
        f"{tmp_path / 'train.conll'}:4: I-MISC follows O: an entity must start with B-MISC"
    ]
    assert "tags.repair: true" in errors[0].hint
    converted, errors, repaired = convert(train, spec, repair=True)
    assert (errors, repaired) == ([], 1)
    assert converted.tags[1] == ["O", "B-MISC"]


def test_an_entity_type_training_lacks_is_an_error(tmp_path):
    train = _sentences(tmp_path, "Paris\tB-LOC\n")
    test = _sentences(tmp_path, "Paris\tB-LOC\nAngela\tB-PER\n", "test.conll")
    spec = decide_tags(train, TagsSection())
    _, errors, _ = convert(test, spec, repair=False)
    assert [e.message for e in errors] == [
        f"{tmp_path / 'test.conll'}:2: entity type 'PER' is not in the training data"
    ]


def test_a_malformed_tag_names_its_line(tmp_path):
    train = _sentences(tmp_path, "Paris\tLOC\n")
    with pytest.raises(DataError, match=r"train.conll:1: tag 'LOC' is neither O nor PREFIX-TYPE"):
        decide_tags(train, TagsSection())


# --------------------------------------------------------------------------- windows


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=60), st.integers(4, 20), st.data())
def test_windows_cover_every_word_within_the_length(counts, body, data):
    stride = data.draw(st.integers(0, body // 2 - 1 if body >= 4 else 0))
    counts = np.array(counts)
    spans = plan_windows(counts, body, stride)
    assert spans[0][0] == 0
    assert spans[-1][1] == len(counts)
    for (start, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert start < next_start <= end  # progress, and no word left out between windows
        assert counts[next_start:end].sum() <= stride  # the overlap is at most `stride` sub-tokens
    for start, end in spans:
        assert counts[start:end].sum() <= body or end - start == 1  # only a single long word overflows


def test_a_long_sentence_is_read_in_windows_and_every_word_gets_the_central_prediction(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    words = ["the", "film"] * 20  # 40 words of one sub-token each
    windows = make_windows(tokenizer, [words, ["good"]], max_length=12, stride=4)
    assert windows.windowed == 1
    assert all(len(f["input_ids"]) <= 12 for f in windows.features)
    assert {w for ids in windows.word_ids[:-1] for w in ids if w is not None} == set(range(40))
    # Each window votes for its own index: a word takes the window where it is most central.
    outputs = [np.eye(len(windows))[[i] * len(f["input_ids"])] for i, f in enumerate(windows.features)]
    chosen = word_scores(windows, outputs)[0].argmax(axis=1)
    for word, window in enumerate(chosen):
        first, end = windows.span[window]
        assert first <= word < end
        margin = min(word - first if first else 40, end - 1 - word if end < 40 else 40)
        others = [
            min(word - a if a else 40, b - 1 - word if b < 40 else 40)
            for s, (a, b) in zip(windows.sentence, windows.span, strict=True)
            if s == 0 and a <= word < b
        ]
        assert margin == max(others)


def test_labels_go_on_the_first_sub_token_or_all_of_them(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    windows = make_windows(tokenizer, [["films", "good"]], max_length=16, stride=2)  # films = film ##s
    label2id = {"O": 0, "B-X": 1, "I-X": 2}
    tags = [["B-X", "O"]]
    assert align_labels(windows, tags, label2id, "first") == [[-100, 1, -100, 0, -100]]
    assert align_labels(windows, tags, label2id, "all") == [[-100, 1, 2, 0, -100]]


# --------------------------------------------------------------------------- scores


def test_entity_scores_are_seqevals():
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    scores = entity_scores(gold, predicted)
    assert scores["f1"] == pytest.approx(f1_score(gold, predicted))
    assert scores["precision"] == pytest.approx(precision_score(gold, predicted)) == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(recall_score(gold, predicted)) == pytest.approx(2 / 3)
    assert scores["f1/LOC"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(4 / 6)


def test_training_metrics_merge_windows_back_into_sentences(tiny_model_dir):
    from transformers import AutoTokenizer, EvalPrediction

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    words = ["the", "film"] * 10
    gold = [["B-X" if w == "film" else "O" for w in words]]
    windows = make_windows(tokenizer, [words], max_length=8, stride=2)
    labels = ["O", "B-X", "I-X"]
    ids = align_labels(windows, gold, {t: i for i, t in enumerate(labels)}, "first")
    width = max(map(len, ids))
    # Predictions that are exactly the labels (padding -100 like the Trainer's), and the same shifted.
    exact = np.array([row + [-100] * (width - len(row)) for row in ids])
    perfect = make_compute_metrics(windows, gold, labels)(
        EvalPrediction(np.where(exact < 0, 0, exact), exact)
    )
    assert perfect["f1"] == 1.0
    assert len(windows) > 1


def test_compare_sorts_errors_into_type_boundary_missed_and_spurious():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "O"]]
    predicted = [["B-PER", "O", "O", "B-ORG", "O", "O", "B-LOC"]]
    confusion, errors = compare(gold, predicted)
    assert sorted(e["kind"] for e in errors) == ["boundary", "missed", "spurious", "type"]
    assert confusion[("LOC", "ORG")] == 1
    assert confusion[("PER", "(boundary)")] == 1
    assert confusion[("ORG", "(missed)")] == 1
    assert confusion[("(none)", "LOC")] == 1
