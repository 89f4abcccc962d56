"""Fine-tuning a named-entity recogniser: its sentences windowed and aligned, its model and scores.

The training itself is the orchestrator's (bertkit.training.run); this module is
what NER brings to it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bertkit.console import plural
from bertkit.tasks.base import CardFacts, Prepared
from bertkit.tasks.ner.recipe import NerRecipe
from bertkit.tasks.ner.splits import NerSplits, load_ner_data


def read(recipe: NerRecipe) -> NerSplits:
    """Read every split and decide the tags (see splits.load_ner_data).

    Raises:
        BertkitError: unreadable data or tags, or a train.metric NER does not report.
    """
    from bertkit.tasks.ner.settings import select_metric

    data = load_ner_data(recipe)
    select_metric(recipe, data.tags)  # a bad train.metric fails before any model loads
    return data


def prepare(recipe: NerRecipe, data: NerSplits, tokenizer: Any, placement: Any) -> Prepared:
    """Window and align every split and build the token classifier, its collator and metrics."""
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    from bertkit.console import note
    from bertkit.models import load_model, resolve_model
    from bertkit.tasks.ner.metrics import make_compute_metrics, predicted_ids
    from bertkit.tasks.ner.settings import class_weights, inputs_config, select_metric
    from bertkit.training.arguments import pad_multiple
    from bertkit.training.packing import PackedCollator, padding_free

    spec = data.tags
    notes = list(data.notes)
    label2id = {label: i for i, label in enumerate(spec.labels)}
    datasets, windows = {}, {}
    for split, sentences in data.splits.items():
        datasets[split], windows[split] = _encode(recipe, sentences, tokenizer, label2id, split, notes)
    ref = resolve_model(str(recipe.model.name))
    model, missing = load_model(
        AutoModelForTokenClassification,
        ref,
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
        allow_pickle=recipe.model.allow_pickle,
        num_labels=len(spec.labels),
        id2label=spec.id2label(),
        label2id=label2id,
        ignore_mismatched_sizes=True,
    )
    if any(key.startswith("classifier") for key in missing):
        note(f"{ref.shown}: new token-classification head ({len(spec.labels)} tags), randomly initialised")
    gold = {split: sentences.tags for split, sentences in data.splits.items()}
    weights = class_weights(recipe, datasets["train"]["labels"], len(spec.labels))
    packed = padding_free(recipe.train, model, placement.device, notes)
    return Prepared(
        datasets=datasets,
        model=model,
        model_ref=ref,
        collator=DataCollatorForTokenClassification(
            tokenizer, pad_to_multiple_of=pad_multiple(recipe.train, placement)
        ),
        selection=select_metric(recipe, spec),
        card=_card(spec, ref, data),
        metrics_for=lambda split: make_compute_metrics(windows[split], gold[split], spec.labels),
        preprocess_logits=predicted_ids,
        compute_loss=weighted_token_loss(weights) if weights else None,
        notes=notes,
        config=inputs_config(recipe, spec),
        sorted_batches=not packed,
        train_collator=PackedCollator() if packed else None,
    )


def _encode(
    recipe: NerRecipe, sentences: Any, tokenizer: Any, label2id: dict[str, int], split: str, notes: list[str]
) -> tuple[Any, Any]:
    """One split as a dataset of windows with aligned labels, and the windows themselves."""
    from datasets import Dataset

    from bertkit.tasks.ner.windows import align_labels, make_windows
    from bertkit.training.trainer import LENGTH_COLUMN

    windows = make_windows(tokenizer, sentences.tokens, recipe.data.max_length, recipe.data.overlap)
    columns: dict[str, list[Any]] = {key: [f[key] for f in windows.features] for key in windows.features[0]}
    columns["labels"] = align_labels(windows, sentences.tags, label2id, recipe.tags.align)
    columns[LENGTH_COLUMN] = [len(ids) for ids in columns["input_ids"]]
    line = f"{split}: {plural(len(sentences), 'sentence')} -> {plural(len(windows), 'window')}"
    if windows.windowed:
        line += (
            f"; {plural(windows.windowed, 'sentence')} longer than data.max_length="
            f"{recipe.data.max_length} read in overlapping windows"
        )
    notes.append(line)
    if windows.dropped_words:
        notes.append(
            f"{split}: the tokenizer reads {plural(windows.dropped_words, 'word')} as nothing "
            "(e.g. emoji variation selectors, U+FFFD): tagged O"
        )
    return Dataset.from_dict(columns), windows


def _card(spec: Any, ref: Any, data: NerSplits) -> CardFacts:
    from bertkit.tasks.ner.tagging import entity_counts

    counts: Counter[str] = entity_counts(data.splits["train"])
    sections = ["## Entity types", "", f"{spec.reason}.", ""]
    sections += [f"- `{kind}`: {counts.get(kind, 0):,} training entities" for kind in spec.types] + [""]
    return CardFacts(
        f"A named-entity recogniser for {plural(len(spec.types), 'entity type')}, fine-tuned from "
        f"`{ref.shown}` with bertkit.",
        sections,
        example='model("Angela Merkel visited Paris")',
    )


def weighted_token_loss(weights: list[float]) -> Any:
    """A Trainer `compute_loss_func`: token cross-entropy with per-tag weights, ignoring -100."""
    import torch
    from torch.nn import functional

    from bertkit.tasks.ner.windows import IGNORE

    table = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs["logits"].float()
        flat = labels.reshape(-1)
        total = functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            flat,
            weight=table.to(logits.device),
            ignore_index=IGNORE,
            reduction="sum",
        )
        count = num_items_in_batch if num_items_in_batch is not None else (flat != IGNORE).sum()
        return total / count

    return loss
