"""Read labelled tables from local files or the Hugging Face Hub, without losing a row.

Real files are messy: GLUE-style TSVs are not quoted and hold bare `"` characters,
exports start with a byte-order mark, Windows tools write CRLF. Every reader here
copes with those, counts the rows it read, and stops with the file and line number
on anything it cannot read, rather than merging or dropping rows silently.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import DataError

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
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2", ".xz")]
    fmt = EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'}",
            hint="use .csv, .tsv, .json, .jsonl, .parquet or .txt, or set the format: "
            "data.train={path: FILE, format: tsv}",
        )
    return fmt


def read_table(path: Path, fmt: str | None = None, *, text_column: str = "text") -> Table:
    """Read a local file into a Table.

    Args:
        path: the file.
        fmt: csv | tsv | json | jsonl | parquet | txt; default from the extension.
        text_column: the column name given to each line of a .txt file.

    Raises:
        DataError: missing, empty, undecodable or malformed file (names the line).
    """
    if not path.exists():
        raise DataError(f"{path}: file not found", hint="check the path; relative paths in a "
                        "recipe resolve against the recipe's folder")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file", hint="name a file")
    fmt = file_format(path, fmt)
    if fmt == "parquet":
        table = _read_parquet(path)
    else:
        text = _decode(path)
        if fmt in ("csv", "tsv"):
            table = _read_delimited(path, text, "\t" if fmt == "tsv" else ",")
        elif fmt == "jsonl":
            table = _read_jsonl(path, text)
        elif fmt == "json":
            table = _read_json(path, text)
        else:
            table = _read_lines(path, text, text_column)
    if len(table) == 0:
        raise DataError(f"{path}: no data rows", hint="the file is empty or holds only a header")
    return table


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
            f"{name}: cannot load Hub dataset{offline}: {_first_line(exc)}",
            hint="check the dataset id, config and split, your network, or use a local file",
        ) from exc
    return Table(name, dataset.to_dict())


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        # utf-8-sig drops a leading byte-order mark, which Excel and others write.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start})",
            hint="re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        ) from None


def _read_delimited(path: Path, text: str, delimiter: str) -> Table:
    # TSVs in the wild (GLUE and most research data) are not quoted and hold bare `"`:
    # reading them with quoting on would merge rows. CSVs are quoted by convention.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty", hint="give a header line and data rows") from None
    header = [h.strip() for h in header]
    _check_header(path, header)
    columns: dict[str, list[Any]] = {h: [] for h in header}
    lines: list[int] = []
    width = len(header)
    start = reader.line_num
    for row in reader:
        line = start + 1
        start = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != width:
            raise DataError(
                f"{path}:{line}: expected {width} fields ({', '.join(header)}), found {len(row)}",
                hint=_ragged_hint(delimiter),
            )
        for name, value in zip(header, row, strict=True):
            columns[name].append(value)
        lines.append(line)
    return Table(str(path), columns, lines)


def _universal_lines(text: str) -> Iterator[str]:
    # str.splitlines also splits on \x0b, \x1c, U+2028... that can sit inside a text.
    for line in text.split("\n"):
        yield line.removesuffix("\r")


def _ragged_hint(delimiter: str) -> str:
    if delimiter == "\t":
        return "a text may contain a tab; remove it, or convert the file to JSONL"
    return "quote fields that contain commas (\"like, this\"), or use a TSV or JSONL file"


def _check_header(path: Path, header: list[str]) -> None:
    seen = set()
    for name in header:
        if not name:
            raise DataError(f"{path}:1: the header has an empty column name", hint="name every column")
        if name in seen:
            raise DataError(f"{path}:1: column {name!r} appears twice in the header",
                            hint="give every column a distinct name")
        seen.add(name)


def _read_jsonl(path: Path, text: str) -> Table:
    columns: dict[str, list[Any]] = {}
    lines: list[int] = []
    for number, line in enumerate(_universal_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}",
                            hint="each line of a JSONL file is one JSON object") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, found {type(record).__name__}",
                            hint='each line should look like {"text": "...", "label": "..."}')
        _append_record(columns, record, len(lines))
        lines.append(number)
    return Table(str(path), columns, lines)


def _read_json(path: Path, text: str) -> Table:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}",
                        hint="give a list of objects, or use JSONL (one object per line)") from None
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise DataError(f"{path}: columns have different lengths {sorted(lengths)}",
                            hint="every column list must have one value per row")
        return Table(str(path), {k: list(v) for k, v in data.items()})
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of objects or a mapping of columns",
                        hint='e.g. [{"text": "...", "label": "..."}, ...]')
    columns: dict[str, list[Any]] = {}
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"{path}: item {index + 1} is a {type(record).__name__}, not an object",
                            hint='e.g. [{"text": "...", "label": "..."}, ...]')
        _append_record(columns, record, index)
    return Table(str(path), columns)


def _append_record(columns: dict[str, list[Any]], record: dict[str, Any], index: int) -> None:
    # Records may omit keys; missing values become None and are reported later if used.
    for key in record:
        if key not in columns:
            columns[key] = [None] * index
    for key, values in columns.items():
        values.append(record.get(key))


def _read_lines(path: Path, text: str, column: str) -> Table:
    values, lines = [], []
    for number, line in enumerate(_universal_lines(text), start=1):
        if line.strip():
            values.append(line)
            lines.append(number)
    return Table(str(path), {column: values}, lines)


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        return Table(str(path), pq.read_table(path).to_pydict())
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise DataError(f"{path}: cannot read Parquet: {_first_line(exc)}",
                        hint="check the file is a complete Parquet file") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
