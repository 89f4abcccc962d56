"""Less padding without changing what the model learns from.

Padding every batch to its longest example wastes most of the compute on text of
mixed lengths: on SST-2, two thirds of the positions in a random batch of 32 are
padding. The usual cure, batches of similar-length examples, changes the training
itself: on SST-2 it cost 1 to 1.5 points of accuracy in every variant we measured
(bench/finetune.py, three seeds), because every gradient then comes from texts of
one length.

bertkit keeps the batches random and changes only how each one is computed: a batch
is sorted by length and cut into equal micro-batches that run one after another
with their gradients accumulated. The optimizer step sees exactly the examples of
the random batch, with the same weight each (equal micro-batches, mean losses), so
results match plain shuffling up to float rounding, while each micro-batch pads
only to its own longest text. The batches are the very ones the Trainer's shuffling
draws for the seed, and depend only on (seed, epoch), so a run resumed mid-epoch
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

# The smallest micro-batch worth running: smaller ones lose more to per-call
# overhead than they save in padding (CPU), or leave a GPU idle.
MIN_MICRO_BATCH = {"cpu": 8, "mps": 8, "cuda": 32}


def micro_batches(batch_size: int, device: str) -> int:
    """How many equal micro-batches a batch is split into (1: not split).

    The largest divisor of `batch_size` that keeps micro-batches at least
    MIN_MICRO_BATCH[device] examples.
    """
    smallest = MIN_MICRO_BATCH.get(device, 32)
    fits = [k for k in range(2, batch_size + 1) if batch_size % k == 0 and batch_size // k >= smallest]
    return max(fits, default=1)


class SortedMicroBatches:
    """A batch sampler: random batches, each sorted by length and cut into equal micro-batches.

    Args:
        lengths: the token length of every example.
        batch_size: examples per (random) batch.
        splits: micro-batches per batch; `batch_size` must be a multiple of it.
        seed: with the epoch, decides the order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, splits: int, *, seed: int) -> None:
        if batch_size % splits:
            raise ValueError(f"batch size {batch_size} is not a multiple of {splits} micro-batches")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.splits = splits
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order `__iter__` gives (the Trainer calls it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full * self.splits + min(rest, self.splits)

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        # The very permutation the Trainer's own shuffling draws for this seed and epoch
        # (Accelerate's seedable sampler: torch.randperm seeded with seed + epoch), so
        # the batches hold the same examples as without sorting.
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            batch = batch[np.argsort(self.lengths[batch], kind="stable")]
            for part in np.array_split(batch, min(self.splits, len(batch))):
                yield part.tolist()
