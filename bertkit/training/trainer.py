"""The Transformers Trainer, with bertkit's sorted micro-batches (see sampling.py) or packed rows.

Only `get_train_dataloader` changes, a public method the Trainer documents for
this; everything else (loss, evaluation, checkpoints, Accelerate) is the Trainer's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from transformers import Trainer

from bertkit.training.sampling import SortedMicroBatches

LENGTH_COLUMN = "length"


class BertkitTrainer(Trainer):
    """A Trainer that runs each random batch as length-sorted micro-batches.

    Args:
        micro_batches: how many micro-batches each batch is cut into; the training
            arguments hold the micro-batch size and `gradient_accumulation_steps`
            multiplied by it (see arguments.training_arguments). 1 (or a training set
            without a `length` column) leaves the Trainer's own batches.
        train_collator: batches training features when that differs from evaluation
            (padding-free rows, see packing.py); default the `data_collator`.
    """

    def __init__(self, *args: Any, micro_batches: int = 1, train_collator: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.micro_batches = micro_batches
        self.train_collator = train_collator

    def get_train_dataloader(self) -> Any:
        dataset = self.train_dataset
        columns = getattr(dataset, "column_names", None) or []
        if self.train_collator is not None:
            # The Trainer builds its loader from `data_collator`; training alone gets the other one.
            evaluation, self.data_collator = self.data_collator, self.train_collator
            try:
                return super().get_train_dataloader()
            finally:
                self.data_collator = evaluation
        if self.micro_batches <= 1 or LENGTH_COLUMN not in columns:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        args = self.args
        # The Trainer lowers this from the configured size when auto_find_batch_size
        # retries after running out of memory.
        micro = getattr(self, "_train_batch_size", args.train_batch_size)
        seed = args.data_seed if args.data_seed is not None else args.seed
        sampler = SortedMicroBatches(
            dataset[LENGTH_COLUMN],
            micro * self.micro_batches,
            self.micro_batches,
            seed=seed,
            num_processes=args.world_size,
            process_index=args.process_index,
        )
        workers = args.dataloader_num_workers
        loader = DataLoader(
            dataset.remove_columns(LENGTH_COLUMN) if args.remove_unused_columns else dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers and workers > 0,
            prefetch_factor=args.dataloader_prefetch_factor if workers > 0 else None,
            # Each worker of each process seeds itself apart (masking collators draw from it).
            worker_init_fn=partial(seed_worker, num_workers=workers, rank=args.process_index),
        )
        return own_sharding(self.accelerator.prepare(loader), sampler)


def own_sharding(prepared: Any, sampler: SortedMicroBatches) -> Any:
    """Make Accelerate's batch-sampler shard a pass-through around a rank-aware sampler.

    Under several processes `accelerator.prepare` wraps the batch sampler in
    `BatchSamplerShard`, which would shard the already-sharded batches a second
    time. Transformers neutralises the wrapper the same way for its own rank-aware
    sampler (`BatchRebalanceSampler`). The wrapper also gets the sampler's
    `set_epoch`: on a mid-epoch resume the Trainer reaches the sampler through one
    more wrapper (Accelerate's `skip_first_batches`) and stops at this one.
    """
    wrapper = getattr(prepared, "batch_sampler", None)
    if wrapper is not None and wrapper is not sampler and getattr(wrapper, "batch_sampler", None) is sampler:
        wrapper.num_processes = 1
        wrapper.process_index = 0
        wrapper.set_epoch = sampler.set_epoch
    return prepared
