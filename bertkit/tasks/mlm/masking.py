"""Masking for masked-LM training and evaluation.

Training masks afresh at every batch with Transformers' language-modeling collator
(15% of tokens by default, 80% [MASK] / 10% random / 10% kept; whole-word masking
masks every piece of a word and uses [MASK] only, as that collator does).

Evaluation masks once, with a fixed seed, before the first evaluation: every run
and every baseline model is scored on exactly the same masked positions, so
perplexity and masked-token accuracy are comparable across runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

EVAL_MASK_SEED = 0
_NOT_MODEL_INPUTS = ("length", "documents")


class MlmCollator:
    """Collate masked-LM features: mask unmasked ones, pad pre-masked ones.

    Args:
        tokenizer: the tokenizer (needs a mask token).
        probability: share of tokens (or words) selected for masking.
        whole_word: mask all pieces of a word together.
        pad_to_multiple_of: pad lengths to a multiple of this (tensor cores).
        rows: give the batch as one padding-free row (see training/packing.py): of its
            blocks' document parts where sequences list them in a `documents` column
            (`mlm.attention: document`), else of its sequences; positions count from
            each part's start.
    """

    def __init__(
        self,
        tokenizer: Any,
        probability: float,
        whole_word: bool,
        pad_to_multiple_of: int | None = None,
        rows: bool = False,
    ) -> None:
        from transformers import DataCollatorForLanguageModeling

        self.rows = rows
        self.tokenizer = tokenizer
        self.whole_word = whole_word
        self.pad_to_multiple_of = pad_to_multiple_of
        self.masker = DataCollatorForLanguageModeling(
            tokenizer,
            mlm_probability=probability,
            whole_word_mask=whole_word,
            # Transformers' whole-word masking supports [MASK] replacement only.
            mask_replace_prob=1.0 if whole_word else 0.8,
            random_replace_prob=0.0 if whole_word else 0.1,
            pad_to_multiple_of=pad_to_multiple_of,
        )

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self._masked(features)
        if not self.rows:
            return batch
        return _document_row(batch, [f.get("documents") or [len(f["input_ids"])] for f in features])

    def _masked(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features = [{k: v for k, v in f.items() if k not in _NOT_MODEL_INPUTS} for f in features]
        if "labels" in features[0]:
            return self._pad_premasked(features)
        offsets = None
        if self.whole_word:
            self._pad_offsets(features)
            offsets = [list(f["offset_mapping"]) for f in features]
        return self._at_least_one_mask(self.masker(features), offsets)

    def _at_least_one_mask(self, batch: dict[str, Any], offsets: list[list[Any]] | None) -> dict[str, Any]:
        """Mask one word in every sequence the random draw left without any masked token.

        A sequence (or a whole batch of short ones) with no masked token has no loss:
        the batch's mean loss is then 0/0, a NaN that ends the run. BERT's own data
        builder predicts at least one token per sequence; so does bertkit. The token
        is drawn from the same generator (so it stays reproducible) and replaced by
        the mask token; with whole-word masking, with the rest of its word.
        """
        import torch

        labels, ids = batch["labels"], batch["input_ids"]
        empty = ((labels != -100).sum(dim=1) == 0).nonzero().flatten().tolist()
        if not empty:
            return batch
        special = torch.isin(ids, torch.tensor(self.tokenizer.all_special_ids, device=ids.device))
        for row in empty:
            candidates = (~special[row]).nonzero().flatten()
            if len(candidates) == 0:
                continue  # nothing but special tokens: no word to predict
            pick = int(candidates[torch.randint(len(candidates), (1,), generator=self.masker.generator)])
            for position in _word_of(pick, offsets[row]) if offsets is not None else [pick]:
                labels[row, position] = ids[row, position]
                ids[row, position] = self.tokenizer.mask_token_id
        return batch

    def mask(self, features: list[dict[str, Any]], seed: int) -> dict[str, Any]:
        """Mask one batch with its own seeded generator (deterministic)."""
        import torch

        self.masker.generator = torch.Generator().manual_seed(seed)
        try:
            return self._masked(features)
        finally:
            self.masker.generator = None

    def _pad_offsets(self, features: list[dict[str, Any]]) -> None:
        # The tokenizer pads token ids but not offsets; give them the padded length.
        longest = max(len(f["input_ids"]) for f in features)
        multiple = self.pad_to_multiple_of
        if multiple:
            longest = -(-longest // multiple) * multiple
        for f in features:
            offsets = list(f["offset_mapping"])
            f["offset_mapping"] = offsets + [(0, 0)] * (longest - len(offsets))

    def _pad_premasked(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        labels = [list(f.pop("labels")) for f in features]
        for f in features:
            f.pop("offset_mapping", None)
        batch = self.tokenizer.pad(features, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of)
        width = batch["input_ids"].shape[1]
        batch["labels"] = torch.tensor([row + [-100] * (width - len(row)) for row in labels])
        return batch


def _document_row(batch: dict[str, Any], parts: list[list[int]]) -> dict[str, Any]:
    """A masked, padded batch as one row of its parts (documents, or sequences), each attending to itself."""
    from bertkit.training.packing import PackedCollator

    keys = [key for key in ("input_ids", "token_type_ids", "labels") if key in batch]
    pieces = []
    for row, lengths in enumerate(parts):
        start = 0
        for length in lengths:
            pieces.append({key: batch[key][row, start : start + length].tolist() for key in keys})
            start += length
    return PackedCollator()(pieces)


def _word_of(position: int, offsets: list[Any]) -> list[int]:
    """The positions of the word a token belongs to (its pieces touch: start == previous end)."""
    start = position
    while start > 0 and offsets[start][0] == offsets[start - 1][1] and offsets[start - 1][1] > 0:
        start -= 1
    end = position
    while end + 1 < len(offsets) and offsets[end + 1][0] == offsets[end][1] and offsets[end + 1][1] > 0:
        end += 1
    return list(range(start, end + 1))


def premask(dataset: Dataset, collator: MlmCollator, seed: int = EVAL_MASK_SEED) -> Dataset:
    """Mask an evaluation set once, deterministically; the result carries `labels`."""

    def mask_batch(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        keys = list(batch)
        features = [{k: batch[k][i] for k in keys} for i in range(len(indices))]
        lengths = [len(f["input_ids"]) for f in features]
        masked = collator.mask(features, seed * 1_000_003 + indices[0])
        ids = masked["input_ids"].tolist()
        labels = masked["labels"].tolist()
        return {
            "input_ids": [row[:n] for row, n in zip(ids, lengths, strict=True)],
            "labels": [row[:n] for row, n in zip(labels, lengths, strict=True)],
        }

    return dataset.map(
        mask_batch, batched=True, batch_size=256, with_indices=True, desc="Masking evaluation data"
    )
