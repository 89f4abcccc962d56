"""Masked-LM pretraining: the corpus read, a tokenizer (trained if asked), sequences, the model.

The training itself is the orchestrator's (bertkit.training.run); this module is
what masked-LM pretraining brings to it.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from bertkit.console import is_main_process, note
from bertkit.errors import DataError, ModelError, RecipeError
from bertkit.runs import RunDirectory
from bertkit.tasks.base import CardFacts, Prepared
from bertkit.tasks.mlm.corpus import build_sequences, load_corpus
from bertkit.tasks.mlm.recipe import MlmRecipe as Recipe
from bertkit.training.arguments import Selection

MAIN_METRIC = "loss"


def read(recipe: Recipe) -> dict[str, Any]:
    """The corpus splits (train, and validation held out or given)."""
    return _load_splits(recipe)


def _load_splits(recipe: Recipe) -> dict[str, Any]:
    data = recipe.data
    limit = data.limit
    splits = {}
    for split in ("train", "validation"):
        source = getattr(data, split)
        if source is not None:
            corpus = load_corpus(source, data, recipe.mlm)
            splits[split] = corpus.select(range(min(limit, len(corpus)))) if limit else corpus
    if "validation" not in splits and data.validation_split:
        parts = splits["train"].train_test_split(test_size=data.validation_split, seed=recipe.train.seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
        note(
            f"validation: {len(parts['test']):,} documents held out from train ({data.validation_split:.0%})"
        )
    return splits


def existing_tokenizer(recipe: Recipe) -> Any:
    """The tokenizer of `model.tokenizer` or `model.name`; it must have a mask token."""
    from bertkit.models import load_tokenizer

    source = recipe.model.tokenizer or recipe.model.name
    tokenizer = load_tokenizer(
        str(source), revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
    )
    if tokenizer.mask_token is None:
        raise ModelError(
            f"{source}: the tokenizer has no mask token, so it cannot be used for masked-LM training",
            hint="use a BERT tokenizer (it has [MASK]) or train one with tokenizer.train: true",
            code="no_mask_token",
        )
    return tokenizer


def tokenizer_for_scratch(recipe: Recipe, train: Any, run: RunDirectory, resuming: bool) -> Any:
    """Train the run's WordPiece tokenizer (once: a resumed run reuses it)."""
    from bertkit.models import load_tokenizer
    from bertkit.tasks.mlm.wordpiece import train_wordpiece
    from bertkit.training.distributed import barrier

    folder = run.path / "tokenizer"
    if resuming and (folder / "tokenizer_config.json").is_file():
        return load_tokenizer(str(folder))
    settings = recipe.tokenizer
    if is_main_process():
        note(
            f"training a WordPiece tokenizer: vocabulary {settings.vocab_size:,}, "
            f"{'uncased' if settings.lowercase else 'cased'}"
        )

        def texts() -> Any:
            for batch in train.iter(batch_size=1000):
                yield from batch["text"]

        train_wordpiece(
            texts(),
            folder,
            vocab_size=settings.vocab_size,
            lowercase=settings.lowercase,
            min_frequency=settings.min_frequency,
            model_max_length=recipe.data.max_length,
        )
    barrier()  # the other processes load what the main one trained
    return load_tokenizer(str(folder))


def prepare(recipe: Recipe, corpus: dict[str, Any], tokenizer: Any, placement: Any) -> Prepared:
    """Build the sequences and the model, and the masking collator and metrics."""
    from bertkit.tasks.mlm.masking import MlmCollator, premask
    from bertkit.training.arguments import pad_multiple

    max_length = recipe.data.max_length
    sequences: dict[str, Any] = {}
    notes: list[str] = []
    recorded = None
    for split, texts in corpus.items():
        built, stats = build_sequences(texts, tokenizer, recipe.mlm, max_length, seed=recipe.train.seed)
        if len(built) == 0:
            raise DataError(f"data.{split}: no sequences could be built", hint="check the corpus has text")
        sequences[split] = built
        notes.append(stats.describe(split))
        if split == "train":
            recorded = {**asdict(stats), "dropped_tokens": stats.dropped_tokens}
    how = "whole words" if recipe.mlm.whole_word else "tokens"
    notes.append(f"masking {recipe.mlm.probability:.0%} of {how}; objective {recipe.mlm.objective}")

    model, ref = _model(recipe, tokenizer)
    nsp = recipe.mlm.objective == "mlm+nsp"
    documents = recipe.mlm.attention == "document"
    rows = documents
    if documents:
        from bertkit.training.packing import packing_supported, use_packed_attention

        why_not = packing_supported(model)
        if why_not:
            raise RecipeError(f"mlm.attention: document: {why_not}", hint="use mlm.attention: block")
        if isinstance(recipe.train.pad_to_multiple_of, int):
            raise RecipeError(
                "train.pad_to_multiple_of: document attention trains on padding-free rows",
                hint="remove train.pad_to_multiple_of, or use mlm.attention: block",
            )
        use_packed_attention(model)
        notes.append("attention stays inside each document of a block (mlm.attention: document)")
    elif not nsp and (recipe.mlm.sequences == "line_by_line" or recipe.train.padding_free is True):
        from bertkit.training.packing import padding_free

        rows = padding_free(recipe.train, model, placement.device, notes)
    if recipe.mlm.prediction != "dense":
        from bertkit.tasks.mlm.sparse import sparse_supported, use_sparse_prediction

        if sparse_supported(model):
            use_sparse_prediction(model)
            notes.append("the output head runs only at masked positions in training (mlm.prediction)")
        elif recipe.mlm.prediction == "sparse":
            raise RecipeError(
                f"mlm.prediction: sparse runs BERT's masked-LM head; {type(model).__name__} has another",
                hint="set mlm.prediction: auto or dense",
            )
        else:
            notes.append(f"{type(model).__name__}: the output head runs at every position (mlm.prediction)")
    collator = MlmCollator(
        tokenizer,
        recipe.mlm.probability,
        recipe.mlm.whole_word,
        pad_to_multiple_of=None if rows else pad_multiple(recipe.train, placement),
        rows=rows,
    )
    if "validation" in sequences:
        sequences["validation"] = premask(sequences["validation"], collator)
    scratch = recipe.model.init == "scratch"
    how = "trained from scratch" if scratch else f"continued from `{ref.shown}`"
    return Prepared(
        datasets=sequences,
        model=model,
        model_ref=ref,
        collator=collator,
        selection=Selection(MAIN_METRIC, greater_is_better=False) if "validation" in sequences else None,
        card=CardFacts(
            f"A BERT masked language model {how} with bertkit.",
            example='model("Paris is the [MASK] of France.")',
        ),
        compute_metrics=masked_lm_metrics,
        preprocess_logits=predicted_tokens,
        label_names=["labels", "next_sentence_label"] if nsp else None,
        keep_columns=True,
        # Packed blocks all have the same length: sorting them into micro-batches saves nothing;
        # padding-free rows have nothing to save.
        sorted_batches=not rows and not (recipe.mlm.sequences == "packing" and not nsp),
        notes=notes,
        # With next-sentence prediction the loss is the sum of both tasks: no perplexity.
        finish_metrics=None if nsp else with_perplexity,
        sequences=recorded,
    )


def _model(recipe: Recipe, tokenizer: Any) -> tuple[Any, Any]:
    """The model to train (continued or from scratch) and where it came from."""
    from transformers import AutoModelForMaskedLM, BertForMaskedLM, BertForPreTraining

    from bertkit.models import ModelRef, load_model, resolve_model
    from bertkit.tasks.mlm.wordpiece import scratch_config

    nsp = recipe.mlm.objective == "mlm+nsp"
    if recipe.model.init == "scratch":
        config = scratch_config(recipe.model.size, recipe.model.config, tokenizer, recipe.data.max_length)
        model = BertForPreTraining(config) if nsp else BertForMaskedLM(config)
        size = f"{recipe.model.size} " if recipe.model.size else ""
        params = sum(p.numel() for p in model.parameters())
        note(
            f"new {size}BERT from scratch: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
            f"{params / 1e6:.1f}M parameters"
        )
        return model, ModelRef("scratch", f"scratch ({recipe.model.size or 'custom'})", True)

    ref = resolve_model(str(recipe.model.name))
    model, missing = load_model(
        BertForPreTraining if nsp else AutoModelForMaskedLM,
        ref,
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
        allow_pickle=recipe.model.allow_pickle,
    )
    heads = sorted({key.split(".")[0] for key in missing if not key.startswith("bert.")})
    if heads:
        note(f"{ref.shown} has no pretraining head ({', '.join(heads)}): it starts from random weights")
    if len(tokenizer) > model.config.vocab_size:
        note(f"growing the vocabulary from {model.config.vocab_size:,} to {len(tokenizer):,} tokens")
        model.resize_token_embeddings(len(tokenizer))
    return model, ref


def predicted_tokens(logits: Any, labels: Any) -> Any:
    """Keep only argmax predictions (not vocabulary-sized logits) for evaluation."""
    if isinstance(logits, tuple):  # BertForPreTraining: (token logits, next-sentence logits)
        return tuple(item.argmax(dim=-1) for item in logits[:2])
    return logits.argmax(dim=-1)


def masked_lm_metrics(prediction: Any) -> dict[str, float]:
    """Accuracy on masked positions (and on next-sentence labels when present)."""
    predictions, labels = prediction.predictions, prediction.label_ids
    nsp_predictions = nsp_labels = None
    if isinstance(predictions, tuple):
        predictions, nsp_predictions = predictions[0], predictions[1]
    if isinstance(labels, tuple):
        labels, nsp_labels = labels[0], labels[1]
    mask = labels != -100
    metrics = {"masked_accuracy": float((predictions[mask] == labels[mask]).mean()) if mask.any() else 0.0}
    if nsp_predictions is not None and nsp_labels is not None:
        metrics["nsp_accuracy"] = float((np.asarray(nsp_predictions) == np.asarray(nsp_labels)).mean())
    return metrics


def with_perplexity(metrics: dict[str, float]) -> dict[str, float]:
    """Add perplexity, exp(loss), to evaluation metrics (loss is the masked-token loss)."""
    if "loss" in metrics:
        metrics["perplexity"] = math.exp(min(metrics["loss"], 50.0))
    return metrics
