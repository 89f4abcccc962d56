"""A sentence encoder whose transformer trains on padding-free rows (see training/packing.py).

sentence-transformers tokenizes each column of a batch into a padded batch and runs its
modules on it: the transformer (nearly all the compute), then pooling over the
attention mask. In training, bertkit's transformer module runs the batch's real tokens
as one row instead, attention kept inside each text, and lays the token vectors back
out as the padded batch (zeros at padding) before pooling, which therefore sees exactly
what it sees on the padded batch. Same vectors, loss and gradients (tests/test_embedding.py);
evaluation and `encode` run the module's own forward, except in `bertkit serve`.
"""

from __future__ import annotations

from types import MethodType
from typing import Any


def use_packed_encoder(transformer: Any, *, inference: bool = False) -> None:
    """Make a sentence-transformers Transformer module (over a BERT) train on padding-free rows.

    With `inference`, `encode` runs on them too (`bertkit serve`: its batches mix lengths).
    """
    transformer._bertkit_packed_inference = inference
    transformer.forward = MethodType(_forward, transformer)


def _forward(self: Any, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    import torch

    own = type(self).forward
    mask = features.get("attention_mask")
    packing = self.training or getattr(self, "_bertkit_packed_inference", False)
    if not packing or mask is None or features.get("input_ids") is None:
        return own(self, features, **kwargs)
    real = mask.bool()
    lengths = real.sum(dim=1)
    positions = real.reshape(-1).nonzero().squeeze(1)  # the real tokens, row after row
    bounds = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    bounds[1:] = lengths.cumsum(0).cpu()
    offsets = torch.arange(real.shape[1], device=mask.device).expand_as(real)
    row = {
        key: value
        for key, value in features.items()
        if key not in ("input_ids", "attention_mask", "token_type_ids", "position_ids")
    }
    row["input_ids"] = features["input_ids"].reshape(-1)[positions][None]
    row["position_ids"] = offsets.reshape(-1)[positions][None]
    if features.get("token_type_ids") is not None:
        row["token_type_ids"] = features["token_type_ids"].reshape(-1)[positions][None]
    longest = int(lengths.max())
    row.update(cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=longest, max_length_k=longest)
    out = own(self, row, **kwargs)
    tokens = out["token_embeddings"][0]  # (real tokens, hidden)
    padded = tokens.new_zeros(real.numel(), tokens.shape[-1]).index_copy(0, positions, tokens)
    features["token_embeddings"] = padded.view(*real.shape, tokens.shape[-1])
    return features
