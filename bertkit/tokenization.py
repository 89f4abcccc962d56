"""Tokenize texts once: truncation counted and reported, results cached on disk.

The cache key covers everything that changes the result (the texts, pairs and
targets, the tokenizer's full definition, `max_length`), so a rerun with the same
data and settings loads the tokenized set instead of tokenizing again, and any
change to any of them tokenizes afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

_FORMAT = 1  # bump when the stored layout changes


@dataclass(frozen=True)
class TokenizedSplit:
    """A tokenized split and what tokenizing it did.

    Attributes:
        dataset: columns input_ids, attention_mask, token_type_ids (BERT), length, labels.
        truncated: how many examples were longer than max_length and were cut.
        cached: whether it was loaded from the cache rather than tokenized now.
    """

    dataset: Dataset
    truncated: int
    cached: bool

    @property
    def truncated_share(self) -> float:
        return self.truncated / max(len(self.dataset), 1)


# WordPiece reads at most 100 characters of a word (a longer one is a single [UNK]),
# so no token spans more than about 100 characters, and text past max_length x 100
# characters lies past max_length tokens. Cutting it off before tokenizing keeps one
# 10 MB line from taking gigabytes (a tokenizer holds every token of its input, with
# offsets, before it truncates).
CHARS_PER_TOKEN = 100


def clip(text: str, max_length: int) -> str:
    """`text` without what lies surely beyond `max_length` tokens (see CHARS_PER_TOKEN)."""
    limit = max_length * CHARS_PER_TOKEN
    return text if len(text) <= limit else text[:limit]


def cache_root() -> Path:
    """Where bertkit caches derived data: $BERTKIT_CACHE, else the user cache folder."""
    if os.environ.get("BERTKIT_CACHE"):
        return Path(os.environ["BERTKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "bertkit"


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides how the tokenizer splits and encodes text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # Truncation and padding are call settings the tokenizer remembers from its
        # last call, not part of how it splits text; the cache key covers max_length.
        state.pop("truncation", None)
        state.pop("padding", None)
        definition = json.dumps(state, sort_keys=True)
    else:
        definition = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    settings = f"{type(tokenizer).__name__}|{tokenizer.padding_side}|{tokenizer.truncation_side}"
    return hashlib.sha256((definition + settings).encode()).hexdigest()


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    pairs: list[str] | None,
    targets: list[Any] | None,
    *,
    max_length: int,
    use_cache: bool = True,
) -> TokenizedSplit:
    """Tokenize texts (and pairs) with truncation to max_length, with a disk cache.

    Args:
        tokenizer: the model's tokenizer.
        texts: first segment of every example.
        pairs: second segment (sentence-pair tasks), or None.
        targets: label ids / vectors / floats, stored as `labels`; None for unlabelled.
        max_length: longest sequence in tokens, special tokens included.
        use_cache: read and write the on-disk cache.
    """
    from datasets import Dataset, load_from_disk

    key = _cache_key(tokenizer, texts, pairs, targets, max_length)
    folder = cache_root() / "tokenized" / key
    if use_cache and (folder / "stats.json").is_file():
        stats = json.loads((folder / "stats.json").read_text())
        return TokenizedSplit(load_from_disk(str(folder / "data")), stats["truncated"], True)

    columns: dict[str, list[Any]] = {"text": [clip(t, max_length) for t in texts]}
    if pairs is not None:
        columns["text_pair"] = [clip(t, max_length) for t in pairs]
    if targets is not None:
        columns["labels"] = targets
    raw = Dataset.from_dict(columns)

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        second = batch.get("text_pair")
        full = tokenizer(batch["text"], second, add_special_tokens=True, truncation=False, verbose=False)
        encoded = tokenizer(batch["text"], second, truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["truncated"] = [len(ids) > max_length for ids in full["input_ids"]]
        return dict(encoded)

    dataset = raw.map(
        encode,
        batched=True,
        batch_size=1000,
        remove_columns=[c for c in ("text", "text_pair") if c in columns],
        desc="Tokenizing",
    )
    truncated = int(sum(dataset["truncated"]))
    dataset = dataset.remove_columns("truncated")
    if use_cache:
        _store(folder, dataset, {"truncated": truncated, "rows": len(dataset), "format": _FORMAT})
    return TokenizedSplit(dataset, truncated, False)


def _cache_key(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    pairs: list[str] | None,
    targets: list[Any] | None,
    max_length: int,
) -> str:
    digest = hashlib.sha256()
    digest.update(f"{_FORMAT}|{max_length}|{tokenizer_fingerprint(tokenizer)}".encode())
    for name, values in (("texts", texts), ("pairs", pairs), ("targets", targets)):
        digest.update(f"|{name}:".encode())
        if values is not None:
            digest.update(json.dumps(values, ensure_ascii=False).encode())
    return digest.hexdigest()[:32]


def _store(folder: Path, dataset: Dataset, stats: dict[str, Any]) -> None:
    """Write the cache entry into a temporary folder, then move it into place."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        dataset.save_to_disk(str(staging / "data"))
        (staging / "stats.json").write_text(json.dumps(stats))
        try:
            os.rename(staging, folder)
        except OSError:  # another process stored the same entry first
            shutil.rmtree(staging, ignore_errors=True)
    except OSError:
        pass  # a cache that cannot be written only costs time
