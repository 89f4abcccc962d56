"""This machine's fp32 matrix-multiply peak, and the useful work of a BERT step, for utilisation figures.

Utilisation = useful FLOP/s / peak, where useful FLOPs are real (non-padding) tokens
x 6 x the non-embedding parameters of the encoder (forward 2, backward 4 FLOPs per
parameter per token) and the peak is what torch's fp32 matmul reaches on 2048 x 2048
matrices on this machine, measured in the same run as the figure it divides.
"""

from __future__ import annotations

import time
from typing import Any

SIZE = 2048


def matmul_peak_gflops(repeats: int = 10) -> float:
    """Best of three timings of `repeats` fp32 2048x2048 matrix products, in GFLOP/s."""
    import torch

    a, b = torch.randn(SIZE, SIZE), torch.randn(SIZE, SIZE)
    a @ b  # warm up: thread pool, allocator
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return repeats * 2 * SIZE**3 / best / 1e9


def encoder_parameters(config: Any) -> int:
    """Non-embedding parameters of a BERT encoder's layers (the matrices every token goes through)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * (4 * hidden * hidden + 2 * hidden * inner)


def useful_gflops(tokens_per_second: float, config: Any) -> float:
    """Useful GFLOP/s of training on real tokens at this rate (6 FLOPs per parameter per token)."""
    return tokens_per_second * 6 * encoder_parameters(config) / 1e9


def ceiling_gflops(model_dir: Any, batch: int, length: int, steps: int = 6) -> float:
    """Useful GFLOP/s of the encoder's forward and backward on one equal-length batch.

    No padding, no mask, no optimizer step, dropout on as in training: the most a batch
    of this many tokens can reach on this machine, whatever the batch layout; a
    training step adds the optimizer and the Trainer's own work on top.
    """
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="sdpa").train()
    ids = torch.randint(1000, 2000, (batch, length), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        model(input_ids=ids).last_hidden_state.sum().backward()
        model.zero_grad()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return batch * length * 6 * encoder_parameters(model.config) / seconds / 1e9
