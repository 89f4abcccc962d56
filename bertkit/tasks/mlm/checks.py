"""Checks of masked-LM corpora: documents, duplicates, leakage, tokens and sequences."""

from __future__ import annotations

from typing import Any

from bertkit.checks.report import (
    SAMPLE_ROWS,
    TRUNCATION_SHARE,
    CheckReport,
    SplitStats,
    TokenStats,
    iter_texts,
    plural,
    short,
)
from bertkit.errors import DataError
from bertkit.tasks.mlm.recipe import MlmRecipe as Recipe


def check_data(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    from bertkit.tasks.mlm.corpus import load_corpus

    data = recipe.data
    corpora: dict[str, Any] = {}
    for split in ("train", "validation"):
        source = getattr(data, split)
        if source is None:
            continue
        try:
            corpus = load_corpus(source, data, recipe.mlm)
        except DataError as exc:
            report.add("error", "unreadable", exc, split=split)
            continue
        corpora[split] = corpus.select(range(min(limit, len(corpus)))) if limit else corpus
        report.splits[split] = SplitStats(split, source.describe(), len(corpus), len(corpora[split]))
    if data.test is not None:
        report.add(
            "warning",
            "unused_split",
            "data.test: pretraining does not use test data",
            hint="remove it, or score it later with `bertkit eval --data FILE`",
        )
    if "train" in corpora and "validation" not in corpora and data.validation_split:
        parts = corpora["train"].train_test_split(test_size=data.validation_split, seed=recipe.train.seed)
        corpora["train"], corpora["validation"] = parts["train"], parts["test"]
        report.splits["train"].used = len(parts["train"])
        source = f"{report.splits['train'].source} ({data.validation_split:.0%} held out from train)"
        report.splits["validation"] = SplitStats("validation", source, len(parts["test"]), len(parts["test"]))

    samples = {}
    for split, corpus in corpora.items():
        sample = corpus.select(range(SAMPLE_ROWS)) if len(corpus) > SAMPLE_ROWS else corpus
        if len(sample) < len(corpus):
            report.notes.append(
                f"{split}: duplicates and tokens counted in the first {SAMPLE_ROWS:,} "
                f"of {len(corpus):,} documents"
            )
        samples[split] = sample
        _corpus_duplicates(split, sample, report)
    if "train" in samples and "validation" in samples:
        _corpus_leakage(samples["train"], samples["validation"], report)
    if tokenizer is not None:
        for split, sample in samples.items():
            _corpus_sequences(split, sample, len(corpora[split]), tokenizer, recipe, report)


def _corpus_duplicates(split: str, sample: Any, report: CheckReport) -> None:
    seen: set[int] = set()
    repeats = 0
    example = None
    for text in iter_texts(sample):
        key = hash(text.strip())
        if key in seen:
            repeats += 1
            example = example or text
        seen.add(key)
    report.splits[split].duplicates = repeats
    if repeats:
        report.add(
            "warning",
            "duplicates",
            f"{report.splits[split].source}: {repeats:,} documents "
            f"({repeats / max(len(sample), 1):.1%}) repeat an earlier one, e.g. {short(example or '')!r}",
            hint="deduplicate the corpus: repeated text is memorised rather than learned from",
            split=split,
        )


def _corpus_leakage(train: Any, validation: Any, report: CheckReport) -> None:
    seen = {hash(text.strip()) for text in iter_texts(train)}
    leaked = [text for text in iter_texts(validation) if hash(text.strip()) in seen]
    report.splits["validation"].in_train = len(leaked)
    if leaked:
        report.add(
            "warning",
            "leakage",
            f"{report.splits['validation'].source}: {len(leaked):,} of {plural(len(validation), 'document')} "
            f"also {'appears' if len(leaked) == 1 else 'appear'} in train, e.g. {short(leaked[0])!r}",
            hint="remove them from one side: validation loss on seen text is too optimistic",
            split="validation",
        )


def _corpus_sequences(
    split: str, sample: Any, total: int, tokenizer: Any, recipe: Recipe, report: CheckReport
) -> None:
    import numpy as np

    from bertkit.tasks.mlm.corpus import build_sequences

    built, seq = build_sequences(
        sample, tokenizer, recipe.mlm, recipe.data.max_length, seed=recipe.train.seed
    )
    stats = report.splits[split]
    lengths = np.asarray(built["length"], dtype=np.int64) if len(built) else np.zeros(0, dtype=np.int64)
    stats.tokens = TokenStats.of(lengths, seq.truncated_documents)
    stats.tokens.counted = seq.documents
    scale = total / max(len(sample), 1)
    stats.sequences = {
        "documents": seq.documents,
        "corpus_tokens": seq.corpus_tokens,
        "sequences": seq.sequences,
        "used_tokens": seq.used_tokens,
        "dropped_tokens": seq.dropped_tokens,
        "truncated_documents": seq.truncated_documents,
    }
    if scale > 1:
        stats.sequences["estimated_corpus_tokens"] = round(seq.corpus_tokens * scale)
        stats.sequences["estimated_sequences"] = round(seq.sequences * scale)
    if len(built) == 0:
        report.add(
            "error",
            "no_sequences",
            f"{stats.source}: no sequences can be built from the text",
            hint="check the corpus has text the tokenizer can read",
            split=split,
        )
    elif seq.documents and seq.truncated_documents / seq.documents > TRUNCATION_SHARE:
        report.add(
            "warning",
            "truncation",
            f"{stats.source}: {seq.truncated_documents:,} of {seq.documents:,} documents are longer than "
            f"data.max_length={recipe.data.max_length} and lose {seq.dropped_tokens:,} tokens",
            hint="use mlm.sequences: packing (no token is dropped), or raise data.max_length",
            split=split,
        )
