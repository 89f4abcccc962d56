"""Padding-free rows compute what padded batches compute: logits, loss and every gradient."""

from __future__ import annotations

import pytest
import torch

from bertkit.training.packing import PackedCollator, packing_supported, use_packed_attention


def _features(tokenizer, sentences, pairs=None):
    features = []
    for i, words in enumerate(sentences):
        second = pairs[i] if pairs else None
        encoded = tokenizer(" ".join(words), second)
        labels = [
            -100 if t in (tokenizer.cls_token_id, tokenizer.sep_token_id) else (t % 3)
            for t in encoded["input_ids"]
        ]
        features.append({**dict(encoded), "labels": labels})
    return features


@pytest.fixture
def model_and_tokenizer(tiny_model_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model_dir, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


SENTENCES = [
    ["the", "film", "was", "good"],
    ["bad"],
    ["i", "loved", "the", "food", "and", "the", "staff", "."],
]


@pytest.mark.parametrize("group", [8, 2, 1], ids=["one-group", "groups-of-2", "one-by-one"])
@pytest.mark.parametrize("pairs", [None, ["it was", "a", "so so"]])
def test_a_packed_row_gives_the_padded_batchs_logits_loss_and_gradients(
    model_and_tokenizer, pairs, group, monkeypatch
):
    from transformers import DataCollatorForTokenClassification

    from bertkit.training import packing

    monkeypatch.setattr(packing, "GROUP", group)  # sequences attend in length-sorted groups of this many
    model, tokenizer = model_and_tokenizer
    model.train()
    features = _features(tokenizer, SENTENCES, pairs)
    padded = DataCollatorForTokenClassification(tokenizer)(features)
    reference = model(**padded)
    reference.loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    use_packed_attention(model)
    packed = PackedCollator()(features)
    assert packed["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))
    ends = torch.tensor([len(f["input_ids"]) for f in features]).cumsum(0).tolist()
    assert packed["cu_seq_lens_q"].tolist() == [0, *ends]
    result = model(**packed)
    result.loss.backward()
    torch.testing.assert_close(result.loss, reference.loss)
    torch.testing.assert_close(result.logits[0], reference.logits[padded["attention_mask"].bool()])
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(parameter.grad, expected[name], atol=1e-6, rtol=1e-4, msg=name)


def test_padded_batches_still_run_as_sdpa_runs_them(model_and_tokenizer):
    from transformers import DataCollatorForTokenClassification

    model, tokenizer = model_and_tokenizer
    model.eval()
    padded = DataCollatorForTokenClassification(tokenizer)(_features(tokenizer, SENTENCES))
    with torch.no_grad():
        expected = model(**padded).logits
        use_packed_attention(model)
        torch.testing.assert_close(model(**padded).logits, expected)


def test_the_collator_keeps_token_types_and_every_label(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    features = _features(tokenizer, SENTENCES[:2], ["it was", "a"])
    packed = PackedCollator()(features)
    assert (
        packed["token_type_ids"][0].tolist() == features[0]["token_type_ids"] + features[1]["token_type_ids"]
    )
    assert packed["labels"][0].tolist() == features[0]["labels"] + features[1]["labels"]
    assert packed["position_ids"][0].tolist() == [
        *range(len(features[0]["input_ids"])),
        *range(len(features[1]["input_ids"])),
    ]


def test_models_that_number_positions_otherwise_are_not_packed():
    from transformers import BertConfig, RobertaConfig

    assert packing_supported(type("M", (), {"config": BertConfig()})()) is None
    assert "number positions differently" in packing_supported(type("M", (), {"config": RobertaConfig()})())
    relative = BertConfig(position_embedding_type="relative_key")
    assert "relative position" in packing_supported(type("M", (), {"config": relative})())


@pytest.mark.parametrize(
    ("problem", "labels"),
    [
        ("single_label_classification", [0, 2, 1]),
        ("multi_label_classification", [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        ("regression", [0.5, -1.0, 2.25]),
    ],
    ids=["single", "multi", "regression"],
)
@pytest.mark.parametrize("pairs", [None, ["it was", "a", "so so"]], ids=["texts", "pairs"])
def test_a_packed_classifier_row_gives_the_padded_batchs_logits_loss_and_gradients(
    tiny_model_dir, problem, labels, pairs
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from bertkit.tasks.classification.packed import use_packed_classifier

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=1 if problem == "regression" else 3, problem_type=problem,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    model.train()
    features = []
    for i, words in enumerate(SENTENCES):
        encoded = tokenizer(" ".join(words), pairs[i] if pairs else None)
        features.append({**dict(encoded), "labels": labels[i]})
    padded = DataCollatorWithPadding(tokenizer)(features)
    reference = model(**padded)
    reference.loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    use_packed_attention(model)
    use_packed_classifier(model)
    packed = PackedCollator(per_example=("labels",))(features)
    assert packed["labels"].dtype == padded["labels"].dtype
    result = model(**packed)
    result.loss.backward()
    torch.testing.assert_close(result.logits, reference.logits, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(result.loss, reference.loss)
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(parameter.grad, expected[name], atol=1e-6, rtol=1e-4, msg=name)
    model.eval()  # padded batches (evaluation, prediction) still run the model's own forward
    with torch.no_grad():
        torch.testing.assert_close(model(**padded).logits, reference.logits, atol=1e-6, rtol=1e-5)


def test_padding_a_padding_free_run_is_refused(run_cli, make_recipe, tmp_path):
    path = make_recipe(train={"pad_to_multiple_of": 8})  # padding_free: auto -> rows on this CPU
    result = run_cli("finetune", "--recipe", path)
    assert result.exit_code == 2, result.output  # a recipe problem
    assert "train.pad_to_multiple_of: 8 pads batches, and this run's are padding-free rows" in result.stderr
    padded_recipe = make_recipe("padded", train={"pad_to_multiple_of": 8, "padding_free": False})
    padded = run_cli("finetune", "--recipe", padded_recipe)
    assert padded.exit_code == 0, padded.output
