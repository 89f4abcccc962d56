"""Fine-tuning a classifier: its data read and decided, then tokenized, with its model and metrics.

The training itself is the orchestrator's (bertkit.training.run); this module is
what classification brings to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bertkit.tasks.base import CardFacts, Prepared
from bertkit.tasks.classification.data import ClassificationData, load_classification_data
from bertkit.tasks.classification.recipe import ClassificationRecipe
from bertkit.tasks.classification.settings import resolve_class_weights, select_metric
from bertkit.training.arguments import Selection


@dataclass
class ReadData:
    """The read classification data and what it decided (labels, selection metric, weights)."""

    data: ClassificationData
    selection: Selection
    class_weights: list[float] | None


def read(recipe: ClassificationRecipe) -> ReadData:
    """Read every split, decide the labels, and check the settings that depend on them.

    Raises:
        BertkitError: unreadable data, bad labels, or a train.metric / class weights the
            labels cannot take.
    """
    data = load_classification_data(recipe.data, recipe.labels, seed=recipe.train.seed)
    weights = resolve_class_weights(recipe, data)
    selection = select_metric(recipe, data)  # a train.metric the data cannot give fails now
    return ReadData(data, selection, weights)


def prepare(recipe: ClassificationRecipe, read: ReadData, tokenizer: Any, placement: Any) -> Prepared:
    """Tokenize every split and build the classifier, its collator and metrics."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    from bertkit.console import note
    from bertkit.models import load_model, resolve_model
    from bertkit.tasks.classification.inference import inputs_config
    from bertkit.tasks.classification.metrics import make_compute_metrics
    from bertkit.tasks.classification.packed import use_packed_classifier
    from bertkit.training.arguments import pad_multiple
    from bertkit.training.packing import PackedCollator, padding_free

    data, spec = read.data, read.data.labels
    notes = [*data.notes, spec.reason]
    datasets = _tokenize(recipe, data, tokenizer, notes)
    ref = resolve_model(str(recipe.model.name))
    model, missing = load_model(
        AutoModelForSequenceClassification,
        ref,
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
        allow_pickle=recipe.model.allow_pickle,
        num_labels=spec.num_labels,
        id2label=spec.id2label(),
        label2id={name: i for i, name in spec.id2label().items()},
        problem_type=spec.problem_type,
        ignore_mismatched_sizes=True,
    )
    if any(key.startswith("classifier") for key in missing):
        outputs = f"{spec.num_labels} output{'s' if spec.num_labels > 1 else ''}"
        note(f"{ref.shown}: new classification head ({outputs}), randomly initialised")
    packed = padding_free(recipe.train, model, placement.device, notes)
    if packed:
        use_packed_classifier(model)
    return Prepared(
        datasets=datasets,
        model=model,
        model_ref=ref,
        collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(recipe.train, placement)),
        selection=read.selection,
        card=_card(recipe, spec, ref),
        compute_metrics=make_compute_metrics(
            spec.problem, threshold=recipe.labels.threshold, label_names=list(spec.names) or None
        ),
        compute_loss=weighted_loss(read.class_weights) if read.class_weights else None,
        notes=notes,
        config=inputs_config(recipe),  # predict as trained, from any copy of the model
        sorted_batches=not packed,
        train_collator=PackedCollator(per_example=("labels",)) if packed else None,
    )


def _card(recipe: ClassificationRecipe, spec: Any, ref: Any) -> CardFacts:
    kind = {"single": "single-label", "multi": "multi-label", "regression": "regression"}[spec.problem]
    count = f" over {len(spec.names)} labels" if spec.names else ""
    sections = []
    if spec.names:
        sections = ["## Labels", "", f"{spec.reason}.", ""]
        sections += [f"- `{i}`: {name}" for i, name in enumerate(spec.names)] + [""]
    return CardFacts(
        f"A {kind} text classifier{count}, fine-tuned from `{ref.shown}` with bertkit.", sections
    )


def _tokenize(
    recipe: ClassificationRecipe, data: ClassificationData, tokenizer: Any, notes: list[str]
) -> dict[str, Any]:
    """Every split tokenized (or read from the cache), with its truncation share noted."""
    from bertkit.tokenization import tokenize_texts

    tokenized = {}
    for split in data.tables:
        texts, pairs = data.texts(split, recipe.data)
        result = tokenize_texts(
            tokenizer, texts, pairs, data.targets[split], max_length=recipe.data.max_length
        )
        tokenized[split] = result.dataset
        cached = " (cached)" if result.cached else ""
        notes.append(
            f"{split}: {result.truncated:,} of {len(result.dataset):,} examples "
            f"({result.truncated_share:.1%}) truncated at {recipe.data.max_length} tokens{cached}"
        )
    return tokenized


def weighted_loss(weights: list[float]) -> Any:
    """A Trainer `compute_loss_func`: cross-entropy with per-class weights."""
    import torch
    from torch.nn import functional

    table = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs["logits"].float()
        total = functional.cross_entropy(logits, labels, weight=table.to(logits.device), reduction="sum")
        # The Trainer expects the loss normalised by the items in the whole
        # accumulated batch when it passes that count (gradient accumulation).
        count = num_items_in_batch if num_items_in_batch is not None else labels.numel()
        return total / count

    return loss
