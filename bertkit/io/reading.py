"""Read labelled tables from local files or the Hugging Face Hub, without losing a row.

Real files are messy: GLUE-style TSVs are not quoted and hold bare `"` characters,
exports start with a byte-order mark, Windows tools write CRLF. Every reader here
copes with those, counts the rows it read, and stops with the file and line number
on anything it cannot read, rather than merging or dropping rows silently.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import importlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, first_line

_DECOMPRESSORS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "txt",
    ".text": "txt",
}

# Texts can be long (whole documents); the csv module's default 128 KiB cap is not.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Table:
    """Rows read from one source, column by column, with where each row came from.

    Attributes:
        name: the source as users know it (a path or a Hub id and split).
        columns: column name -> values, all the same length.
        lines: the 1-based file line of each row (None for Hub data).
    """

    name: str
    columns: dict[str, list[Any]]
    lines: list[int] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, row: int) -> str:
        """`file:line` (or `source row N`) of row index `row`, for messages."""
        if self.lines is not None:
            return f"{self.name}:{self.lines[row]}"
        return f"{self.name} row {row + 1}"

    def head(self, limit: int | None) -> Table:
        """The first `limit` rows (all rows when limit is None)."""
        if limit is None or limit >= len(self):
            return self
        return Table(
            self.name,
            {k: v[:limit] for k, v in self.columns.items()},
            self.lines[:limit] if self.lines is not None else None,
            self.notes,
        )


def file_format(path: Path, declared: str | None = None) -> str:
    """The format of a file: the declared one, else from its extension.

    Raises:
        DataError: unknown extension and no declared format.
    """
    if declared:
        return declared
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in _DECOMPRESSORS]
    fmt = EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'}",
            hint="use .csv, .tsv, .json, .jsonl, .parquet or .txt, or set the format: "
            "data.train={path: FILE, format: tsv}",
        )
    return fmt


def read_table(
    path: Path,
    fmt: str | None = None,
    *,
    text_column: str = "text",
    on_error: OnError | None = None,
) -> Table:
    """Read a whole local file into a Table.

    Args:
        path: the file.
        fmt: csv | tsv | json | jsonl | parquet | txt; default from the extension.
        text_column: the column name given to each line of a .txt file.
        on_error: called with the DataError of each malformed row, which is then
            skipped (to report every bad row at once); by default it is raised.

    Raises:
        DataError: missing, empty, undecodable or malformed file (names the line).
    """
    columns: dict[str, list[Any]] = {}
    lines: list[int] = []
    has_lines = True
    notes: list[str] = []
    rows = iter_rows(path, fmt, text_column=text_column, on_error=on_error, notes=notes)
    for index, (line, record) in enumerate(rows):
        _append_record(columns, record, index)
        if line is None:
            has_lines = False
        else:
            lines.append(line)
    table = Table(str(path), columns, lines if has_lines else None, notes)
    if len(table) == 0:
        raise DataError(f"{path}: no data rows", hint="the file is empty or holds only a header")
    return table


def iter_rows(
    path: Path,
    fmt: str | None = None,
    *,
    text_column: str = "text",
    on_error: OnError | None = None,
    notes: list[str] | None = None,
    blank_lines: bool = False,
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """Stream `(line number, record)` pairs from a local file, one row at a time.

    CSV, TSV, JSONL and text files are read lazily, so memory stays flat on files
    of any size; JSON and Parquet are read whole. Line numbers are 1-based file
    lines (None where a format has none).

    Args:
        path: the file.
        fmt: the format; default from the extension.
        text_column: the column name given to each line of a .txt file.
        on_error: called with the DataError of each malformed row (bad UTF-8, bad
            JSON, wrong field count), which is then skipped; by default it is raised.
        notes: receives a line for each decision taken on how to read the file.
        blank_lines: give the blank lines of a .txt file as empty texts (prediction
            keeps one output row per input line) instead of skipping them.

    Raises:
        DataError: missing file, unknown format, or (without on_error) a malformed row.
    """
    if is_stdin(path):
        fmt = fmt or "txt"
        if fmt in ("json", "parquet"):
            raise DataError(f"standard input: {fmt} cannot be streamed", hint="use jsonl, csv, tsv or txt")
    elif not path.exists():
        raise DataError(
            f"{path}: file not found",
            hint="check the path; relative paths in a recipe resolve against the recipe's folder",
        )
    elif path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file", hint="name a file")
    fmt = file_format(path, fmt)
    report = on_error or _raise
    if fmt in ("csv", "tsv"):
        quoted = fmt == "csv" or (not is_stdin(path) and quoted_tsv(path))
        if fmt == "tsv" and quoted and notes is not None:
            notes.append(f"{path}: fields are in double quotes, as Python's csv module and pandas write TSV")
        yield from _delimited_rows(path, "\t" if fmt == "tsv" else ",", report, quoted)
    elif fmt == "jsonl":
        yield from _jsonl_rows(path, report)
    elif fmt == "txt":
        for number, line in _text_lines(path, report):
            text = line.rstrip("\r\n")
            if text.strip() or blank_lines:
                yield number, {text_column: text}
    elif fmt == "json":
        yield from ((None, record) for record in _json_records(path))
    else:
        yield from ((None, record) for record in _parquet_records(path))


def read_hub(hub: str, split: str, config: str | None = None, revision: str | None = None) -> Table:
    """Read one split of a Hugging Face Hub dataset into a Table.

    Raises:
        DataError: the dataset or split cannot be loaded (offline mode is named).
    """
    import datasets

    from bertkit.environment import hub_offline

    name = f"{hub}{'/' + config if config else ''} [{split}]"
    try:
        dataset = datasets.load_dataset(hub, config, split=split, revision=revision)
    except Exception as exc:  # datasets raises many types for "not reachable/not found"
        offline = " (the Hub is switched off: HF_HUB_OFFLINE is set)" if hub_offline() else ""
        raise DataError(
            f"{name}: cannot load Hub dataset{offline}: {first_line(exc)}",
            hint="check the dataset id, config and split, your network, or use a local file",
        ) from exc
    return Table(name, dataset.to_dict())


OnError = Callable[[DataError], None]


def is_stdin(path: Path) -> bool:
    """Whether `path` is `-`, the conventional name of standard input."""
    return str(path) == "-"


def _raise(error: DataError) -> None:
    raise error


def _open_binary(path: Path) -> Any:
    """Open a file for reading bytes, decompressing .gz, .bz2 and .xz files."""
    module = _DECOMPRESSORS.get(path.suffix.lower())
    if module is None:
        return path.open("rb")
    return importlib.import_module(module).open(path, "rb")


def _text_lines(path: Path, report: OnError = _raise) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its ending), checking UTF-8 line by line.

    Lines end in LF or CRLF, or in CR alone (old Mac exports), which is recognised
    from the start of the file. A UTF-16 or UTF-32 file (Excel's "Unicode text") is
    refused as a whole, with the command that converts it.
    """
    with contextlib.nullcontext(sys.stdin.buffer) if is_stdin(path) else _open_binary(path) as handle:
        start = _peek(handle)
        _refuse_wide_encodings(path, start)
        lines = _cr_lines(handle) if b"\r" in start and b"\n" not in start else handle
        for number, raw in enumerate(lines, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)  # Excel and others write one
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte, column = raw[exc.start], exc.start + 1
                report(
                    DataError(
                        f"{path}:{number}: not valid UTF-8 (byte {byte:#04x} at column {column})",
                        hint="re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                    )
                )


_PEEK = 1 << 16
_WIDE = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def _peek(handle: Any) -> bytes:
    """The first bytes of a binary handle, without consuming them."""
    peek = getattr(handle, "peek", None)
    return peek(_PEEK)[:_PEEK] if peek is not None else b""


def _refuse_wide_encodings(path: Path, start: bytes) -> None:
    encoding = next((name for bom, name in _WIDE.items() if start.startswith(bom)), None)
    if encoding is None and start.count(b"\x00") > len(start) // 4:
        encoding = "UTF-16"  # no byte-order mark, but every other byte is zero
    if encoding is not None:
        raise DataError(
            f'{path}: the file is {encoding} (as Excel saves "Unicode text"); bertkit reads UTF-8',
            hint=f"re-save it as UTF-8, e.g. iconv -f {encoding.lower()} -t utf-8 {path} > "
            f"{path.stem}.utf8{path.suffix}",
        )


def _cr_lines(handle: Any) -> Iterator[bytes]:
    """Lines of a file whose lines end in a bare CR, each with its ending."""
    rest = b""
    for block in iter(lambda: handle.read(_PEEK), b""):
        parts = (rest + block).split(b"\r")
        rest = parts.pop()
        yield from (part + b"\r" for part in parts)
    if rest:
        yield rest


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
        for number, line in _text_lines(path, lambda error: None):
            if any(_QUOTED_FIELD.match(field) for field in line.rstrip("\r\n").split("\t")):
                return True
            if number >= _SNIFF_LINES:
                break
    except DataError:
        return False  # reading it properly says what is wrong
    return False


def _delimited_rows(
    path: Path, delimiter: str, report: OnError, quoted: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    # CSVs are quoted by convention; TSVs only when they look it (see quoted_tsv).
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    lines = _RowStarts(_text_lines(path, report))
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


def _jsonl_rows(path: Path, report: OnError) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _text_lines(path, report):
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


def _json_records(path: Path) -> Iterator[dict[str, Any]]:
    text = "".join(line for _, line in _text_lines(path))
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


def _parquet_records(path: Path) -> Iterator[dict[str, Any]]:
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


def _append_record(columns: dict[str, list[Any]], record: dict[str, Any], index: int) -> None:
    # Records may omit keys; missing values become None and are reported where used.
    for key in record:
        if key not in columns:
            columns[key] = [None] * index
    for key, values in columns.items():
        values.append(record.get(key))
