"""Padding-free forward passes for the server's batches, on CPU.

A served batch holds whatever requests came together: a random mix of lengths, too
few to sort into batches of one length the way `bertkit predict` sorts a file (on
SST-2 sentences in random batches of 16, 44% of a padded batch is padding). As in training
(training/packing.py), the batch's real tokens run as one row instead: the linear
layers compute no padding at all, attention stays inside each text, and the outputs
are laid back out as the padded batch's, so everything after the forward pass
(scores, entities) is unchanged. On this project's 2-core CPU, MiniLM classified
SST-2 sentences in random batches of 16 at 263 texts/s this way, 137 padded
(BENCHMARKS.md, serving notes).

It applies where packing does (BERT-like models, see `packing_supported`) with the
torch backend on the CPU; on a GPU, padded batches keep the matrix units busier.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np


def can_pack(predictor: Any) -> bool:
    """Whether a predictor's batches can run as padding-free rows (torch on the CPU, a BERT-like model)."""
    from bertkit.training.packing import packing_supported

    if predictor.device != "cpu" or hasattr(predictor, "input_names"):  # ONNX Runtime predictors
        return False
    return getattr(predictor.model, "config", None) is not None and packing_supported(predictor.model) is None


def packed(predictor: Any, kind: type) -> Any:
    """The predictor as `kind` (its padding-free subclass), its model readied for packed rows."""
    from bertkit.training.packing import use_packed_attention

    use_packed_attention(predictor.model)
    return kind(**{f.name: getattr(predictor, f.name) for f in fields(predictor)})


def run_packed(model: Any, batch: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    """Run a padded batch as one row of its real tokens: the model's output, and the batch's token mask."""
    import torch

    mask = batch["attention_mask"].astype(bool)
    lengths = mask.sum(axis=1)
    positions = np.broadcast_to(np.arange(mask.shape[1]), mask.shape)[mask]
    row = {
        "input_ids": torch.from_numpy(batch["input_ids"][mask].astype(np.int64))[None],
        "position_ids": torch.from_numpy(positions.astype(np.int64))[None],
    }
    if "token_type_ids" in batch:
        row["token_type_ids"] = torch.from_numpy(batch["token_type_ids"][mask].astype(np.int64))[None]
    bounds = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    longest = int(lengths.max())
    with torch.inference_mode():
        output = model(
            **row, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=longest, max_length_k=longest
        )
    return output, mask


def lay_out(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A packed row's per-token outputs (tokens x ...) laid out as the padded batch's, zeros at padding."""
    out = np.zeros((*mask.shape, *tokens.shape[1:]), dtype=tokens.dtype)
    out[mask] = tokens
    return out
