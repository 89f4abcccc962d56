"""Less padding without changing what the model learns from, on one process or many.

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

Several processes share each optimizer step (DDP, FSDP, DeepSpeed). The sampler is
rank-aware by design: every process draws the same permutation, takes the same
global batch (`batch_size` examples per process, times the number of processes),
sorts it by length and deals it out like cards, so each process gets an equal share
of every length, then cuts its share into micro-batches. An optimizer step on W
processes therefore sees the same examples as a step of one process with a W times
larger batch, and every process runs the same number of micro-batches. The last,
partial global batch of an epoch is shared out the same way; when it does not
divide by the number of processes, its last few examples (at most W - 1, a
different few each epoch) are left out of that epoch, so that no process waits for
another at the final step. One process never leaves anything out.
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
    """A batch sampler for one process: random batches, sorted by length, cut into micro-batches.

    It deliberately has no `batch_size` attribute: its batches vary in size at the
    end of an epoch, and Accelerate's sharding wrapper would read one and drop every
    batch of another size. It shards itself (see the module docstring); the
    Trainer's wrapper is made a pass-through (`BertkitTrainer.get_train_dataloader`).

    Args:
        lengths: the token length of every example.
        batch_size: examples one process takes per optimizer step (its random batch).
        splits: micro-batches per batch; `batch_size` must be a multiple of it.
        seed: with the epoch, decides the order.
        num_processes: processes sharing each optimizer step.
        process_index: which of them this sampler feeds.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        splits: int,
        *,
        seed: int,
        num_processes: int = 1,
        process_index: int = 0,
    ) -> None:
        if batch_size % splits:
            raise ValueError(f"batch size {batch_size} is not a multiple of {splits} micro-batches")
        if not 0 <= process_index < num_processes:
            raise ValueError(f"process index {process_index} is outside 0..{num_processes - 1}")
        self.lengths = np.asarray(lengths)
        self.random_batch_size = batch_size
        self.splits = splits
        self.seed = seed
        self.num_processes = num_processes
        self.process_index = process_index
        self.epoch = 0

    @property
    def global_batch_size(self) -> int:
        """Examples per optimizer step over all processes."""
        return self.random_batch_size * self.num_processes

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order `__iter__` gives (the Trainer calls it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.global_batch_size)
        share = rest // self.num_processes  # this process's part of the last, partial batch
        return full * self.splits + min(share, self.splits)

    @property
    def left_out(self) -> int:
        """Examples each epoch leaves out: the part of the last batch that does not divide."""
        return len(self.lengths) % self.global_batch_size % self.num_processes

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        # The very permutation the Trainer's own shuffling draws for this seed and epoch
        # (Accelerate's seedable sampler: torch.randperm seeded with seed + epoch), so
        # the batches hold the same examples as without sorting.
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        size, ranks = self.global_batch_size, self.num_processes
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            batch = batch[: len(batch) - len(batch) % ranks]  # equal shares (the last batch only)
            if len(batch) == 0:
                break
            batch = batch[np.argsort(self.lengths[batch], kind="stable")]
            mine = batch[self.process_index :: ranks]
            for part in np.array_split(mine, min(self.splits, len(mine))):
                yield part.tolist()
