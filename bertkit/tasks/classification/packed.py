"""A sequence classifier that also trains on padding-free rows (see training/packing.py).

Its pooler reads each example's first ([CLS]) state out of the row, as it reads the
first position of each padded example; the loss is the one BertForSequenceClassification
computes for its problem type. tests/test_packing.py checks logits, loss and gradients
against a padded batch.
"""

from __future__ import annotations

from typing import Any


def use_packed_classifier(model: Any) -> None:
    """Let a sequence classifier (BERT's) also read packed rows: its pooler on each example's first token.

    The forward is replaced on this instance only: padded batches (evaluation,
    prediction) and the saved model are those of the model's own class.
    """
    from types import MethodType

    model.forward = MethodType(_packed_classifier_forward, model)


def _packed_classifier_forward(
    self: Any,
    input_ids: Any = None,
    attention_mask: Any = None,
    token_type_ids: Any = None,
    position_ids: Any = None,
    labels: Any = None,
    cu_seq_lens_q: Any = None,
    **kwargs: Any,
) -> Any:
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    if cu_seq_lens_q is None:
        return type(self).forward(
            self,
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            labels=labels,
            **kwargs,
        )
    outputs = self.bert(
        input_ids,
        token_type_ids=token_type_ids,
        position_ids=position_ids,
        cu_seq_lens_q=cu_seq_lens_q,
        return_dict=True,
        **kwargs,
    )
    starts = cu_seq_lens_q[:-1].to(input_ids.device, torch.long)
    # What the pooler reads from a padded batch: each example's first ([CLS]) state.
    pooled = self.bert.pooler(outputs[0][0].index_select(0, starts)[:, None, :])
    logits = self.classifier(self.dropout(pooled))
    loss = None if labels is None else classifier_loss(self.config, logits, labels)
    return SequenceClassifierOutput(loss=loss, logits=logits)


def classifier_loss(config: Any, logits: Any, labels: Any) -> Any:
    """The loss BertForSequenceClassification computes for its problem type (and infers as it does)."""
    import torch
    from torch.nn import functional

    problem, count = config.problem_type, config.num_labels
    if problem is None:
        integer = labels.dtype in (torch.long, torch.int)
        problem = (
            "regression"
            if count == 1
            else "single_label_classification"
            if integer
            else "multi_label_classification"
        )
    if problem == "regression":
        if count == 1:
            return functional.mse_loss(logits.squeeze(), labels.squeeze())
        return functional.mse_loss(logits, labels)
    if problem == "single_label_classification":
        return functional.cross_entropy(logits.view(-1, count), labels.view(-1))
    return functional.binary_cross_entropy_with_logits(logits, labels)
