"""Padding-free training batches: a batch's examples as one row of real tokens.

A padded batch of token-level examples computes every linear layer over its padding
too: on WNUT-17 tweets in random batches of 16, 41% of the positions are padding.
Sorting each batch into micro-batches (sampling.py) pads less, but on a CPU two
matrix products of 8 rows-of-sequences run less efficiently than one of 16, and the
two effects nearly cancel. Here a batch is instead concatenated into a single
sequence of its real tokens, so the linear layers (nearly all the compute) run as
one large product with no padding at all, while attention runs sequence by
sequence: each example sees only its own tokens, with its own positions, so the
model computes exactly what it computes on the padded batch (a test checks logits,
loss and gradients). The batch is the same random batch of plain shuffling.

It applies to models whose head works token by token (NER: the loss is a mean over
labelled tokens either way) and whose embeddings number positions from 0 (BERT).
Evaluation keeps ordinary padded batches: the attention function below runs those
as SDPA does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ATTENTION = "bertkit_packed"  # the attention implementation registered with Transformers
MODEL_TYPES = ("bert",)  # embeddings that number positions 0, 1, ... and take position_ids


def packing_supported(model: Any) -> str | None:
    """Why `model` cannot train on packed batches, or None when it can."""
    config = model.config
    if config.model_type not in MODEL_TYPES:
        return f"{config.model_type} models number positions differently"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return "the model uses relative position embeddings"
    if getattr(config, "is_decoder", False):
        return "the model is a decoder"
    return None


def use_packed_attention(model: Any) -> None:
    """Give the model the attention that reads packed rows (and padded batches as SDPA does)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, packed_attention)
    # Padded batches get the padding mask SDPA would get (without a mask function of its
    # own, an attention implementation is given no mask at all).
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)
    model.set_attn_implementation(ATTENTION)


def packed_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: Any = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention over a packed row sequence by sequence, or over a padded batch as SDPA.

    Shapes follow Transformers' attention interface: query, key and value are
    (batch, heads, positions, head size); the result is (batch, positions, heads, head size).
    """
    import torch
    from torch.nn import functional

    if cu_seq_lens_q is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        if (
            attention_mask is not None and attention_mask.ndim == 2
        ):  # a 2-D padding mask: no one built a 4-D one
            attention_mask = None if bool(attention_mask.all()) else attention_mask[:, None, None, :].bool()
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=False
        )
    # Attention runs on the row's sequences side by side, each padded to the longest with
    # its padding masked out: gathered by index, so the backward pass scatters each
    # gradient into the row once (slicing the row per sequence would fill a zero tensor
    # of the whole row for every sequence, which costs more than the attention itself).
    starts = cu_seq_lens_q[:-1].to(query.device, torch.long)
    lengths = cu_seq_lens_q[1:].to(query.device, torch.long) - starts
    longest = int(lengths.max())
    offsets = torch.arange(longest, device=query.device)
    valid = offsets[None, :] < lengths[:, None]  # (sequences, longest)
    index = (starts[:, None] + torch.minimum(offsets[None, :], lengths[:, None] - 1)).reshape(-1)
    heads, size = query.shape[1], query.shape[-1]

    def side_by_side(states: Any) -> Any:  # (1, heads, row, size) -> (sequences, heads, longest, size)
        return states[0].index_select(1, index).view(heads, len(lengths), longest, size).transpose(0, 1)

    output = functional.scaled_dot_product_attention(
        side_by_side(query),
        side_by_side(key),
        side_by_side(value),
        attn_mask=valid[:, None, None, :],
        dropout_p=dropout,
        scale=scaling,
    )
    # Back to the row: (sequences, heads, longest, size) -> (1, row, heads, size).
    rows = output.transpose(1, 2).reshape(-1, heads, size)
    return rows.index_select(0, valid.reshape(-1).nonzero().squeeze(1))[None], None


@dataclass
class PackedCollator:
    """Concatenate a batch's examples into one row: input ids, token types, labels, positions.

    Transformers' DataCollatorWithFlattening does this for causal language models; it
    overwrites each example's first label and drops token type ids, which token-level
    heads and sentence pairs need, so bertkit packs its own rows.
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        columns: dict[str, list[int]] = {"input_ids": [], "position_ids": []}
        bounds = [0]
        for feature in features:
            ids = list(feature["input_ids"])
            columns["input_ids"] += ids
            columns["position_ids"] += range(len(ids))
            bounds.append(bounds[-1] + len(ids))
            for key in ("token_type_ids", "labels"):
                if key in feature:
                    columns.setdefault(key, []).extend(feature[key])
        batch: dict[str, Any] = {
            key: torch.tensor([values], dtype=torch.long) for key, values in columns.items()
        }
        lengths = torch.tensor(bounds, dtype=torch.int32)
        longest = int((lengths[1:] - lengths[:-1]).max()) if len(features) else 0
        batch.update(cu_seq_lens_q=lengths, cu_seq_lens_k=lengths, max_length_q=longest, max_length_k=longest)
        return batch
