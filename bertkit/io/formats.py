"""Rows of delimited, JSON Lines, JSON and Parquet files, each with its file line.

GLUE-style TSVs are not quoted and hold bare `"` characters; CSVs quote fields that
hold commas; JSON may be a list of records or a mapping of columns. Each reader
yields records and reports a malformed row with its file and line number.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, first_line
from bertkit.io.text import OnError, text_lines

# Texts can be long (whole documents); the csv module's default 128 KiB cap is not.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

# A field the csv module (or pandas) quoted because it holds a quote: "he said ""wow""".
_QUOTED_FIELD = re.compile(r'^"(?:[^"]|"")*""(?:[^"]|"")*"$')
_SNIFF_LINES = 1000


def quoted_tsv(path: Path) -> bool:
    """Whether a TSV quotes its fields the way Python's csv module and pandas write them.

    TSVs in the wild (GLUE and most research data) are not quoted and hold bare `"`:
    reading them with quoting on would merge rows, so TSVs are read unquoted unless
    their first lines hold a field that only a quoting writer produces (wrapped in
    quotes, every quote inside doubled).
    """
    try:
        for number, line in text_lines(path, lambda error: None):
            if any(_QUOTED_FIELD.match(field) for field in line.rstrip("\r\n").split("\t")):
                return True
            if number >= _SNIFF_LINES:
                break
    except DataError:
        return False  # reading it properly says what is wrong
    return False


def delimited_rows(
    path: Path, delimiter: str, report: OnError, quoted: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    # CSVs are quoted by convention; TSVs only when they look it (see quoted_tsv).
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    lines = _RowStarts(text_lines(path, report))
    reader = _safe_rows(csv.reader(lines, delimiter=delimiter, quoting=quoting), path, lines)
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise DataError(f"{path}: the file is empty", hint="give a header line and data rows")
    header = [h.strip() for h in header]
    _check_header(path, header)
    width = len(header)
    lines.first = None
    for row in reader:
        line, lines.first = lines.first, None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != width:
            report(
                DataError(
                    f"{path}:{line}: expected {width} fields ({', '.join(header)}), found {len(row)}",
                    hint=_ragged_hint(delimiter),
                )
            )
            continue
        yield line, dict(zip(header, row, strict=True))


def _safe_rows(reader: Iterator[list[str]], path: Path, lines: _RowStarts) -> Iterator[list[str]]:
    """csv.reader's rows; what it cannot parse becomes a DataError naming the line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(
                f"{path}:{lines.first or 1}: cannot read the row: {exc}",
                hint="check the quoting around that line, or convert the file to JSONL",
            ) from None
        yield row


class _RowStarts:
    """Feeds numbered lines to csv.reader and remembers where the current row began.

    A quoted field can span lines and undecodable lines are skipped, so the reader's
    own line count cannot say which file line a row came from.
    """

    def __init__(self, numbered: Iterator[tuple[int, str]]) -> None:
        self.numbered = numbered
        self.first: int | None = None

    def __iter__(self) -> Iterator[str]:
        for number, line in self.numbered:
            if self.first is None:
                self.first = number
            yield line


def _ragged_hint(delimiter: str) -> str:
    if delimiter == "\t":
        return "a text may contain a tab; remove it, or convert the file to JSONL"
    return 'quote fields that contain commas ("like, this"), or use a TSV or JSONL file'


def _check_header(path: Path, header: list[str]) -> None:
    seen = set()
    for name in header:
        if not name:
            raise DataError(f"{path}:1: the header has an empty column name", hint="name every column")
        if name in seen:
            raise DataError(
                f"{path}:1: column {name!r} appears twice in the header",
                hint="give every column a distinct name",
            )
        seen.add(name)


def jsonl_rows(path: Path, report: OnError) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in text_lines(path, report):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report(
                DataError(
                    f"{path}:{number}: not valid JSON: {exc.msg}",
                    hint="each line of a JSONL file is one JSON object",
                )
            )
            continue
        if not isinstance(record, dict):
            report(
                DataError(
                    f"{path}:{number}: expected a JSON object, found {type(record).__name__}",
                    hint='each line should look like {"text": "...", "label": "..."}',
                )
            )
            continue
        yield number, record


def json_records(path: Path) -> Iterator[dict[str, Any]]:
    text = "".join(line for _, line in text_lines(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}:{exc.lineno}: not valid JSON: {exc.msg}",
            hint="give a list of objects, or use JSONL (one object per line)",
        ) from None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise DataError(
                f"{path}: columns have different lengths {sorted(lengths)}",
                hint="every column list must have one value per row",
            )
        keys = list(data)
        for values in zip(*data.values(), strict=True):
            yield dict(zip(keys, values, strict=True))
        return
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a list of objects or a mapping of columns",
            hint='e.g. [{"text": "...", "label": "..."}, ...]',
        )
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(
                f"{path}: item {index + 1} is a {type(record).__name__}, not an object",
                hint='e.g. [{"text": "...", "label": "..."}, ...]',
            )
        yield record


def parquet_records(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(
            f"{path}: cannot read Parquet: {first_line(exc)}",
            hint="check the file is a complete Parquet file",
        ) from exc
