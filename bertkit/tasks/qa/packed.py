"""Question answering's training loss over each window's own tokens, on padded batches and packed rows.

Transformers' BertForQuestionAnswering takes the softmax of start (and end) logits
over every position of the padded batch, padding included, so a window's loss
depends on how much padding its batch happened to add (and the usual script pads
every window to max_length). Padding is never an answer: bertkit scores the start
and end only over each window's real tokens, in both layouts:

- a padded batch (sorted micro-batches, evaluation): padding positions are masked
  out of the softmax;
- a padding-free row (see training/packing.py): the row's logits are laid out per
  window, their padding masked the same way.

So the two layouts compute the same loss, gradients and logits on real tokens
(tests/test_qa_units.py). The returned logits are those of the padded layout;
padding positions hold the smallest float, which answer selection never reads
(answers come from context tokens). Only this instance's forward changes: the saved
model is a standard BertForQuestionAnswering.
"""

from __future__ import annotations

from types import MethodType
from typing import Any


def use_window_loss(model: Any) -> bool:
    """Give a BERT question-answering model the loss over real tokens, for padded and packed batches.

    Returns:
        Whether it was given: other architectures (their heads differ: dropout, other
        encoders) keep Transformers' own loss.
    """
    if type(model).__name__ != "BertForQuestionAnswering":
        return False
    model.forward = MethodType(_forward, model)
    return True


def _forward(
    self: Any,
    input_ids: Any = None,
    attention_mask: Any = None,
    token_type_ids: Any = None,
    position_ids: Any = None,
    start_positions: Any = None,
    end_positions: Any = None,
    cu_seq_lens_q: Any = None,
    **kwargs: Any,
) -> Any:
    import torch
    from transformers.modeling_outputs import QuestionAnsweringModelOutput

    packed = cu_seq_lens_q is not None
    extra = {"cu_seq_lens_q": cu_seq_lens_q} if packed else {}
    outputs = self.bert(
        input_ids,
        attention_mask=None if packed else attention_mask,
        token_type_ids=token_type_ids,
        position_ids=position_ids,
        return_dict=True,
        **extra,
        **kwargs,
    )
    logits = self.qa_outputs(outputs[0])  # (batch or 1, positions, 2)
    if packed:
        logits, real = _per_window(logits[0], cu_seq_lens_q)
    else:
        real = attention_mask.bool() if attention_mask is not None else torch.ones_like(logits[..., 0]).bool()
    lowest = torch.finfo(logits.dtype).min
    logits = logits.masked_fill(~real[..., None], lowest)
    start_logits, end_logits = (part.squeeze(-1).contiguous() for part in logits.split(1, dim=-1))
    loss = None
    if start_positions is not None and end_positions is not None:
        from torch.nn import functional

        # As Transformers does: positions past the window are ignored.
        ignored = start_logits.size(1)
        starts = start_positions.view(-1).clamp(0, ignored)
        ends = end_positions.view(-1).clamp(0, ignored)
        loss = (
            functional.cross_entropy(start_logits, starts, ignore_index=ignored)
            + functional.cross_entropy(end_logits, ends, ignore_index=ignored)
        ) / 2
    return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


def _per_window(row: Any, cu_seq_lens: Any) -> tuple[Any, Any]:
    """A packed row's (positions, 2) logits as (windows, longest, 2), and which of those are real tokens."""
    import torch

    bounds = cu_seq_lens.to(row.device, torch.long)
    starts, lengths = bounds[:-1], bounds[1:] - bounds[:-1]
    longest = int(lengths.max())
    offsets = torch.arange(longest, device=row.device)
    real = offsets[None, :] < lengths[:, None]
    index = (starts[:, None] + torch.minimum(offsets[None, :], lengths[:, None] - 1)).reshape(-1)
    return row.index_select(0, index).view(len(lengths), longest, row.shape[-1]), real
