"""Writing predictions out: JSONL, CSV or TSV, streamed, and never half-written.

Output goes to a temporary file beside its target and is renamed into place at the
end, so a failed run leaves no partial predictions file. A task turns its result
records into CSV cells with its own `flatten` (nested values become JSON text).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bertkit.errors import DataError, UsageError
from bertkit.io.reading import file_format
from bertkit.io.text import is_stdin

OUTPUT_FORMATS = {"jsonl": "jsonl", "json": "jsonl", "csv": "csv", "tsv": "tsv"}


@dataclass
class PredictStats:
    """What a file prediction did (for the command to report)."""

    rows: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    output: str = "-"
    empty: int = 0  # rows without text (blank lines, null): kept, with empty predictions
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)


def output_format(output: Path | None, declared: str | None) -> str:
    if declared:
        return OUTPUT_FORMATS[declared]
    if output is None:
        return "jsonl"
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(
            f"{output}: cannot tell the output format from the extension",
            hint="name the output file .jsonl, .csv or .tsv",
        )
    return OUTPUT_FORMATS[suffix]


class atomic_output:  # noqa: N801 - used as a context manager, reads like a function
    """A text handle: stdout, or a temporary file renamed over `path` on success."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.tmp: Path | None = None
        self.handle: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self.path is None or is_stdin(self.path):
            return sys.stdout
        if self.path.is_dir():
            raise UsageError(
                f"{self.path}: is a folder", hint="give --output a file name, e.g. predictions.jsonl"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
            self.handle = open(self.tmp, "x", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(
                f"{self.path}: cannot write the output: {exc.strerror or exc}",
                hint="choose a writable --output path",
            ) from None
        return self.handle

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if self.handle is None or self.tmp is None or self.path is None:
            return
        self.handle.close()
        if kind is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise UsageError(
                f"{self.path}: cannot write the output: {exc.strerror or exc}",
                hint="choose a writable --output path",
            ) from None


class Writer:
    """Writes result records as JSONL, or as CSV/TSV with each record flattened into cells."""

    def __init__(
        self, handle: IO[str], fmt: str, flatten: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ) -> None:
        self.handle = handle
        self.fmt = fmt
        self.flatten = flatten or flatten_json
        self.csv: Any = None
        self.rows = 0

    def write(self, record: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        flat = self.flatten(record)
        if self.csv is not None and not flat.keys() <= set(self.csv.fieldnames):
            extra = sorted(set(flat) - set(self.csv.fieldnames))
            raise DataError(
                f"column {extra[0]!r} first appears after the CSV header was written "
                f"(row {self.rows + 1}); a CSV file has one set of columns",
                hint="write JSONL instead (--output out.jsonl), or give every input row the same fields",
            )
        self.rows += 1
        if self.csv is None:
            delimiter = "\t" if self.fmt == "tsv" else ","
            self.csv = csv.DictWriter(
                self.handle,
                fieldnames=list(flat),
                delimiter=delimiter,
                lineterminator="\n",
            )
            self.csv.writeheader()
        self.csv.writerow(flat)


def flatten_json(record: dict[str, Any]) -> dict[str, Any]:
    """CSV cells of a record: lists and mappings become JSON text."""
    return {
        key: json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value
        for key, value in record.items()
    }


def write_records(
    records: Iterable[dict[str, Any]],
    output: Path,
    declared: str | None = None,
    flatten: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Write finished records to a file (JSONL, CSV or TSV; `declared`, else its extension), atomically."""
    fmt = output_format(output, declared)
    with atomic_output(output) as handle:
        writer = Writer(handle, fmt, flatten)
        for record in records:
            writer.write(record)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most `size` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def count_rows(source: Path, fmt: str | None = None) -> int | None:
    """A fast estimate of the rows in a file (its line count), for progress bars.

    None when it cannot tell cheaply (stdin, JSON, Parquet) or the file is missing:
    reading it then reports the problem properly.
    """
    if is_stdin(source) or not source.is_file() or file_format(source, fmt) in ("json", "parquet"):
        return None
    count = 0
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count
