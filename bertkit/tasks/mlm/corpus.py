"""Raw text corpora for masked-LM pretraining, and the sequences built from them.

Corpora are read with `datasets` (memory-mapped Arrow, cached by content and
settings), never held as Python lists, so they may be larger than RAM. Sequences
are built one of three ways:

- packing (default): documents are concatenated with [SEP] between them and cut
  into full `max_length` blocks. The last block of each batch of documents is kept
  (shorter), so no corpus token is dropped, and the counts are reported.
- line_by_line: one document per sequence, truncated to `max_length` (the number
  of truncated documents and dropped tokens is reported).
- next-sentence pairs (objective `mlm+nsp`): segment A and, half the time, the
  segment that follows it, else a random one, as in the original BERT recipe.

With whole-word masking each token carries word boundaries as synthetic offsets,
which Transformers' language-modeling collator reads: WordPiece continuations
(`##`) join the word before them, each Chinese character is a word of its own
(as BERT's basic tokenizer splits them), or a given segmentation decides.
"""

from __future__ import annotations

import contextlib
import glob
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertkit.console import plural
from bertkit.errors import DataError, first_line
from bertkit.io.reading import EXTENSIONS, file_format, iter_rows
from bertkit.recipe.base import DataSource
from bertkit.tasks.mlm.recipe import MlmData as DataSection
from bertkit.tasks.mlm.recipe import MlmSection

if TYPE_CHECKING:
    from datasets import Dataset

_MAP_BATCH = 1000
_BUILDERS = {"txt": "text", "csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}


@dataclass(frozen=True)
class SequenceStats:
    """What building sequences from a corpus did, for the user and the run record."""

    documents: int
    corpus_tokens: int
    used_tokens: int
    sequences: int
    padded_positions: int
    truncated_documents: int

    @property
    def dropped_tokens(self) -> int:
        return self.corpus_tokens - self.used_tokens

    def describe(self, split: str) -> str:
        dropped = (
            f", {plural(self.dropped_tokens, 'token')} cut from "
            f"{plural(self.truncated_documents, 'long document')}"
            if self.dropped_tokens
            else ", no token dropped"
        )
        return (
            f"{split}: {plural(self.documents, 'document')}, {plural(self.corpus_tokens, 'token')} -> "
            f"{plural(self.sequences, 'sequence')} using {plural(self.used_tokens, 'token')}{dropped}"
        )


def corpus_files(source: DataSource) -> list[str]:
    """The files a local source names: a file, every data file of a folder, or a glob.

    Raises:
        DataError: nothing matches.
    """
    path = Path(str(source.path))
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    elif any(ch in str(path) for ch in "*?["):
        files = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    else:
        files = [str(path)] if path.is_file() else []
    if not files:
        raise DataError(
            f"{path}: no corpus files found",
            hint="give a text file, a folder of .txt/.jsonl/.csv files, or a glob like corpus/*.txt",
        )
    return files


def load_corpus(source: DataSource, data: DataSection, mlm: MlmSection) -> Dataset:
    """Read one corpus split as a Dataset with a single `text` column.

    Plain text is one document per line, or per blank-line separated paragraph
    (`mlm.documents: paragraphs`); tabular files use the `data.text` column.

    Raises:
        DataError: no files, unreadable files, mixed formats, or a missing text column.
    """
    import datasets

    column = data.text_columns[0]
    if source.hub is not None:
        try:
            dataset = datasets.load_dataset(
                source.hub, source.config, split=source.split, revision=source.revision
            )
        except Exception as exc:  # datasets raises many types for "not reachable/not found"
            raise DataError(
                f"{source.describe()}: cannot load Hub dataset: {first_line(exc)}",
                hint="check the dataset id and split, your network (HF_HUB_OFFLINE), or use local files",
            ) from exc
        return _text_only(dataset, column, source.describe())

    files = corpus_files(source)
    formats = {file_format(Path(f), source.format) for f in files}
    if len(formats) > 1:
        raise DataError(
            f"{source.path}: mixes file formats {sorted(formats)}",
            hint="point at files of one format (e.g. a glob corpus/*.txt)",
        )
    fmt = formats.pop()
    kwargs: dict[str, Any] = {}
    if fmt == "txt":
        kwargs["sample_by"] = "paragraph" if mlm.documents == "paragraphs" else "line"
    elif fmt == "tsv":
        kwargs.update(sep="\t", quoting=3, keep_default_na=False)  # 3: csv.QUOTE_NONE
    elif fmt == "csv":
        kwargs["keep_default_na"] = False
    try:
        with _datasets_logging_off():
            dataset = datasets.load_dataset(_BUILDERS[fmt], data_files=files, split="train", **kwargs)
    except Exception as exc:
        # datasets says only "An error occurred while generating the dataset": read the
        # files again with bertkit's own reader, which names the file and line.
        _raise_first_bad_row(files, fmt, column)
        raise DataError(
            f"{source.path}: cannot read the corpus: {first_line(_root_cause(exc))}",
            hint="check the files are UTF-8 text of the format their extension says",
        ) from exc
    if fmt == "txt":
        column = "text"
    dataset = _text_only(dataset, column, str(source.path))
    # Blank lines carry no text to learn from (in paragraph mode they separate documents).
    dataset = dataset.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True)
    if len(dataset) == 0:
        raise DataError(f"{source.path}: the corpus holds no text", hint="check the files are not empty")
    return dataset


@contextlib.contextmanager
def _datasets_logging_off() -> Iterator[None]:
    """Silence datasets' own log lines about a failed read: bertkit reports it better."""
    from datasets.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logging.set_verbosity(previous)


def _raise_first_bad_row(files: list[str], fmt: str, column: str) -> None:
    """Raise the DataError of the first undecodable or malformed row in `files`, if any."""
    for name in files:
        for _ in iter_rows(Path(name), fmt, text_column=column):
            pass


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (the one that says what actually went wrong)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or exc.__context__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _text_only(dataset: Dataset, column: str, name: str) -> Dataset:
    if column not in dataset.column_names:
        raise DataError(
            f"{name}: no column {column!r}; columns are: {', '.join(dataset.column_names)}",
            hint="set data.text to the column that holds the text",
        )
    extra = [c for c in dataset.column_names if c != column]
    dataset = dataset.remove_columns(extra)
    return dataset.rename_column(column, "text") if column != "text" else dataset


def build_sequences(
    dataset: Dataset,
    tokenizer: Any,
    mlm: MlmSection,
    max_length: int,
    *,
    seed: int,
) -> tuple[Dataset, SequenceStats]:
    """Tokenize a text corpus and build training sequences (see the module docstring).

    Returns:
        The sequences (input_ids, token_type_ids, attention_mask, maybe offset_mapping
        and next_sentence_label) and counts of what was used.
    """
    builder = (
        _nsp_batch
        if mlm.objective == "mlm+nsp"
        else (_packed_batch if mlm.sequences == "packing" else _line_batch)
    )
    settings = {
        "tokenizer": tokenizer,
        "max_length": max_length,
        "whole_word": mlm.whole_word,
        "pre_segmented": mlm.word_segmentation == "whitespace",
        "seed": seed,
    }
    if builder is _packed_batch and mlm.attention == "document":
        settings["documents"] = True
    sequences = dataset.map(
        builder,
        batched=True,
        batch_size=_MAP_BATCH,
        with_indices=True,
        remove_columns=dataset.column_names,
        fn_kwargs=settings,
        desc="Building sequences",
    )
    documents = len(dataset)
    corpus_tokens = int(sum(sequences["doc_tokens"]))
    used = int(sum(sequences["used_tokens"]))
    truncated = int(sum(sequences["truncated_docs"]))
    padded = sum(max_length - n for n in sequences["length"])
    sequences = sequences.remove_columns(["doc_tokens", "used_tokens", "truncated_docs"])
    stats = SequenceStats(documents, corpus_tokens, used, len(sequences), padded, truncated)
    return sequences, stats


def _encode_documents(tokenizer: Any, texts: list[str], pre_segmented: bool, whole_word: bool) -> list[Any]:
    """Token ids per document, and per token its word index when whole words are masked."""
    if pre_segmented:
        encoded = tokenizer([t.split() for t in texts], is_split_into_words=True, add_special_tokens=False)
    else:
        encoded = tokenizer(texts, add_special_tokens=False)
    if not whole_word:
        return [(ids, None) for ids in encoded["input_ids"]]
    return [(ids, encoded.word_ids(i)) for i, ids in enumerate(encoded["input_ids"])]


def _boundary_offsets(word_ids: list[int | None]) -> list[tuple[int, int]]:
    """Synthetic character offsets whose gaps mark word starts (what the collator reads).

    A token that continues the previous token's word starts where that one ended;
    a token that begins a new word starts one position later. Special tokens get (0, 0).
    """
    offsets = []
    end = 0
    previous: int | None = None
    for word in word_ids:
        if word is None:
            offsets.append((0, 0))
            previous = None
            continue
        start = end if (word == previous and previous is not None) else end + 1
        end = start + 1
        offsets.append((start, end))
        previous = word
    return offsets


def _finish(
    tokenizer: Any, content: list[int], words: list[int | None] | None, pair: list[int] | None = None
) -> dict[str, Any]:
    """[CLS] content [SEP] (pair [SEP]) with token types, mask and optional offsets."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *content, sep]
    types = [0] * len(ids)
    if pair is not None:
        ids += [*pair, sep]
        types += [1] * (len(pair) + 1)
    row: dict[str, Any] = {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}
    if words is not None:
        row["offset_mapping"] = _boundary_offsets([None, *words, None])
    row["length"] = len(ids)
    return row


def _empty_batch(whole_word: bool, nsp: bool = False, documents: bool = False) -> dict[str, list[Any]]:
    keys = [
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "length",
        "doc_tokens",
        "used_tokens",
        "truncated_docs",
    ]
    if whole_word:
        keys.append("offset_mapping")
    if documents:
        keys.append("documents")
    if nsp:
        keys.append("next_sentence_label")
    return {k: [] for k in keys}


def _append(
    out: dict[str, list[Any]], row: dict[str, Any], doc_tokens: int, used: int, truncated: int
) -> None:
    for key, value in row.items():
        out[key].append(value)
    out["doc_tokens"].append(doc_tokens)
    out["used_tokens"].append(used)
    out["truncated_docs"].append(truncated)


def _packed_batch(batch, indices, *, tokenizer, max_length, whole_word, pre_segmented, seed, documents=False):
    """Concatenate the batch's documents with [SEP] and cut full blocks; keep the tail block.

    With `documents`, each block also lists the lengths of its documents' parts (in
    `documents`): [CLS] and the first part with its [SEP], each next part with its
    [SEP], and the last part with the block's [SEP]. Attention can stay inside them.
    """
    docs = _encode_documents(tokenizer, batch["text"], pre_segmented, whole_word)
    stream: list[int] = []
    is_text: list[int] = []  # 1 for corpus tokens, 0 for the [SEP]s put between documents
    words: list[int | None] = []
    offset = 0
    for ids, word_ids in docs:
        if not ids:
            continue
        if stream:
            stream.append(tokenizer.sep_token_id)
            is_text.append(0)
            words.append(None)
        stream.extend(ids)
        is_text.extend([1] * len(ids))
        if whole_word:
            words.extend(None if w is None else w + offset for w in word_ids)
            offset += max((w for w in word_ids if w is not None), default=-1) + 1
    out = _empty_batch(whole_word, documents=documents)
    size = max_length - 2
    start, first_block = 0, True
    while start < len(stream):
        if not is_text[start]:
            start += 1  # a separator at a block's start would follow its [CLS]: it separates nothing
            continue
        end = min(start + size, len(stream))
        # A separator on the cut would end up beside the block's own [SEP] ("[SEP] [SEP]"):
        # the block takes the next corpus token in its place; with document attention it ends
        # one short instead (that token would sit in the wrong document's part).
        skip = not is_text[end - 1]
        if skip and documents:
            end, skip = end - 1, False

        def take(values: list[Any], start: int = start, end: int = end, skip: bool = skip) -> list[Any]:
            return values[start : end - 1] + values[end : end + 1] if skip else values[start:end]

        row = _finish(tokenizer, take(stream), take(words) if whole_word else None)
        if documents:
            row["documents"] = _document_parts(take(is_text))
        # The batch's corpus token count is recorded once, on its first block.
        corpus = sum(is_text) if first_block else 0
        _append(out, row, corpus, sum(take(is_text)), 0)
        start, first_block = end + skip, False
    return out


def _document_parts(is_text: list[int]) -> list[int]:
    """Lengths of a block's documents' parts, from which of its inner tokens are text (1) or [SEP] (0)."""
    parts, current = [], 1  # the block's [CLS] opens the first part
    for flag in is_text:
        current += 1
        if not flag:  # a separator ends its document's part
            parts.append(current)
            current = 0
    parts.append(current + 1)  # and the block's own [SEP] the last
    return parts


def _line_batch(batch, indices, *, tokenizer, max_length, whole_word, pre_segmented, seed):
    """One sequence per document, truncated to max_length (counted)."""
    docs = _encode_documents(tokenizer, batch["text"], pre_segmented, whole_word)
    out = _empty_batch(whole_word)
    size = max_length - 2
    for ids, word_ids in docs:
        if not ids:
            continue
        kept = ids[:size]
        row = _finish(tokenizer, kept, word_ids[:size] if whole_word else None)
        _append(out, row, len(ids), len(kept), int(len(ids) > size))
    return out


def _nsp_batch(batch, indices, *, tokenizer, max_length, whole_word, pre_segmented, seed):
    """Sentence pairs: B follows A half the time (label 0), else B is random (label 1)."""
    docs = _encode_documents(tokenizer, batch["text"], pre_segmented, whole_word=False)
    rng = random.Random(seed * 1_000_003 + (indices[0] if indices else 0))
    out = _empty_batch(False, nsp=True)
    budget = max_length - 3
    count = len(docs)
    for i, (first, _) in enumerate(docs):
        if not first:
            continue
        follows = i + 1 < count and docs[i + 1][0] and rng.random() < 0.5
        if follows:
            second = docs[i + 1][0]
        else:
            choices = [j for j in range(count) if j not in (i, i + 1) and docs[j][0]]
            if not choices:
                continue
            second = docs[rng.choice(choices)][0]
        a, b = list(first), list(second)
        original = len(a) + len(b)
        while len(a) + len(b) > budget:  # longest-first truncation, as BERT did
            (a if len(a) >= len(b) else b).pop()
        row = _finish(tokenizer, a, None, pair=b)
        row["next_sentence_label"] = 0 if follows else 1
        _append(out, row, len(first), len(a), int(original > budget))
    return out
