"""Question answering's parts: SQuAD scoring, windows and their labels, answers merged across windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertkit.tasks.qa.answers import rank_answers
from bertkit.tasks.qa.data import Questions, check_answers
from bertkit.tasks.qa.features import Features, make_features
from bertkit.tasks.qa.scoring import best_thresholds, normalize_answer, question_scores, squad_scores

# ----------------------------------------------------------------------------------- scoring


def test_answers_are_normalised_as_the_official_script_does():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    # Articles go after punctuation: "the" inside a word stays, a quoted one goes.
    assert normalize_answer("theatre 'the' end") == "theatre end"


def test_a_prediction_scores_its_best_reference():
    exact, f1 = question_scores("the big red house", ["red house", "a small house"])
    assert exact == 0.0
    # vs "red house": 2 shared of 3 predicted, 2 gold -> P 2/3, R 1 -> F1 0.8.
    assert f1 == pytest.approx(0.8)
    assert question_scores("Red House.", ["red house"]) == (1.0, 1.0)
    # No references: only the empty prediction is right.
    assert question_scores("", []) == (1.0, 1.0)
    assert question_scores("anything", []) == (0.0, 0.0)


def test_squad_2_scores_split_into_answered_and_unanswerable():
    references = {"a": ["paris"], "b": ["1932"], "c": [], "d": []}
    predictions = {"a": "Paris", "b": "in 1932", "c": "", "d": "london"}
    scores = squad_scores(predictions, references)
    assert scores["exact_match"] == pytest.approx(50.0)  # a, c
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert scores["has_answer_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert scores["no_answer_exact_match"] == pytest.approx(50.0)
    assert scores["has_answer_total"] == 2 and scores["no_answer_total"] == 2
    # SQuAD 1.1 data has no breakdown; a question without a prediction scores 0.
    plain = squad_scores({"a": "paris"}, {"a": ["paris"], "b": ["1932"]})
    assert plain == {"exact_match": 50.0, "f1": 50.0, "total": 2.0}


def test_the_best_threshold_is_the_official_scripts():
    # Answer when the margin is at most the threshold. Sorted by margin: b (-2, right), c (-1, no
    # answer, so answering it costs one), a (0.5, right), d (3, no answer).
    references = {"a": ["paris"], "b": ["1932"], "c": [], "d": []}
    answers = {"a": "paris", "b": "1932", "c": "rome", "d": "london"}
    margins = {"a": 0.5, "b": -2.0, "c": -1.0, "d": 3.0}
    best = best_thresholds(answers, margins, references)
    # None answered: 2 of 4; +b: 3; +c: 2; +a: 3 (not better than 3); so the threshold is b's margin.
    assert best["best_exact_match"] == pytest.approx(75.0)
    assert best["best_exact_match_threshold"] == -2.0
    assert best["best_f1_threshold"] == -2.0


# ----------------------------------------------------------------------------------- windows


def _questions(*rows: tuple[str, str, list[tuple[str, int]]]) -> Questions:
    out = Questions("test")
    for index, (question, context, answers) in enumerate(rows):
        out.add(str(index), question, context, answers, f"row {index}")
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_only_the_window_holding_the_whole_answer_is_labelled(tokenizer):
    words = " ".join(["the film was bad ."] * 8) + " the food was great ."
    questions = _questions(("what was good ?", words, [("great", words.index("great"))]))
    features = make_features(tokenizer, questions, max_length=24, doc_stride=6)
    assert len(features) > 2 and features.windowed == 1
    labelled = [w for w in range(len(features)) if features.starts[w]]
    assert labelled == [len(features) - 1]
    window = labelled[0]
    start, end = features.starts[window], features.ends[window]
    begin, finish = features.offsets[window][start][0], features.offsets[window][end][1]
    assert words[begin:finish] == "great"
    assert features.without_answer == len(features) - 1
    # Windows overlap by doc_stride context tokens and together cover the whole context.
    covered = {span for spans in features.offsets for span in spans if span is not None}
    assert min(s for s, _ in covered) == 0 and max(e for _, e in covered) == len(words)


def test_chinese_contexts_are_read_character_by_character(tokenizer):
    # The tiny vocabulary has no Chinese characters: each is its own [UNK] token, with its own offsets.
    context = "北京是中国的首都，上海是最大的城市。"
    questions = _questions(("what ?", context, [("上海", context.index("上海"))]))
    features = make_features(tokenizer, questions, max_length=32, doc_stride=8)
    start, end = features.starts[0], features.ends[0]
    assert context[features.offsets[0][start][0] : features.offsets[0][end][1]] == "上海"
    assert end == start + 1


def test_answers_merge_across_windows_and_keep_the_null_score_of_the_best_window():
    # Two windows of one question over "a b c d e": window 0 holds chars 0-5, window 1 chars 4-9.
    features = Features(
        inputs=[{"input_ids": [0] * 4}, {"input_ids": [0] * 4}],
        question=[0, 0],
        offsets=[[None, (0, 1), (2, 3), (4, 5)], [None, (4, 5), (6, 7), (8, 9)]],
    )
    starts = [np.array([1.0, 0.0, 2.0, 0.5]), np.array([-1.0, 3.0, 0.0, 0.0])]
    ends = [np.array([1.0, 0.0, 2.0, 0.0]), np.array([-1.0, 0.0, 1.5, 0.0])]
    (ranked,) = rank_answers(
        features, starts, ends, ["a b c d e"], 1, n_best=3, max_answer_length=2, unanswerable=True
    )
    best = ranked.candidates[0]
    # Window 1's "c d" (3 + 1.5) beats window 0's "b" (2 + 2); spans longer than 2 tokens are out.
    assert (best.text, best.start, best.end, best.logit) == ("c d", 4, 7, 4.5)
    assert ranked.candidates[1].text == "b"
    assert all(len(c.text.split()) <= 2 for c in ranked.candidates)
    assert ranked.null_logit == -2.0  # the lower of the windows' [CLS] scores (2.0 and -2.0)
    assert ranked.null_margin == -6.5
    assert ranked.answer(True, threshold=0.0) == "c d"
    assert ranked.answer(True, threshold=-7.0) == ""
    probabilities = [c.probability for c in ranked.candidates]
    assert probabilities == sorted(probabilities, reverse=True)


def test_bad_answers_are_moved_dropped_or_left_for_the_caller_to_refuse():
    context = "the bridge opened in 1932 and closed in 1990 ."
    questions = _questions(
        ("when?", context, [("1932", 21)]),  # right
        ("when?", context, [("1990", -1)]),  # a start of -1: the text is in the context
        ("who?", context, [("mary", 3)]),  # nowhere in the context
    )
    searched, problems, notes = check_answers(questions, "search")
    assert searched.ids == ["0", "1"]
    assert searched.answers[1] == [("1990", context.index("1990"))]
    assert [p.message for p in problems] == [
        "row 2: answer 'mary' is not at answer_start 3 (the context has ' bri' there, and the text is "
        "nowhere in the context)"
    ]
    assert len(notes) == 2
    dropped, problems, _ = check_answers(questions, "drop")
    assert dropped.ids == ["0"] and len(problems) == 2
    unchanged, problems, _ = check_answers(questions, "error")
    assert unchanged is questions and len(problems) == 2


def test_flat_files_and_squad_layout_records_read_the_same_questions(tmp_path):
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.qa.data import read_questions
    from bertkit.tasks.qa.recipe import QaData

    context = "the bridge opened in 1932 ."
    records = tmp_path / "records.jsonl"  # the layout of Hub datasets such as rajpurkar/squad
    rows = [
        {
            "id": "a",
            "question": "when?",
            "context": context,
            "answers": {"text": ["1932"], "answer_start": [21]},
        },
        {"id": "b", "question": "who?", "context": context, "answers": {"text": [], "answer_start": []}},
    ]
    records.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    flat = tmp_path / "flat.csv"
    flat.write_text(
        f"q,passage,answer,answer_start\nwhen?,{context},1932,21\nwho?,{context},,\n", encoding="utf-8"
    )
    from_records = read_questions(DataSource(path=str(records)), QaData())
    from_csv = read_questions(DataSource(path=str(flat)), QaData(question="q", context="passage"))
    assert from_records.answers == from_csv.answers == [[("1932", 21)], []]
    assert from_records.ids == ["a", "b"] and from_csv.ids == ["1", "2"]
    assert from_csv.origins[0] == f"{flat}:2"
    assert from_records.unanswerable == 1


def test_rows_repeating_a_question_id_become_one_question_with_several_references(tmp_path):
    from bertkit.errors import DataError
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.qa.data import read_questions
    from bertkit.tasks.qa.recipe import QaData

    context = "the bridge opened in 1932 ."
    flat = tmp_path / "flat.csv"
    flat.write_text(
        f"id,question,context,answer,answer_start\na,when?,{context},1932,21\na,when?,{context},in 1932,18\n",
        encoding="utf-8",
    )
    questions = read_questions(DataSource(path=str(flat)), QaData())
    assert questions.ids == ["a"] and questions.answers == [[("1932", 21), ("in 1932", 18)]]
    flat.write_text(flat.read_text() + f"a,who?,{context},1932,21\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"flat.csv:4: question id 'a' repeats .*flat.csv:2 with another question"
    ):
        read_questions(DataSource(path=str(flat)), QaData())


# ----------------------------------------------------------------------------------- loss


@pytest.mark.parametrize("group", [8, 1], ids=["one-group", "one-by-one"])
def test_the_window_loss_is_the_same_on_padded_batches_and_packed_rows(tiny_model_dir, group, monkeypatch):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

    from bertkit.tasks.qa.packed import use_window_loss
    from bertkit.training import packing

    monkeypatch.setattr(packing, "GROUP", group)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        tiny_model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    ).train()
    pairs = [("what was good ?", "the film was good and the food was bad ."), ("who ?", "i"),
             ("was the staff nice ?", "the staff was nice .")]  # fmt: skip
    features = []
    for (question, context), (start, end) in zip(pairs, [(8, 8), (0, 0), (6, 9)], strict=True):
        features.append(
            {**dict(tokenizer(question, context)), "start_positions": start, "end_positions": end}
        )
    use_window_loss(model)
    padded = DataCollatorWithPadding(tokenizer)(features)
    assert not padded["attention_mask"].all()  # the batch has padding, which must not count
    reference = model(**padded)
    reference.loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    packing.use_packed_attention(model)
    row = packing.PackedCollator(per_example=("start_positions", "end_positions"))(features)
    result = model(**row)
    result.loss.backward()
    torch.testing.assert_close(result.loss, reference.loss)
    real = padded["attention_mask"].bool()
    for name in ("start_logits", "end_logits"):
        torch.testing.assert_close(getattr(result, name)[real], getattr(reference, name)[real])
        assert (getattr(reference, name)[~real] == torch.finfo(torch.float32).min).all()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(parameter.grad, expected[name], atol=1e-6, rtol=1e-4, msg=name)


def test_without_padding_the_window_loss_is_transformers_loss(tiny_model_dir):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from bertkit.tasks.qa.packed import use_window_loss

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir).eval()
    batch = tokenizer(
        ["what was good ?"] * 2, ["the film was good .", "the food was bad ."], return_tensors="pt"
    )
    batch.update(start_positions=torch.tensor([8, 0]), end_positions=torch.tensor([8, 0]))
    with torch.no_grad():
        theirs = model(**batch)
        use_window_loss(model)
        ours = model(**batch)
    torch.testing.assert_close(ours.loss, theirs.loss)
    torch.testing.assert_close(ours.start_logits, theirs.start_logits)


def test_other_architectures_keep_transformers_loss():
    from transformers import RobertaConfig, RobertaForQuestionAnswering

    from bertkit.tasks.qa.packed import use_window_loss

    config = RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=20, max_position_embeddings=40)  # fmt: skip
    model = RobertaForQuestionAnswering(config)
    assert use_window_loss(model) is False
    assert "forward" not in vars(model)  # its own forward, untouched
