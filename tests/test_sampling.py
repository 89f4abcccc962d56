"""Sorted micro-batches: the same random batches as plain shuffling, with less padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertkit.recipe.schema import TrainSection
from bertkit.training.arguments import micro_batch_splits
from bertkit.training.sampling import SortedMicroBatches, micro_batches


def _lengths(n: int = 103, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(3, 60, size=n).tolist()


def test_each_batch_holds_the_examples_plain_shuffling_would_give():
    lengths = _lengths()
    sampler = SortedMicroBatches(lengths, batch_size=16, splits=4, seed=42)
    sampler.set_epoch(3)
    micro = list(sampler)
    # Accelerate's seedable sampler: torch.randperm seeded with seed + epoch.
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(42 + 3)).tolist()
    batches = [order[i : i + 16] for i in range(0, len(order), 16)]
    regrouped = [sum(micro[i : i + 4], []) for i in range(0, 4 * (len(batches) - 1), 4)]
    assert [sorted(b) for b in regrouped] == [sorted(b) for b in batches[:-1]]
    assert sorted(sum(micro, [])) == list(range(len(lengths)))  # every example once per epoch
    assert len(micro) == len(sampler)


def test_micro_batches_are_equal_and_sorted_by_length():
    lengths = _lengths()
    micro = list(SortedMicroBatches(lengths, batch_size=16, splits=4, seed=1))
    full = micro[: 4 * (len(lengths) // 16)]
    assert {len(m) for m in full} == {4}
    for start in range(0, len(full), 4):
        seen = [lengths[i] for m in full[start : start + 4] for i in m]
        assert seen == sorted(seen)


def test_sorting_cuts_padding():
    lengths = np.array(_lengths(4000))

    def padded(batches):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)

    plain = SortedMicroBatches(lengths, batch_size=32, splits=1, seed=0)
    split = SortedMicroBatches(lengths, batch_size=32, splits=4, seed=0)
    assert padded(list(split)) < 0.5 * padded(list(plain))


def test_the_order_depends_only_on_seed_and_epoch():
    lengths = _lengths()
    first = SortedMicroBatches(lengths, 16, 2, seed=5)
    again = SortedMicroBatches(lengths, 16, 2, seed=5)
    first.set_epoch(2)
    again.set_epoch(2)
    assert list(first) == list(again)
    again.set_epoch(3)
    assert list(first) != list(again)


CASES = [(32, "cpu", 4), (16, "cpu", 2), (8, "cpu", 1), (4, "cpu", 1), (30, "cpu", 3), (128, "cuda", 4)]


@pytest.mark.parametrize(("batch", "device", "splits"), [*CASES, (32, "cuda", 1)])
def test_micro_batch_count(batch, device, splits):
    assert micro_batches(batch, device) == splits


def test_training_arguments_keep_the_examples_per_step():
    from bertkit.training.arguments import training_arguments
    from bertkit.training.devices import Placement

    train = TrainSection(batch_size=32, gradient_accumulation=2)
    args = training_arguments(
        train, "/tmp/unused", Placement("cpu", "fp32", False, ""), evaluate=False, selection=None
    )
    assert micro_batch_splits(train, "cpu") == 4
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 32 * 2
    off = TrainSection(batch_size=32, group_by_length=False)
    assert micro_batch_splits(off, "cpu") == 1
