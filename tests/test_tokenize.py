"""Tokenizing once: exact truncation counts, sentence pairs, lengths, and the on-disk cache."""

from __future__ import annotations

import pytest

from bertkit.tokenization import cache_root, tokenize_texts

WORDS = ["the", "film", "was", "good", "and", "the", "food", "was", "bad", "again", "and", "again"]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("BERTKIT_CACHE", str(cache))
    return cache


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)


def words(n: int) -> str:
    """`n` in-vocabulary words: exactly n tokens for the tiny WordPiece vocabulary."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def test_cache_root_follows_the_environment(isolated_cache):
    assert cache_root() == isolated_cache


def test_truncation_is_counted_exactly(tokenizer):
    # With [CLS] and [SEP], n words are n + 2 tokens: more than 8 only from 7 words on.
    sizes = [1, 6, 7, 12, 3, 20, 6]
    result = tokenize_texts(tokenizer, [words(n) for n in sizes], None, None, max_length=8)
    assert result.truncated == 3
    assert result.truncated_share == pytest.approx(3 / 7)
    assert result.dataset["length"] == [min(n + 2, 8) for n in sizes]
    assert [len(ids) for ids in result.dataset["input_ids"]] == result.dataset["length"]
    assert result.cached is False


def test_nothing_truncated_when_everything_fits(tokenizer):
    result = tokenize_texts(tokenizer, [words(6), words(1)], None, [0, 1], max_length=8)
    assert result.truncated == 0
    assert result.dataset["labels"] == [0, 1]


def test_pairs_mark_the_second_segment_with_token_type_1(tokenizer):
    result = tokenize_texts(
        tokenizer, ["the film was good", "bad"], ["i loved it", "the food was cold ."], [1, 0], max_length=32
    )
    first = result.dataset[0]
    # [CLS] the film was good [SEP] | i loved it [SEP]
    assert first["token_type_ids"] == [0] * 6 + [1] * 4
    assert first["length"] == 10
    assert first["input_ids"][0] == tokenizer.cls_token_id
    assert first["input_ids"].count(tokenizer.sep_token_id) == 2
    second = result.dataset[1]
    assert second["token_type_ids"] == [0] * 3 + [1] * 6
    assert result.dataset["labels"] == [1, 0]
    assert result.truncated == 0


def test_truncated_pairs_are_counted(tokenizer):
    result = tokenize_texts(tokenizer, [words(5), words(2)], [words(5), words(2)], None, max_length=10)
    assert result.truncated == 1  # 5 + 5 + 3 specials = 13 > 10; 2 + 2 + 3 = 7 fits
    assert result.dataset["length"] == [10, 7]


def test_multi_hot_and_float_targets_are_stored_as_labels(tokenizer):
    result = tokenize_texts(tokenizer, ["a", "b"], None, [[1.0, 0.0], [0.0, 1.0]], max_length=8)
    assert result.dataset["labels"] == [[1.0, 0.0], [0.0, 1.0]]
    result = tokenize_texts(tokenizer, ["a", "b"], None, [0.25, 3.5], max_length=8)
    assert result.dataset["labels"] == [0.25, 3.5]


def _load(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)


def test_second_call_with_a_fresh_tokenizer_hits_the_cache(tiny_model_dir, isolated_cache):
    texts = [words(n) for n in (3, 9, 5)]
    first = tokenize_texts(_load(tiny_model_dir), texts, None, [0, 1, 0], max_length=8)
    second = tokenize_texts(_load(tiny_model_dir), texts, None, [0, 1, 0], max_length=8)
    assert (first.cached, second.cached) == (False, True)
    assert second.truncated == first.truncated == 1
    assert second.dataset.to_dict() == first.dataset.to_dict()
    assert len(list((isolated_cache / "tokenized").iterdir())) == 1


def test_second_call_with_the_same_tokenizer_hits_the_cache(tokenizer):
    texts = [words(n) for n in (3, 9, 5)]
    first = tokenize_texts(tokenizer, texts, None, [0, 1, 0], max_length=8)
    second = tokenize_texts(tokenizer, texts, None, [0, 1, 0], max_length=8)
    assert (first.cached, second.cached) == (False, True)


def test_cache_misses_when_max_length_texts_pairs_or_targets_change(tiny_model_dir):
    texts = [words(n) for n in (3, 9, 5)]

    def run(texts=texts, pairs=None, targets=(0, 1, 0), max_length=8):
        return tokenize_texts(_load(tiny_model_dir), list(texts), pairs, list(targets), max_length=max_length)

    assert run().cached is False
    assert run().cached is True
    longer = run(max_length=16)
    assert longer.cached is False
    assert longer.truncated == 0
    changed = run(texts=[texts[0], texts[1], words(2)])
    assert changed.cached is False
    assert changed.dataset["length"][2] == 4
    assert run(pairs=["a", "b", "c"]).cached is False
    assert run(targets=(1, 1, 0)).cached is False
    assert run().cached is True


def test_use_cache_false_never_reads_or_writes(tokenizer, isolated_cache):
    result = tokenize_texts(tokenizer, ["a b"], None, None, max_length=8, use_cache=False)
    assert result.cached is False
    assert not (isolated_cache / "tokenized").exists()
