"""`bertkit embed`: vectors of texts, streamed from a file (or stdin) to .npy, .parquet or .jsonl.

Rows are read and encoded in chunks (sentence-transformers sorts each chunk by
length), so memory stays flat on files of millions of lines:

- `.npy`: the vectors only, one row per input row, float32. They go to a raw
  temporary file as they come and become an .npy file at the end.
- `.parquet` and `.jsonl`: every input column passed through, and an `embedding`
  column (a list of floats). `--tokens` writes `tokens` instead: per row, each token
  with its character offsets and its contextual vector.

Output appears only when complete (written to a temporary file, then renamed).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import DataError, UsageError
from bertkit.io.reading import iter_rows
from bertkit.io.sinks import PredictStats, batched

OUTPUTS = ("npy", "parquet", "jsonl")
CHUNK = 4096  # rows read, encoded and written together


def output_kind(output: Path | None, tokens: bool) -> str:
    """npy, parquet or jsonl from the output's extension (stdout: jsonl).

    Raises:
        UsageError: another extension, or token vectors asked into an .npy file.
    """
    kind = "jsonl" if output is None else output.suffix.lower().lstrip(".")
    if kind not in OUTPUTS:
        raise UsageError(
            f"{output}: cannot tell the output format from the extension",
            hint="name it .npy (vectors only), .parquet or .jsonl (input columns and vectors)",
        )
    if tokens and kind == "npy":
        raise UsageError(
            "--tokens: token vectors do not fit one .npy array (texts have different lengths)",
            hint="write .jsonl or .parquet",
        )
    return kind


def embed_texts(encoder: Any, texts: list[str], batch_size: int, tokens: bool) -> list[dict[str, Any]]:
    """Records of given texts: {text, embedding} or {text, tokens}."""
    if tokens:
        return [
            {"text": text, "tokens": _tokens(text, vectors, offsets)}
            for text, (vectors, offsets) in zip(texts, encoder.token_vectors(texts, batch_size), strict=True)
        ]
    vectors = encoder.encode(texts, batch_size)
    return [{"text": t, "embedding": v.tolist()} for t, v in zip(texts, vectors, strict=True)]


def _tokens(text: str, vectors: np.ndarray, offsets: list[tuple[int, int]]) -> list[dict[str, Any]]:
    return [
        {"text": text[a:b], "start": a, "end": b, "vector": v.tolist()}
        for v, (a, b) in zip(vectors, offsets, strict=True)
    ]


def embed_file(
    encoder: Any,
    source: Path,
    output: Path | None,
    *,
    text_column: str = "text",
    input_format: str | None = None,
    batch_size: int = 64,
    tokens: bool = False,
    skip_errors: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> PredictStats:
    """Embed every row's text and write the vectors (and the rows), streaming.

    Raises:
        DataError: a malformed row (without skip_errors) or a missing text column.
        UsageError: an output format that cannot hold what was asked.
    """
    kind = output_kind(output, tokens)
    if kind != "jsonl" and output is None:
        raise UsageError("--output: needed for .npy and .parquet", hint="give --output FILE")
    if kind == "npy" and skip_errors:
        raise UsageError(
            "--on-error skip: an .npy file has no ids, so its rows would stop lining up with the input's",
            hint="write .jsonl or .parquet (input columns pass through), or fix the rows",
        )
    stats = PredictStats(output=str(output) if output else "-")

    def report(error: DataError) -> None:
        if not skip_errors:
            raise error
        stats.skipped.append(error.message)

    read = iter_rows(source, input_format, on_error=report, notes=stats.notes, blank_lines=True)
    rows = _rows(read, source, text_column, report)
    sink = {"npy": NpySink, "parquet": ParquetSink, "jsonl": JsonlSink}[kind](output, encoder.dimension)
    start = time.perf_counter()
    try:
        for chunk in batched(rows, CHUNK):
            texts = ["" if r[text_column] is None else str(r[text_column]) for r in chunk]
            stats.empty += sum(not t.strip() for t in texts)
            if tokens:
                pieces = encoder.token_vectors(texts, batch_size)
                sink.write_tokens(chunk, [_tokens(t, v, o) for t, (v, o) in zip(texts, pieces, strict=True)])
            else:
                sink.write(chunk, encoder.encode(texts, batch_size))
            stats.rows += len(chunk)
            if on_progress is not None:
                on_progress(stats.rows)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    stats.seconds = time.perf_counter() - start
    return stats


def _rows(
    rows: Iterator[tuple[int | None, dict[str, Any]]],
    source: Path,
    column: str,
    report: Callable[[DataError], None],
) -> Iterator[dict[str, Any]]:
    """The rows, each checked for the text column (a row without it is an error, or skipped)."""
    first = True
    for line, record in rows:
        where = f"{source}:{line}" if line is not None else str(source)
        if first and ("embedding" in record or "tokens" in record):
            raise DataError(
                f"{where}: the input has a column the output would overwrite (embedding or tokens)",
                hint="rename it",
            )
        first = False
        if column not in record:
            report(
                DataError(
                    f"{where}: no column {column!r}; columns are: {', '.join(record) or 'none'}",
                    hint="name the text column with --text-column",
                )
            )
            continue
        yield record


class _Sink:
    """A file written under a temporary name and renamed when complete (stdout for JSONL without a path)."""

    def __init__(self, output: Path | None, dimension: int) -> None:
        self.output, self.dimension = output, dimension
        self.tmp: Path | None = None
        if output is not None:
            if output.is_dir():
                raise UsageError(f"{output}: is a folder", hint="give --output a file name")
            output.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = output.with_name(f".{output.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")

    def write_tokens(self, rows: list[dict[str, Any]], tokens: list[list[dict[str, Any]]]) -> None:
        self.write_records([{**r, "tokens": t} for r, t in zip(rows, tokens, strict=True)])

    def write(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        self.write_records([{**r, "embedding": v.tolist()} for r, v in zip(rows, vectors, strict=True)])

    def write_records(self, records: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Complete the temporary file."""

    def close(self) -> None:
        self.finish()
        if self.tmp is not None and self.output is not None:
            os.replace(self.tmp, self.output)

    def abort(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class JsonlSink(_Sink):
    def __init__(self, output: Path | None, dimension: int) -> None:
        import sys

        super().__init__(output, dimension)
        self.handle = open(self.tmp, "x", encoding="utf-8") if self.tmp else sys.stdout  # noqa: SIM115

    def write_records(self, records: list[dict[str, Any]]) -> None:
        self.handle.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))

    def finish(self) -> None:
        if self.tmp is not None:
            self.handle.close()

    def abort(self) -> None:
        if self.tmp is not None:
            self.handle.close()
        super().abort()


class NpySink(_Sink):
    """Raw float32 rows appended to a scratch file; the .npy (header, then the rows) made at the end."""

    def __init__(self, output: Path | None, dimension: int) -> None:
        super().__init__(output, dimension)
        assert self.tmp is not None
        self.raw_path = self.tmp.with_suffix(".raw")
        self.raw = open(self.raw_path, "xb")  # noqa: SIM115
        self.rows = 0

    def write(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        self.raw.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        self.rows += len(vectors)

    def finish(self) -> None:
        from numpy.lib.format import open_memmap

        self.raw.close()
        array = open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(self.rows, self.dimension))
        step = max(1, (64 << 20) // (4 * self.dimension))  # copy 64 MB at a time
        with open(self.raw_path, "rb") as handle:
            for begin in range(0, self.rows, step):
                count = min(step, self.rows - begin)
                array[begin : begin + count] = np.frombuffer(
                    handle.read(count * self.dimension * 4), dtype=np.float32
                ).reshape(count, self.dimension)
        array.flush()
        del array
        self.raw_path.unlink(missing_ok=True)

    def abort(self) -> None:
        self.raw.close()
        self.raw_path.unlink(missing_ok=True)
        super().abort()


class ParquetSink(_Sink):
    """Row groups written as chunks come, with the input columns and a list<float32> column."""

    def __init__(self, output: Path | None, dimension: int) -> None:
        super().__init__(output, dimension)
        self.writer: Any = None
        self.rows = 0

    def write_records(self, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = list(dict.fromkeys(key for record in records for key in record))
        if self.writer is not None:
            extra = [name for name in names if name not in self.writer.schema.names]
            if extra:
                raise DataError(
                    f"column {extra[0]!r} first appears after row {self.rows:,}; a Parquet file has one set "
                    "of columns",
                    hint="write .jsonl instead, or give every input row the same fields",
                )
            names = list(self.writer.schema.names)
        columns = {}
        for name in names:
            values = [record.get(name) for record in records]
            if name == "embedding":
                columns[name] = pa.array(values, type=pa.list_(pa.float32()))
            elif self.writer is not None:
                kind = self.writer.schema.field(name).type
                try:
                    columns[name] = pa.array(values, type=kind)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise DataError(
                        f"column {name!r}: values after row {self.rows:,} are not {kind} like the first "
                        "ones; a Parquet column has one type",
                        hint="write .jsonl instead",
                    ) from None
            else:
                array = pa.array(values)
                columns[name] = array.cast(pa.string()) if pa.types.is_null(array.type) else array
        table = pa.table(columns)
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.tmp), table.schema)
        self.writer.write_table(table)
        self.rows += len(records)

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:  # no rows: an empty file with no columns
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"embedding": pa.array([], type=pa.list_(pa.float32()))}), str(self.tmp))

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        super().abort()
