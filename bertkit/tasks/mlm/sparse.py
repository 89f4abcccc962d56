"""Sparse masked-LM prediction: the output head runs only where there is a label.

`BertForMaskedLM` applies its head (a dense transform, layer norm and the
vocabulary-sized decoder) at every position of every sequence, although only the
masked ~15% carry a loss; on a 30,522-token vocabulary that head is most of a small
model's training compute. In training, bertkit gathers the labelled positions first
and runs the head on them alone, as the cramming, MosaicBERT and ModernBERT recipes
do. The loss is the same mean cross-entropy over the same positions, so the loss
and every gradient equal the dense head's up to float rounding
(tests/test_pretrain.py checks both).

Nothing about the model changes: the forward is replaced on this one instance, the
weights and class stay those of `BertForMaskedLM` / `BertForPreTraining`, and the
saved folder is a standard one. Evaluation (`model.eval()`) and any call without
labels run the model's own forward, so evaluation, perplexity and fill-mask are
untouched.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

IGNORE = -100  # the label of positions without a loss


SUPPORTED = ("BertForMaskedLM", "BertForPreTraining")


def sparse_supported(model: Any) -> bool:
    """Whether the model's head is BERT's (a `bert` encoder, `cls.predictions`): the one this forward runs."""
    return type(model).__name__ in SUPPORTED


def use_sparse_prediction(model: Any) -> None:
    """Make `model` (BertForMaskedLM, BertForPreTraining) run its MLM head only at labelled positions."""
    model.forward = MethodType(_sparse_forward, model)


def _sparse_forward(
    self: Any,
    input_ids: Any = None,
    attention_mask: Any = None,
    token_type_ids: Any = None,
    position_ids: Any = None,
    inputs_embeds: Any = None,
    labels: Any = None,
    next_sentence_label: Any = None,
    **kwargs: Any,
) -> Any:
    from torch.nn import functional
    from transformers.modeling_outputs import MaskedLMOutput

    nsp = hasattr(self.cls, "seq_relationship")  # BertForPreTraining: masked LM + next sentence
    inputs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "position_ids": position_ids,
        "inputs_embeds": inputs_embeds,
    }
    if not self.training or labels is None or (nsp and next_sentence_label is None):
        extra = {"next_sentence_label": next_sentence_label} if nsp else {}
        return type(self).forward(self, **inputs, labels=labels, **extra, **kwargs)
    outputs = self.bert(**inputs, return_dict=True, **kwargs)
    states = outputs[0]
    flat = labels.reshape(-1)
    picked = (flat != IGNORE).nonzero().squeeze(1)
    scores = self.cls.predictions(states.reshape(-1, states.shape[-1]).index_select(0, picked))
    # The dense head's loss: the mean over labelled positions (NaN when there are none, as there).
    loss = functional.cross_entropy(scores, flat.index_select(0, picked))
    if nsp:
        relationship = self.cls.seq_relationship(outputs[1])
        loss = loss + functional.cross_entropy(relationship.view(-1, 2), next_sentence_label.view(-1))
    # The logits of the labelled positions only, in row-major order: nothing in training reads them.
    return MaskedLMOutput(loss=loss, logits=scores)
