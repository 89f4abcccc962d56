"""Read labelled tables from local files or the Hugging Face Hub, without losing a row.

Real files are messy: GLUE-style TSVs are not quoted and hold bare `"` characters,
exports start with a byte-order mark, Windows tools write CRLF. Every reader here
copes with those, counts the rows it read, and stops with the file and line number
on anything it cannot read, rather than merging or dropping rows silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, first_line
from bertkit.io.formats import delimited_rows, json_records, jsonl_rows, parquet_records, quoted_tsv
from bertkit.io.text import DECOMPRESSORS, OnError, is_stdin, raise_error, text_lines

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
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in DECOMPRESSORS]
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
    report = on_error or raise_error
    if fmt in ("csv", "tsv"):
        quoted = fmt == "csv" or (not is_stdin(path) and quoted_tsv(path))
        if fmt == "tsv" and quoted and notes is not None:
            notes.append(f"{path}: fields are in double quotes, as Python's csv module and pandas write TSV")
        yield from delimited_rows(path, "\t" if fmt == "tsv" else ",", report, quoted)
    elif fmt == "jsonl":
        yield from jsonl_rows(path, report)
    elif fmt == "txt":
        for number, line in text_lines(path, report):
            text = line.rstrip("\r\n")
            if text.strip() or blank_lines:
                yield number, {text_column: text}
    elif fmt == "json":
        yield from ((None, record) for record in json_records(path))
    else:
        yield from ((None, record) for record in parquet_records(path))


def read_hub(hub: str, split: str, config: str | None = None, revision: str | None = None) -> Table:
    """Read one split of a Hugging Face Hub dataset into a Table.

    Raises:
        DataError: the dataset or split cannot be loaded (offline mode is named).
    """
    name, dataset = load_hub_split(hub, split, config, revision)
    return Table(name, dataset.to_dict())


def load_hub_split(
    hub: str, split: str, config: str | None = None, revision: str | None = None
) -> tuple[str, Any]:
    """One split of a Hub dataset as a `datasets.Dataset` (features kept), and its display name.

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
    return name, dataset


def _append_record(columns: dict[str, list[Any]], record: dict[str, Any], index: int) -> None:
    # Records may omit keys; missing values become None and are reported where used.
    for key in record:
        if key not in columns:
            columns[key] = [None] * index
    for key, values in columns.items():
        values.append(record.get(key))
