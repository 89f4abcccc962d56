"""Train a BERT WordPiece tokenizer, and build BERT configs from size presets.

The tokenizer is trained with the `tokenizers` library, normalised and split the
way BERT's basic tokenizer does (Chinese characters become tokens of their own,
accents stripped when lowercasing), and saved as a standard BertTokenizer folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, RecipeError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# The BERT miniatures (Turc et al., 2019, "Well-Read Students Learn Better") and base.
SIZE_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 128},
    "mini": {"num_hidden_layers": 4, "hidden_size": 256},
    "small": {"num_hidden_layers": 4, "hidden_size": 512},
    "medium": {"num_hidden_layers": 8, "hidden_size": 512},
    "base": {"num_hidden_layers": 12, "hidden_size": 768},
}


def train_wordpiece(
    texts: Iterable[str],
    output: Path,
    *,
    vocab_size: int = 30522,
    lowercase: bool = True,
    min_frequency: int = 2,
    model_max_length: int = 512,
) -> Any:
    """Train a WordPiece vocabulary on `texts` and save a BertTokenizer to `output`.

    Returns:
        The trained transformers BertTokenizer.

    Raises:
        DataError: the texts were too few to learn a vocabulary.
    """
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertTokenizer

    trainer = BertWordPieceTokenizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    trainer.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    vocab = trainer.get_vocab()
    if len(vocab) <= len(SPECIAL_TOKENS):
        raise DataError(
            "the tokenizer learned no vocabulary: the input holds too little text",
            hint="give more text, or lower --min-frequency",
        )
    tokenizer = BertTokenizer(
        vocab=vocab,
        do_lower_case=lowercase,
        strip_accents=lowercase,
        tokenize_chinese_chars=True,
        model_max_length=model_max_length,
    )
    output.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(output))
    return tokenizer


def check_tokenizer_output(output: Path, *, force: bool) -> None:
    """Refuse to write a tokenizer where it would replace something, before any training.

    A model folder's tokenizer matches its embedding matrix: replacing it leaves a
    model that reads ids it was never trained on, with no error, ever.

    Raises:
        UsageError: `output` is a file, holds a model, or holds other files without --force.
    """
    from bertkit.errors import UsageError

    if output.exists() and not output.is_dir():
        raise UsageError(f"{output}: exists and is not a folder", hint="give --output a new folder")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if (output / "config.json").is_file():
        raise UsageError(
            f"{output}: holds a model (config.json); a new tokenizer there would not match its embeddings",
            hint="write the tokenizer to a new folder, e.g. --output my-tokenizer",
        )
    if not force:
        raise UsageError(
            f"{output}: already holds files",
            hint="choose a new folder, or pass --force to replace the tokenizer",
        )


def read_text_files(paths: list[Path]) -> Iterator[str]:
    """Lines of UTF-8 text files, blank ones skipped, for tokenizer training.

    Raises:
        DataError: a missing file or invalid UTF-8 (with the line).
    """
    from bertkit.io.reading import iter_rows

    for path in paths:
        for _, record in iter_rows(path, "txt"):
            yield record["text"]


def scratch_config(size: str | None, overrides: dict[str, Any], tokenizer: Any, max_length: int) -> Any:
    """A BertConfig for a new model: a size preset, then explicit field overrides.

    Heads are hidden/64 and the feed-forward width 4x hidden, as in BERT; the
    vocabulary and special token ids come from the tokenizer.

    Raises:
        RecipeError: an unknown BertConfig field, or inconsistent sizes.
    """
    from transformers import BertConfig

    fields = dict(SIZE_PRESETS[size]) if size else {}
    fields.update(overrides)
    hidden = fields.get("hidden_size", 768)
    fields.setdefault("num_attention_heads", max(hidden // 64, 1))
    fields.setdefault("intermediate_size", hidden * 4)
    fields.setdefault("max_position_embeddings", max(512, max_length))
    valid = set(BertConfig().to_dict())
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise RecipeError(
            f"model.config: unknown BertConfig fields {unknown}",
            hint="use BertConfig field names such as hidden_size, num_hidden_layers, num_attention_heads",
        )
    if hidden % fields["num_attention_heads"]:
        raise RecipeError(
            f"model.config: hidden_size {hidden} is not a multiple of num_attention_heads "
            f"{fields['num_attention_heads']}",
            hint="choose sizes so hidden_size / num_attention_heads is a whole number",
        )
    return BertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        **fields,
    )
