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
labelled tokens either way), to heads that read each example's part of the row
(a classifier's pooler its first token: tasks/classification/packed.py; question
answering's start and end over its own tokens: tasks/qa/packed.py), and to models
whose embeddings number positions from 0 (BERT).
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


def padding_free(train: Any, model: Any, device: str, notes: list[str]) -> bool:
    """Whether training runs on padding-free rows (`train.padding_free`); readies the model if so.

    Raises:
        RecipeError: `train.padding_free: true` for a model that cannot read packed rows; a
            `train.pad_to_multiple_of` number for rows that have no padding.
    """
    from bertkit.errors import RecipeError

    setting, why_not = train.padding_free, packing_supported(model)
    if setting is True and why_not:
        raise RecipeError(f"train.padding_free: {why_not}", hint="set train.padding_free: auto or false")
    packed = setting is True or (setting == "auto" and device == "cpu" and why_not is None)
    if packed and isinstance(train.pad_to_multiple_of, int):
        raise RecipeError(
            f"train.pad_to_multiple_of: {train.pad_to_multiple_of} pads batches, and this run's are "
            "padding-free rows",
            hint="remove train.pad_to_multiple_of, or set train.padding_free: false to pad",
        )
    if packed:
        use_packed_attention(model)
        notes.append("training batches are padding-free: one row of real tokens each (train.padding_free)")
    return packed


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
    # Built in Python from the row's bounds: torch.compile runs it eagerly (a graph break).
    layout = torch.compiler.disable(_layout)(cu_seq_lens_q, query.device)
    heads, size = query.shape[1], query.shape[-1]
    states = [x[0].transpose(0, 1) for x in (query, key, value)]  # (row, heads, size)
    pieces = []
    for (index, valid, count, longest), kept in zip(layout.groups, layout.kept, strict=True):
        # Gathered by index, so the backward pass adds each gradient into the row once.
        # (count * longest, heads, size) -> (count, heads, longest, size)
        q, k, v = (x.index_select(0, index).view(count, longest, heads, size).transpose(1, 2) for x in states)
        output = functional.scaled_dot_product_attention(
            q, k, v, attn_mask=valid, dropout_p=dropout, scale=scaling
        )
        rows = output.transpose(1, 2).reshape(count * longest, heads, size)
        pieces.append(rows if kept is None else rows.index_select(0, kept))
    return torch.cat(pieces).index_select(0, layout.order)[None], None


# Sequences attended to together: sorted by length and taken GROUP at a time, each group
# padded to its own longest, so little of the attention is spent on padding.
GROUP = 8


@dataclass
class _Layout:
    """How a packed row's sequences are gathered into padded groups, and put back."""

    # Per group: row positions to gather (count * longest, the last real token repeated as
    # padding), the key mask (count, 1, 1, longest) or None without padding, count, longest.
    groups: list[tuple[Any, Any, int, int]]
    kept: list[Any]  # per group: which gathered positions are real tokens
    order: Any  # the groups' real tokens, concatenated, back in row order


def _layout(cu_seq_lens: Any, device: Any) -> _Layout:
    """The grouping of a row's sequences; computed once per row (every layer reads the same one)."""
    import torch

    cached = getattr(cu_seq_lens, "_bertkit_layout", None)
    if cached is not None:
        return cached
    bounds = cu_seq_lens.tolist()
    starts, lengths = bounds[:-1], [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    ranked = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups, kept, placed = [], [], []
    for first in range(0, len(ranked), GROUP):
        members = ranked[first : first + GROUP]
        longest = max(lengths[m] for m in members)
        index = [starts[m] + min(o, lengths[m] - 1) for m in members for o in range(longest)]
        real = [o < lengths[m] for m in members for o in range(longest)]
        padded = not all(real)
        mask = torch.tensor(real, device=device).view(len(members), 1, 1, longest) if padded else None
        groups.append((torch.tensor(index, device=device), mask, len(members), longest))
        kept.append(torch.tensor(real, device=device).nonzero().squeeze(1) if padded else None)
        placed += [starts[m] + o for m in members for o in range(lengths[m])]
    order = torch.empty(len(placed), dtype=torch.long)
    order[torch.tensor(placed)] = torch.arange(len(placed))
    layout = _Layout(groups, kept, order.to(device))
    cu_seq_lens._bertkit_layout = layout
    return layout


@dataclass
class PackedCollator:
    """Concatenate a batch's examples into one row: input ids, token types, labels, positions.

    Transformers' DataCollatorWithFlattening does this for causal language models; it
    overwrites each example's first label and drops token type ids, which token-level
    heads and sentence pairs need, so bertkit packs its own rows.
    """

    per_example: tuple[str, ...] = ()  # label columns with one value (or vector) per example, not per token

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        columns: dict[str, list[int]] = {"input_ids": [], "position_ids": []}
        bounds = [0]
        token_keys = [key for key in ("token_type_ids", "labels") if key not in self.per_example]
        for feature in features:
            ids = list(feature["input_ids"])
            columns["input_ids"] += ids
            columns["position_ids"] += range(len(ids))
            bounds.append(bounds[-1] + len(ids))
            for key in token_keys:
                if key in feature:
                    columns.setdefault(key, []).extend(feature[key])
        batch: dict[str, Any] = {
            key: torch.tensor([values], dtype=torch.long) for key, values in columns.items()
        }
        for key in self.per_example:
            if features and key in features[0]:
                # Class ids and positions stay integers; regression targets and multi-label vectors, float.
                batch[key] = torch.tensor([feature[key] for feature in features])
        lengths = torch.tensor(bounds, dtype=torch.int32)
        longest = int((lengths[1:] - lengths[:-1]).max()) if len(features) else 0
        batch.update(cu_seq_lens_q=lengths, cu_seq_lens_k=lengths, max_length_q=longest, max_length_k=longest)
        return batch
