"""Sorted micro-batches: the same random batches as plain shuffling, with less padding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bertkit.recipe.base import TrainSection
from bertkit.training.arguments import micro_batch_splits
from bertkit.training.sampling import SortedMicroBatches, micro_batches
from bertkit.training.trainer import own_sharding


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
    from bertkit.devices import Placement
    from bertkit.training.arguments import training_arguments

    train = TrainSection(batch_size=32, gradient_accumulation=2)
    args = training_arguments(
        train, "/tmp/unused", Placement("cpu", "fp32", False, ""), evaluate=False, selection=None
    )
    assert micro_batch_splits(train, "cpu") == 4
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 32 * 2
    off = TrainSection(batch_size=32, group_by_length=False)
    assert micro_batch_splits(off, "cpu") == 1


# --------------------------------------------------------------------------- several processes


def _ranks(lengths, batch_size, splits, processes, epoch=0, seed=3):
    samplers = [
        SortedMicroBatches(
            lengths, batch_size, splits, seed=seed, num_processes=processes, process_index=rank
        )
        for rank in range(processes)
    ]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return samplers


@pytest.mark.parametrize("processes", [1, 2, 3])
@pytest.mark.parametrize("n", [96, 100, 103, 7])
def test_processes_share_each_global_batch_and_every_example_once(processes, n):
    lengths = _lengths(n)
    samplers = _ranks(lengths, batch_size=16, splits=2, processes=processes, epoch=1)
    per_rank = [list(s) for s in samplers]
    # Every process runs the same number of micro-batches (so the same optimizer steps).
    assert {len(batches) for batches in per_rank} == {len(samplers[0])}
    assert all(len(batches) == len(s) for batches, s in zip(per_rank, samplers, strict=True))
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen))  # no example twice in an epoch, across processes
    assert len(seen) == n - samplers[0].left_out
    assert samplers[0].left_out <= processes - 1
    # Step k of W processes holds the examples of step k of one process with a W x batch.
    single = SortedMicroBatches(lengths, 16 * processes, 2 * processes, seed=3)
    single.set_epoch(1)
    single_steps = [
        sum(list(single)[i : i + 2 * processes], []) for i in range(0, len(single), 2 * processes)
    ]
    steps = [
        sorted(i for batches in per_rank for batch in batches[k : k + 2] for i in batch)
        for k in range(0, len(per_rank[0]), 2)
    ]
    full = n // (16 * processes)
    assert steps[:full] == [sorted(step) for step in single_steps[:full]]


def test_each_process_gets_an_equal_share_of_every_length():
    lengths = _lengths(96)
    samplers = _ranks(lengths, batch_size=16, splits=2, processes=3)
    means = [np.mean([lengths[i] for batch in s for i in batch]) for s in samplers]
    assert max(means) - min(means) < 3  # dealt like cards, not cut into short and long thirds


def test_one_process_is_unchanged_by_the_rank_logic():
    lengths = _lengths()
    assert list(SortedMicroBatches(lengths, 16, 4, seed=9)) == list(
        SortedMicroBatches(lengths, 16, 4, seed=9, num_processes=1, process_index=0)
    )


def _accelerate_shard(sampler, processes, rank):
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import DataLoader

    shard = BatchSamplerShard(sampler, num_processes=processes, process_index=rank)
    return DataLoader(list(range(len(sampler.lengths))), batch_sampler=shard)


@pytest.mark.parametrize("processes", [2, 3])
def test_accelerates_shard_wrapper_passes_the_batches_through(processes):
    lengths = _lengths(100)
    for rank, sampler in enumerate(_ranks(lengths, batch_size=16, splits=2, processes=processes)):
        wrapped = _accelerate_shard(sampler, processes, rank)
        # Left as Accelerate makes it, the wrapper shards a second time and loses batches.
        assert list(wrapped.batch_sampler) != list(sampler)
        own_sharding(wrapped, sampler)
        assert list(wrapped.batch_sampler) == list(sampler)
        assert len(wrapped.batch_sampler) == len(sampler)


def test_a_resumed_epoch_reaches_the_sampler_through_every_wrapper():
    from accelerate.data_loader import SkipBatchSampler

    lengths = _lengths(100)
    sampler = _ranks(lengths, batch_size=16, splits=2, processes=2)[1]
    wrapped = own_sharding(_accelerate_shard(sampler, 2, 1), sampler)
    # What the Trainer does on a mid-epoch resume: skip the batches done, then set the epoch
    # on the sampler beneath the skipping wrapper (here, Accelerate's shard wrapper).
    skipping = SkipBatchSampler(wrapped.batch_sampler, skip_batches=3)
    skipping.batch_sampler.set_epoch(2)
    expected = _ranks(lengths, batch_size=16, splits=2, processes=2, epoch=2)[1]
    assert list(skipping) == list(expected)[3:]


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_sorted_micro_batches_make_the_update_one_batch_makes(
    tmp_path, tiny_model_dir, tiny_sentiment_files, task
):
    """One optimizer step on a batch of 16, run as two sorted micro-batches of 8 with accumulated
    gradients (or, for NER, as one padding-free row), has the loss and gradient norm of the
    same 16 examples in one padded batch, and leaves the same weights.

    Without dropout, only the split differs; each micro-batch's mean loss is halved by the
    accumulation, so the gradient is the batch mean either way. (AdamW's first step hides a
    wrongly scaled gradient in the weights; the logged gradient norm does not.) (For NER the loss is a mean
    over labelled tokens, which two micro-batches of unequal token counts weigh slightly
    differently: the tolerance covers it.)
    """
    import yaml
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from bertkit.recipe import load_recipe
    from bertkit.training.run import train_recipe

    model = tmp_path / "model"
    config = BertConfig.from_pretrained(tiny_model_dir)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    BertForMaskedLM.from_pretrained(tiny_model_dir, config=config).save_pretrained(model)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(model)
    if task == "ner":
        lines = [r.split(",")[0] for r in (tiny_sentiment_files / "train.csv").read_text().splitlines()[1:]]
        conll = "\n\n".join(
            "\n".join(f"{w}\t{'B-X' if w in ('film', 'food', 'book') else 'O'}" for w in line.split())
            for line in lines
        )
        (tmp_path / "train.conll").write_text(conll + "\n", encoding="utf-8")
        data = {"train": str(tmp_path / "train.conll")}
    else:
        data = {"train": str(tiny_sentiment_files / "train.csv")}
    weights, logged = {}, {}
    for grouped in (True, False):
        recipe = {
            "task": task,
            "model": {"name": str(model)},
            "data": data,
            "train": {"max_steps": 1, "batch_size": 16, "learning_rate": 0.01, "warmup": 0, "seed": 3,
                      "group_by_length": grouped},
            "output": {"root": str(tmp_path / "runs"), "dir": str(tmp_path / f"run-{grouped}")},
        }  # fmt: skip
        path = tmp_path / f"{grouped}.yaml"
        path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
        result = train_recipe(load_recipe(path))
        weights[grouped] = load_file(str(result.run.model_dir / "model.safetensors"))
        records = [json.loads(line) for line in (result.run.path / "log.jsonl").read_text().splitlines()]
        logged[grouped] = next(r for r in records if r.get("step") == 1 and "grad_norm" in r)
    assert micro_batches(16, "cpu") == 2
    for key in ("loss", "grad_norm"):
        assert logged[True][key] == pytest.approx(
            logged[False][key], rel=1e-4 if task == "classification" else 2e-2
        )
    tolerance = 1e-5 if task == "classification" else 2e-3
    for name, tensor in weights[True].items():
        torch.testing.assert_close(tensor, weights[False][name], rtol=0, atol=tolerance, msg=name)
