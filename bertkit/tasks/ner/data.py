"""Read NER data from any of its usual shapes into sentences of words and tags.

Three shapes are read, each into the same `Sentences`:

- CoNLL column files (any extension but .json/.jsonl/.ndjson/.parquet): one token
  and its tag per line, a blank line between sentences (see bertkit.io.conll).
- JSON, JSONL or Parquet records with a list of tokens and a list of tags (names,
  or integer ids with `tags.names`), and Hub datasets, whose ClassLabel tag feature
  names the ids.
- JSONL records with raw text and character-offset entity spans; the text is split
  into words (bertkit.tasks.ner.words) and the spans become tags.

Where every token came from is kept (file and line), so a tag error names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bertkit.errors import DataError
from bertkit.io.conll import read_conll
from bertkit.io.reading import iter_rows
from bertkit.io.text import OnError, raise_error
from bertkit.recipe.base import DataSource
from bertkit.tasks.ner.recipe import NerData
from bertkit.tasks.ner.words import join_words, split_words

RECORD_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_POSITION = re.compile(r"^(.+?)(\d+)$", re.DOTALL)


@dataclass
class Sentences:
    """The sentences of one split: words, their tags as written, and where each came from.

    Attributes:
        name: the source as users know it (a path, or a Hub id and split).
        tokens: each sentence's words.
        tags: each sentence's tags, as the source writes them (any scheme).
        origins: each sentence's origin: `file:line` of its first token or record, or `row N`.
        token_lines: for CoNLL files, the file line of every token.
        texts: for span data, each sentence's raw text.
        offsets: for span data, each word's (start, end) characters in its text.
        notes: decisions taken while reading, to show the user.
    """

    name: str
    tokens: list[list[str]]
    tags: list[list[str]]
    origins: list[str]
    token_lines: list[list[int]] | None = None
    texts: list[str] | None = None
    offsets: list[list[tuple[int, int]]] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def head(self, limit: int | None) -> Sentences:
        """The first `limit` sentences (all of them for None)."""
        if limit is None or limit >= len(self):
            return self
        return self.select(range(limit))

    def select(self, rows: Any) -> Sentences:
        """The sentences at `rows`, in that order."""
        rows = list(rows)

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in rows]

        return replace(
            self,
            tokens=[self.tokens[i] for i in rows],
            tags=[self.tags[i] for i in rows],
            origins=[self.origins[i] for i in rows],
            token_lines=pick(self.token_lines),
            texts=pick(self.texts),
            offsets=pick(self.offsets),
        )

    def where(self, sentence: int, position: int | None = None) -> str:
        """Where a sentence (or one of its tokens) is: `file:line`, or `file:line, token N`."""
        if position is not None and self.token_lines is not None:
            return f"{self.name}:{self.token_lines[sentence][position]}"
        origin = self.origins[sentence]
        return origin if position is None else f"{origin}, token {position + 1}"

    def text(self, sentence: int) -> str:
        """A sentence as text: its raw text when the data has it, else its words joined."""
        if self.texts is not None:
            return self.texts[sentence]
        return join_words(self.tokens[sentence])


def read_sentences(source: DataSource, data: NerData, on_error: OnError | None = None) -> Sentences:
    """Read one split from its source.

    Args:
        source: a local file or a Hub dataset.
        data: the recipe's data section (columns, CoNLL fields, position suffixes).
        on_error: receives the DataError of each malformed line or record (then
            skipped); by default the first is raised.

    Raises:
        DataError: a missing or unreadable file, missing columns, malformed lines.
    """
    report = on_error or raise_error
    if source.hub is not None:
        sentences = _read_hub(source, data)
    else:
        path = Path(str(source.path))
        fmt = source.format or RECORD_FORMATS.get(path.suffix.lower(), "conll")
        if fmt not in ("conll", *RECORD_FORMATS.values()):
            raise DataError(
                f"{path}: NER data cannot be {fmt}",
                hint="give a CoNLL file (token and tag per line), JSON/JSONL/Parquet records, "
                "or JSONL with text and entity spans",
            )
        if not path.is_file():
            raise DataError(
                f"{path}: {'is a folder, not a file' if path.is_dir() else 'file not found'}",
                hint="check the path; relative paths in a recipe resolve against the recipe's folder",
            )
        if fmt == "conll":
            sentences = _read_conll(path, data, report)
        else:
            sentences = _read_records(path, fmt, data, report)
    if data.position_suffix:
        sentences = strip_positions(sentences, report)
    if not len(sentences):
        raise DataError(f"{sentences.name}: no sentences", hint="check the file holds tokens and tags")
    return sentences


def _read_conll(path: Path, data: NerData, report: OnError) -> Sentences:
    token_field, tag_field = data.conll_columns
    out = Sentences(str(path), [], [], [], token_lines=[])
    for sentence in read_conll(path, token_field, tag_field, report):
        out.tokens.append(sentence.tokens)
        out.tags.append(sentence.tags)
        out.origins.append(f"{path}:{sentence.lines[0]}")
        out.token_lines.append(sentence.lines)  # type: ignore[union-attr]
    return out


def _read_records(path: Path, fmt: str, data: NerData, report: OnError) -> Sentences:
    out = Sentences(str(path), [], [], [])
    spans = None
    for number, record in iter_rows(path, fmt, on_error=report):
        origin = f"{path}:{number}" if number is not None else f"{path}, record {len(out) + 1}"
        if spans is None:
            spans = _is_span_record(record, data, origin)
            if spans:
                out.texts, out.offsets = [], []
        try:
            if spans:
                text, words, offsets, tags = _from_spans(record, data, origin)
                out.texts.append(text)  # type: ignore[union-attr]
                out.offsets.append(offsets)  # type: ignore[union-attr]
            else:
                words, tags = _from_lists(record, data, origin)
        except DataError as exc:
            report(exc)
            continue
        out.tokens.append(words)
        out.tags.append(tags)
        out.origins.append(origin)
    return out


def _is_span_record(record: dict[str, Any], data: NerData, origin: str) -> bool:
    if data.tokens in record:
        return False
    if data.text in record and data.entities in record:
        return True
    raise DataError(
        f"{origin}: no {data.tokens!r} column (token lists) and no {data.text!r} with {data.entities!r} "
        f"(text with entity spans); columns are: {', '.join(record) or 'none'}",
        hint="name the columns with data.tokens and data.tags, or data.text and data.entities",
    )


def _from_lists(record: dict[str, Any], data: NerData, origin: str) -> tuple[list[str], list[Any]]:
    words, tags = record.get(data.tokens), record.get(data.tags)
    if tags is None:
        raise DataError(
            f"{origin}: no {data.tags!r} column; columns are: {', '.join(record)}",
            hint="name the tag column with data.tags (Hub datasets often call it ner_tags)",
        )
    if not isinstance(words, list) or not isinstance(tags, list):
        raise DataError(
            f"{origin}: {data.tokens!r} and {data.tags!r} must be lists",
            hint='e.g. {"tokens": ["Angela", "Merkel"], "tags": ["B-PER", "I-PER"]}',
        )
    if len(words) != len(tags):
        raise DataError(
            f"{origin}: {len(words)} tokens but {len(tags)} tags",
            hint="give one tag per token",
        )
    if not all(isinstance(w, str) and w.strip() for w in words):
        raise DataError(f"{origin}: every token must be a non-empty string", hint="drop empty tokens")
    return [w.strip() for w in words], tags


def _from_spans(
    record: dict[str, Any], data: NerData, origin: str
) -> tuple[str, list[str], list[tuple[int, int]], list[str]]:
    text, entities = record.get(data.text), record.get(data.entities)
    if not isinstance(text, str) or not isinstance(entities, list):
        raise DataError(
            f"{origin}: {data.text!r} must be a string and {data.entities!r} a list",
            hint='e.g. {"text": "Angela Merkel", "entities": [{"start": 0, "end": 13, "label": "PER"}]}',
        )
    spans = sorted(_span(entity, text, origin) for entity in entities)
    for (_, end, label), (start, _, other) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise DataError(
                f"{origin}: entities {label!r} and {other!r} overlap at characters {start}-{end}",
                hint="nested or overlapping entities cannot be tagged; keep one of them",
            )
    words = split_words(text, [edge for start, end, _ in spans for edge in (start, end)])
    tags = ["O"] * len(words)
    for start, end, label in spans:
        covered = [i for i, (a, b) in enumerate(words) if start <= a and b <= end]
        if not covered:
            raise DataError(
                f"{origin}: entity {label!r} at {start}-{end} covers no word", hint="fix its offsets"
            )
        tags[covered[0]] = f"B-{label}"
        for i in covered[1:]:
            tags[i] = f"I-{label}"
    return text, [text[a:b] for a, b in words], words, tags


def _span(entity: Any, text: str, origin: str) -> tuple[int, int, str]:
    """(start, end, label) of one entity, trimmed of surrounding whitespace."""
    if isinstance(entity, dict):
        start, end, label = entity.get("start"), entity.get("end"), entity.get("label")
    elif isinstance(entity, list | tuple) and len(entity) == 3:
        start, end, label = entity
    else:
        start = end = label = None
    if not (isinstance(start, int) and isinstance(end, int) and isinstance(label, str) and label):
        raise DataError(
            f"{origin}: entity {entity!r} is not {{start, end, label}} or [start, end, label]",
            hint="offsets are character positions in the text, end exclusive",
        )
    if not 0 <= start < end <= len(text):
        raise DataError(
            f"{origin}: entity {label!r} at {start}-{end} lies outside the text ({len(text)} characters)",
            hint="offsets are character positions in the text, end exclusive",
        )
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end:
        raise DataError(f"{origin}: entity {label!r} covers only spaces", hint="fix its offsets")
    return start, end, label


def _read_hub(source: DataSource, data: NerData) -> Sentences:
    from bertkit.io.reading import load_hub_split

    name, dataset = load_hub_split(source.hub or "", source.split or "train", source.config, source.revision)
    for column in (data.tokens, data.tags):
        if column not in dataset.column_names:
            raise DataError(
                f"{name}: no column {column!r}; columns are: {', '.join(dataset.column_names)}",
                hint="name them with data.tokens and data.tags (conll2003 calls them tokens, ner_tags)",
            )
    names = _class_names(dataset.features, data.tags)
    tags = dataset[data.tags]
    if names is not None:
        tags = [[names[t] for t in row] for row in tags]
    origins = [f"{name} row {i + 1}" for i in range(len(dataset))]
    return Sentences(name, [list(t) for t in dataset[data.tokens]], [list(t) for t in tags], origins)


def _class_names(features: Any, column: str) -> list[str] | None:
    feature = features.get(column) if hasattr(features, "get") else None
    inner = getattr(feature, "feature", None)
    return list(inner.names) if inner is not None and hasattr(inner, "names") else None


def name_tags(sentences: Sentences, names: list[str] | None) -> Sentences:
    """Tags given as integer ids, named by `tags.names`.

    Raises:
        DataError: integer tags without names, or an id out of range.
    """
    if not any(isinstance(tag, int) and not isinstance(tag, bool) for row in sentences.tags for tag in row):
        return sentences
    if names is None:
        raise DataError(
            f"{sentences.name}: tags are integer ids and nothing names them",
            hint="give the tag names in id order with tags.names: [O, B-PER, I-PER, ...]",
        )
    named = []
    for index, row in enumerate(sentences.tags):
        try:
            named.append([names[tag] if isinstance(tag, int) else tag for tag in row])
        except IndexError:
            raise DataError(
                f"{sentences.where(index)}: tag id out of range of tags.names ({len(names)} names)",
                hint="list every tag id's name in tags.names",
            ) from None
    return replace(sentences, tags=named)


def strip_positions(sentences: Sentences, report: OnError) -> Sentences:
    """Tokens without their trailing position digits (Weibo NER's `科0` -> `科`)."""
    tokens = []
    for index, words in enumerate(sentences.tokens):
        kept = []
        for position, word in enumerate(words):
            match = _POSITION.match(word)
            if match is None:
                report(
                    DataError(
                        f"{sentences.where(index, position)}: token {word!r} has no position digits",
                        hint="data.position_suffix is for tokens like `科0`; drop it for plain tokens",
                    )
                )
                kept.append(word)
            else:
                kept.append(match.group(1))
        tokens.append(kept)
    return replace(sentences, tokens=tokens)


def looks_positioned(sentences: Sentences, sample: int = 2000) -> bool:
    """Whether nearly every token is one character and digits, as Weibo NER writes them."""
    words = [w for row in sentences.tokens[:sample] for w in row]
    return bool(words) and sum(len(w) >= 2 and w[1:].isdigit() for w in words) >= 0.9 * len(words)
