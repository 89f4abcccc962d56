"""Masked-LM pretraining: sequences, masking, scratch models, evaluation, fill-mask, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.recipe import load_recipe
from bertkit.recipe.base import DataSource
from bertkit.tasks.mlm.recipe import MlmData as DataSection
from bertkit.tasks.mlm.recipe import MlmSection


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _corpus(tmp_path: Path, lines: list[str], name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sequences(tokenizer, path: Path, max_length: int, **mlm: object):
    from bertkit.tasks.mlm.corpus import build_sequences, load_corpus

    settings = MlmSection(**mlm)
    corpus = load_corpus(DataSource(path=str(path)), DataSection(), settings)
    return build_sequences(corpus, tokenizer, settings, max_length, seed=0)


# --------------------------------------------------------------------------- sequences


def test_packing_uses_every_token_and_keeps_the_last_short_block(tmp_path, tokenizer):
    lines = ["the film was good ."] * 7 + ["the food was very bad and the service was slow ."]
    built, stats = _sequences(tokenizer, _corpus(tmp_path, lines), max_length=16)
    content = sum(len(tokenizer.tokenize(line)) for line in lines)
    assert stats.corpus_tokens == content
    assert stats.used_tokens == content and stats.dropped_tokens == 0
    lengths = built["length"]
    assert all(n == 16 for n in lengths[:-1]) and 2 < lengths[-1] < 16  # only the tail is short
    assert stats.sequences == len(built)
    first = built["input_ids"][0]
    assert first[0] == tokenizer.cls_token_id and first[-1] == tokenizer.sep_token_id
    # Documents are joined with [SEP]: the first block holds a boundary between documents.
    assert tokenizer.sep_token_id in first[1:-1]


def test_line_by_line_counts_what_truncation_cuts(tmp_path, tokenizer):
    long_line = " ".join(["good"] * 30)
    built, stats = _sequences(
        tokenizer,
        _corpus(tmp_path, ["the film was good .", long_line]),
        max_length=12,
        sequences="line_by_line",
    )
    assert stats.sequences == 2
    assert stats.truncated_documents == 1
    assert stats.dropped_tokens == 30 - 10
    assert max(built["length"]) == 12


def test_paragraph_documents_split_on_blank_lines(tmp_path, tokenizer):
    from bertkit.tasks.mlm.corpus import load_corpus

    path = tmp_path / "paragraphs.txt"
    path.write_text("the film was good .\nthe food was bad .\n\nthe staff were rude .\n", encoding="utf-8")
    paragraphs = load_corpus(DataSource(path=str(path)), DataSection(), MlmSection(documents="paragraphs"))
    lines = load_corpus(DataSource(path=str(path)), DataSection(), MlmSection())
    assert len(paragraphs) == 2 and len(lines) == 3


def test_next_sentence_pairs_have_both_labels_and_segment_ids(tmp_path, tokenizer):
    lines = [f"the film was {w} ." for w in ("good", "bad", "great", "dull", "fun", "slow")] * 5
    built, _ = _sequences(tokenizer, _corpus(tmp_path, lines), max_length=32, objective="mlm+nsp")
    labels = set(built["next_sentence_label"])
    assert labels == {0, 1}
    row = built[0]
    assert 0 in row["token_type_ids"] and 1 in row["token_type_ids"]
    assert row["input_ids"].count(tokenizer.sep_token_id) == 2


# --------------------------------------------------------------------------- whole-word masking


def test_word_boundaries_join_wordpiece_continuations_and_split_chinese_characters():
    from bertkit.tasks.mlm.corpus import _boundary_offsets

    # [CLS] play ##ing 我 爱 [SEP]: "play ##ing" is one word; each Chinese character is one.
    offsets = _boundary_offsets([None, 0, 0, 1, 2, None])
    starts = [start for start, _ in offsets]
    ends = [end for _, end in offsets]
    assert starts[2] == ends[1]  # continuation: no gap
    assert starts[3] > ends[2] and starts[4] > ends[3]  # new words: a gap each


def test_whole_word_masking_masks_every_piece_of_a_word(tokenizer):
    from bertkit.tasks.mlm.corpus import _boundary_offsets
    from bertkit.tasks.mlm.masking import MlmCollator

    ids = tokenizer.convert_tokens_to_ids(["[CLS]", "love", "##s", "film", "##s", "[SEP]"])
    feature = {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "offset_mapping": _boundary_offsets([None, 0, 0, 1, 1, None]),
    }
    collator = MlmCollator(tokenizer, probability=0.5, whole_word=True)
    for seed in range(20):
        masked = collator.mask([dict(feature)], seed=seed)["labels"][0].tolist()
        picked = [label != -100 for label in masked]
        assert picked[1] == picked[2] and picked[3] == picked[4]  # pieces go together
        assert not picked[0] and not picked[5]  # special tokens never


def test_evaluation_masks_are_the_same_every_time(tmp_path, tokenizer):
    from bertkit.tasks.mlm.masking import MlmCollator, premask

    built, _ = _sequences(
        tokenizer, _corpus(tmp_path, ["the film was good and the food was great ."] * 6), 16
    )
    collator = MlmCollator(tokenizer, probability=0.15, whole_word=False)
    first, second = premask(built, collator), premask(built, collator)
    assert first["labels"] == second["labels"] and first["input_ids"] == second["input_ids"]
    assert any(label != -100 for row in first["labels"] for label in row)


# --------------------------------------------------------------------------- training end to end


def _mlm_recipe(tmp_path: Path, model: Path | None, corpus: Path, **extra: str) -> Path:
    lines = [
        "task: mlm",
        f"model: {{name: {model}}}"
        if model
        else "model: {init: scratch, config: {hidden_size: 32, num_hidden_layers: 1, intermediate_size: 37}}",
        f"data: {{train: {corpus}, validation: {corpus}, max_length: 32}}",
        "train: {epochs: 2, batch_size: 8, learning_rate: 0.001, seed: 3, logging_steps: 1}",
        f"output: {{root: {tmp_path / 'runs'}}}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    path = tmp_path / "mlm.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory, tiny_model_dir, tiny_corpus_file):
    """One continued-pretraining run of the tiny BERT, shared by the tests below."""
    import torch

    from bertkit.training.run import train_recipe as pretrain

    tmp = tmp_path_factory.mktemp("mlm")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pretrain(load_recipe(_mlm_recipe(tmp, tiny_model_dir, tiny_corpus_file)))
    finally:
        torch.set_num_threads(threads)
    return result


@pytest.mark.parametrize("nsp", [False, True], ids=["mlm", "mlm+nsp"])
def test_the_sparse_head_gives_the_dense_heads_loss_and_gradients(nsp):
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

    from bertkit.tasks.mlm.sparse import use_sparse_prediction

    config = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    dense = (BertForPreTraining if nsp else BertForMaskedLM)(config)
    sparse = (BertForPreTraining if nsp else BertForMaskedLM)(config)
    sparse.load_state_dict(dense.state_dict())
    use_sparse_prediction(sparse)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 97, (3, 20), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 14:] = 0  # a padded row: its padding has no label
    labels = torch.full_like(input_ids, -100)
    masked = torch.rand(input_ids.shape, generator=generator) < 0.15
    masked[:, 3] = True  # fixed masks, at least one per row
    masked &= attention_mask.bool()
    labels[masked] = input_ids[masked]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if nsp:
        batch["next_sentence_label"] = torch.tensor([0, 1, 0])
    losses = {}
    for name, model in (("dense", dense), ("sparse", sparse)):
        model.train()
        loss = model(**batch).loss
        loss.backward()
        losses[name] = loss.detach()
    torch.testing.assert_close(losses["sparse"], losses["dense"], rtol=1e-6, atol=1e-6)
    gradients = dict(dense.named_parameters())
    for name, parameter in sparse.named_parameters():
        torch.testing.assert_close(parameter.grad, gradients[name].grad, rtol=1e-5, atol=1e-6, msg=name)
    assert sparse(**batch).logits.shape[:-1] == (
        int(masked.sum()),
    )  # the head ran at the masked positions only
    sparse.eval()  # evaluation and fill-mask: the model's own forward, every position
    dense.eval()
    with torch.no_grad():
        torch.testing.assert_close(sparse(**batch).loss, dense(**batch).loss)
        shape = (sparse(**batch).prediction_logits if nsp else sparse(**batch).logits).shape
    assert shape == (3, 20, 97)


def test_the_sparse_head_is_only_for_berts_head():
    from transformers import BertConfig, BertForMaskedLM, RobertaConfig, RobertaForMaskedLM

    from bertkit.tasks.mlm.sparse import sparse_supported

    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 20}
    assert sparse_supported(BertForMaskedLM(BertConfig(vocab_size=50, **small)))
    roberta = RobertaForMaskedLM(RobertaConfig(vocab_size=50, max_position_embeddings=40, **small))
    assert not sparse_supported(roberta)  # `auto` leaves it dense; `sparse` is refused for it


def test_document_attention_keeps_each_document_of_a_block_to_itself(tmp_path, tokenizer, tiny_model_dir):
    import torch
    from transformers import AutoModelForMaskedLM

    from bertkit.tasks.mlm.masking import MlmCollator
    from bertkit.training.packing import use_packed_attention

    # Documents of one word each: a part holding two words would mix two documents. Every cut
    # position is tried, a separator on the cut included.
    words = ["good", "bad", "film", "food", "staff"]
    docs = [" ".join([words[i % 5]] * (2 + i % 4)) for i in range(12)]
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id}
    for max_length in range(5, 14):
        built, _ = _sequences(tokenizer, _corpus(tmp_path, docs), max_length=max_length, attention="document")
        for ids, parts in zip(built["input_ids"], built["documents"], strict=True):
            assert sum(parts) == len(ids)
            start = 0
            for length in parts:
                part = ids[start : start + length]
                assert part[-1] == tokenizer.sep_token_id  # each part ends at a [SEP]
                assert len({t for t in part if t not in special}) == 1, (max_length, ids, parts)
                start += length
    lines = ["the film was good .", "i loved the food", "the service was slow and rude ."] * 3
    built, _ = _sequences(tokenizer, _corpus(tmp_path, lines), max_length=16, attention="document")
    features = [built[i] for i in range(2)]
    row = MlmCollator(tokenizer, 0.15, False, rows=True).mask(features, seed=1)  # padded blocks
    packed = MlmCollator(tokenizer, 0.15, False, rows=True)
    packed.masker.generator = torch.Generator().manual_seed(1)
    batch = packed(features)
    assert batch["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))
    assert batch["cu_seq_lens_q"].tolist()[-1] == batch["input_ids"].shape[1]
    assert torch.equal(batch["labels"][0], row["labels"][row["attention_mask"].bool()])  # the same masks
    model = AutoModelForMaskedLM.from_pretrained(tiny_model_dir).eval()
    use_packed_attention(model)
    bounds = batch["cu_seq_lens_q"].tolist()
    with torch.no_grad():
        together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]  # positions from 0
            torch.testing.assert_close(together[start:end], alone, atol=1e-5, rtol=1e-5)


def test_a_document_attention_run_trains_and_evaluates(tmp_path, tiny_model_dir, tiny_corpus_file, run_cli):
    from bertkit.training.run import train_recipe as pretrain

    recipe = load_recipe(_mlm_recipe(tmp_path, tiny_model_dir, tiny_corpus_file, mlm="{attention: document}"))
    result = pretrain(recipe)
    assert "attention stays inside each document of a block (mlm.attention: document)" in result.notes
    # `bertkit eval` scores the run as it trained, on document rows: what training reported.
    scored = run_cli("eval", "--model", result.run.path, "--json")
    assert scored.exit_code == 0, scored.output
    metrics = json.loads(scored.stdout)["metrics"]
    assert metrics["masked_accuracy"] == pytest.approx(result.metrics["validation"]["masked_accuracy"])
    assert metrics["loss"] == pytest.approx(result.metrics["validation"]["loss"], rel=5e-3)


def test_line_by_line_sequences_train_as_padding_free_rows(
    tmp_path, tiny_model_dir, tiny_corpus_file, run_cli
):
    from bertkit.training.run import train_recipe as pretrain

    path = _mlm_recipe(tmp_path, tiny_model_dir, tiny_corpus_file, mlm="{sequences: line_by_line}")
    result = pretrain(load_recipe(path))
    assert any(note.startswith("training batches are padding-free") for note in result.notes)
    # Validation in training ran on rows; `bertkit eval` runs padded batches: the same numbers.
    scored = run_cli("eval", "--model", result.run.path, "--json")
    assert scored.exit_code == 0, scored.output
    metrics = json.loads(scored.stdout)["metrics"]
    assert metrics["masked_accuracy"] == pytest.approx(result.metrics["validation"]["masked_accuracy"])
    assert metrics["loss"] == pytest.approx(result.metrics["validation"]["loss"], rel=5e-3)


def test_document_attention_is_refused_where_sequences_hold_one_document(tmp_path, tiny_corpus_file, run_cli):
    path = _mlm_recipe(tmp_path, None, tiny_corpus_file, mlm="{attention: document, sequences: line_by_line}")
    result = run_cli("recipes", "validate", path)
    assert result.exit_code != 0
    assert "mlm.attention: `document` applies to packed blocks" in result.output
    nsp = tmp_path / "nsp"
    nsp.mkdir()
    rows = _mlm_recipe(nsp, None, tiny_corpus_file, mlm="{objective: mlm+nsp}")
    refused = run_cli("recipes", "validate", rows, "--set", "train.padding_free=true")
    assert refused.exit_code != 0
    assert "train.padding_free: not with mlm+nsp" in refused.output


def test_continued_pretraining_writes_a_complete_run(mlm_run):
    run = mlm_run.run.path
    for name in ("run.json", "recipe.yaml", "README.md", "metrics.json", "sequences.json", "log.jsonl"):
        assert (run / name).is_file(), name
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    validation = mlm_run.metrics["validation"]
    assert validation["perplexity"] == pytest.approx(2.718281828 ** validation["loss"], rel=1e-6)
    assert json.loads((run / "sequences.json").read_text())["dropped_tokens"] == 0
    assert "fill-mask" in (run / "README.md").read_text()


def test_mlm_eval_is_reproducible_and_compares_with_a_baseline(run_cli, mlm_run, tiny_model_dir):
    first = run_cli("eval", "--model", mlm_run.run.path, "--json")
    second = run_cli("eval", "--model", mlm_run.run.path, "--json", "--baseline", tiny_model_dir)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    ours, again = json.loads(first.stdout)["metrics"], json.loads(second.stdout)
    assert again["metrics"] == ours  # fixed masks: the same numbers every time
    assert again["baseline"]["loss"] != ours["loss"]
    # The run scored on its own validation text matches what training reported (the
    # same masked positions; batches differ, and the loss is a mean of batch means).
    assert ours["loss"] == pytest.approx(mlm_run.metrics["validation"]["loss"], rel=5e-3)
    # Accuracy is counted over all masked tokens at once, so batching cannot change it.
    assert ours["masked_accuracy"] == pytest.approx(mlm_run.metrics["validation"]["masked_accuracy"])


def test_fill_mask_lists_candidates_for_every_mask(run_cli, mlm_run):
    result = run_cli(
        "predict", "--model", mlm_run.run.path, "the [MASK] was [MASK] .", "--top-k", "3", "--json"
    )
    assert result.exit_code == 0, result.output
    (answer,) = json.loads(result.stdout)
    assert len(answer["masks"]) == 2
    for candidates in answer["masks"]:
        assert len(candidates) == 3
        scores = [c["score"] for c in candidates]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_a_classifier_fine_tuned_from_a_pretraining_run_records_its_lineage(
    tmp_path, mlm_run, tiny_sentiment_files, tiny_model_dir
):
    from bertkit.training.run import train_recipe as finetune

    recipe = tmp_path / "classify.yaml"
    recipe.write_text(
        f"task: classification\nmodel: {{name: {mlm_run.run.path}}}\n"
        f"data: {{train: {tiny_sentiment_files / 'train.csv'}, max_length: 32}}\n"
        f"train: {{max_steps: 2, batch_size: 8}}\noutput: {{root: {tmp_path / 'runs'}}}\n",
        encoding="utf-8",
    )
    result = finetune(load_recipe(recipe))
    started = json.loads((result.run.path / "run.json").read_text())["started_from"]
    assert started == [str(mlm_run.run.path), str(tiny_model_dir)]
    card = (result.run.path / "README.md").read_text()
    assert str(tiny_model_dir) in card and str(mlm_run.run.path) in card


def test_a_tiny_bert_from_scratch_with_its_own_tokenizer(tmp_path, tiny_corpus_file):
    from bertkit.training.run import train_recipe as pretrain

    recipe = _mlm_recipe(
        tmp_path, None, tiny_corpus_file, tokenizer="{train: true, vocab_size: 120, min_frequency: 1}"
    )
    result = pretrain(load_recipe(recipe))
    from transformers import AutoTokenizer

    run = result.run.path
    vocab = AutoTokenizer.from_pretrained(run / "model").convert_ids_to_tokens(list(range(5)))
    assert vocab == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    config = json.loads((run / "model" / "config.json").read_text())
    size = len(AutoTokenizer.from_pretrained(run / "model"))
    assert config["hidden_size"] == 32 and config["vocab_size"] == size <= 120
    losses = [r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < losses[0]  # it learns


def test_tokenizer_train_command_writes_a_bert_tokenizer(run_cli, tmp_path, tiny_corpus_file):
    from transformers import AutoTokenizer

    chinese = _corpus(tmp_path, ["我爱自然语言处理", "自然语言很有趣"] * 10, "zh.txt")
    output = tmp_path / "tok"
    result = run_cli(
        "tokenizer", "train", "--input", tiny_corpus_file, "--input", chinese, "--vocab-size", "150",
        "--min-frequency", "1", "--output", output,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    loaded = AutoTokenizer.from_pretrained(output)
    assert loaded.mask_token == "[MASK]"
    assert loaded.tokenize("自然") == ["自", "然"]  # Chinese characters are tokens of their own
    assert loaded.tokenize("The FILM") == ["the", "film"]  # uncased by default
