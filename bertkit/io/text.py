"""Decode a text file line by line, whatever the tools that wrote it did to it.

Exports start with a byte-order mark, Windows tools write CRLF, old Mac tools a bare
CR, Excel's "Unicode text" is UTF-16, and files arrive compressed. Every line comes
out decoded with its 1-based line number; a line that is not UTF-8 is reported with
its line and column, never dropped silently.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bertkit.errors import DataError

DECOMPRESSORS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}

OnError = Callable[[DataError], None]


def is_stdin(path: Path) -> bool:
    """Whether `path` is `-`, the conventional name of standard input."""
    return str(path) == "-"


def raise_error(error: DataError) -> None:
    """The default OnError: stop at the first malformed row."""
    raise error


def _open_binary(path: Path) -> Any:
    """Open a file for reading bytes, decompressing .gz, .bz2 and .xz files."""
    module = DECOMPRESSORS.get(path.suffix.lower())
    if module is None:
        return path.open("rb")
    return importlib.import_module(module).open(path, "rb")


def text_lines(path: Path, report: OnError = raise_error) -> Iterator[tuple[int, str]]:
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
