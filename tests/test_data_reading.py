"""Reading labelled tables: every format, every messy-file habit, and errors that name the line."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from bertkit.errors import DataError
from bertkit.io.reading import Table, file_format, iter_rows, read_table


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def error_of(path: Path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        read_table(path, **kwargs)
    return info.value


# --------------------------------------------------------------------------- CSV and TSV


def test_csv_quoted_commas_and_multiline_fields(tmp_path):
    path = write(
        tmp_path,
        "data.csv",
        'text,label\n"good, really good",positive\n"line one\nline two",negative\nplain,positive\n',
    )
    table = read_table(path)
    assert table.columns == {
        "text": ["good, really good", "line one\nline two", "plain"],
        "label": ["positive", "negative", "positive"],
    }
    # Each row is located at the file line it starts on; the multi-line field spans 3-4.
    assert table.lines == [2, 3, 5]
    assert table.where(2) == f"{path}:5"


def test_tsv_with_bare_quotes_keeps_every_row(tmp_path):
    # GLUE-style: unquoted fields holding `"`; quote-aware parsing would merge these rows.
    rows = ['he said "wow\t1', 'a "quoted" word\t0', 'odd " count " here "\t1', "plain\t0"]
    path = write(tmp_path, "data.tsv", "sentence\tlabel\n" + "\n".join(rows) + "\n")
    table = read_table(path)
    assert len(table) == 4
    assert table.columns["sentence"] == [r.split("\t")[0] for r in rows]
    assert table.columns["label"] == ["1", "0", "1", "0"]


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbftext,label\ncaf\xc3\xa9,1\n")
    table = read_table(path)
    assert list(table.columns) == ["text", "label"]
    assert table.columns["text"] == ["café"]


@pytest.mark.parametrize("name", ["crlf.csv", "crlf.tsv"])
def test_crlf_line_endings_leave_no_carriage_returns(tmp_path, name):
    sep = "," if name.endswith("csv") else "\t"
    path = write(tmp_path, name, f"text{sep}label\r\nfirst{sep}a\r\nsecond{sep}b\r\n")
    table = read_table(path)
    assert table.columns == {"text": ["first", "second"], "label": ["a", "b"]}
    assert table.lines == [2, 3]


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    path = write(tmp_path, "gaps.csv", "text,label\n\nfirst,a\n\n\nsecond,b\n\n")
    table = read_table(path)
    assert table.columns["text"] == ["first", "second"]
    assert table.lines == [3, 6]


def test_blank_line_before_the_header_is_skipped(tmp_path):
    path = write(tmp_path, "lead.csv", "\ntext,label\nfirst,a\n")
    assert read_table(path).columns == {"text": ["first"], "label": ["a"]}


def test_ragged_row_names_file_and_line(tmp_path):
    path = write(tmp_path, "ragged.csv", "text,label\nok,1\ntoo,many,fields\nok,0\n")
    error = error_of(path)
    assert f"{path}:3" in str(error)
    assert "expected 2 fields" in str(error)
    assert "found 3" in str(error)
    assert error.hint


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "latin1.csv", "text,label\nok,1\ncafé,0\n".encode("latin-1"))
    error = error_of(path)
    assert f"{path}:3" in str(error)
    assert "UTF-8" in str(error)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", ""),
        ("empty.tsv", ""),
        ("empty.jsonl", ""),
        ("empty.txt", ""),
        ("blank.txt", "\n  \n\n"),
        ("empty.json", "[]"),
    ],
)
def test_empty_files_are_errors(tmp_path, name, content):
    path = write(tmp_path, name, content)
    error = error_of(path)
    assert str(path) in str(error)


def test_header_only_is_an_error(tmp_path):
    error = error_of(write(tmp_path, "header.csv", "text,label\n"))
    assert "no data rows" in str(error)


def test_duplicate_header_column(tmp_path):
    error = error_of(write(tmp_path, "dup.csv", "text,label,text\na,1,b\n"))
    assert "'text'" in str(error)
    assert "twice" in str(error)
    assert ":1" in str(error)


def test_unknown_extension_is_refused_with_the_extension_named(tmp_path):
    path = write(tmp_path, "data.xlsx", "text,label\na,1\n")
    error = error_of(path)
    assert ".xlsx" in str(error)
    assert "format" in error.hint


def test_format_override_reads_any_extension(tmp_path):
    path = write(tmp_path, "data.dat", "text\tlabel\na\t1\nb\t0\n")
    assert read_table(path, "tsv").columns == {"text": ["a", "b"], "label": ["1", "0"]}
    assert file_format(path, "tsv") == "tsv"
    assert file_format(tmp_path / "x.ndjson") == "jsonl"
    assert file_format(tmp_path / "X.CSV") == "csv"


def test_missing_file_and_folder_are_data_errors(tmp_path):
    assert "not found" in str(error_of(tmp_path / "nope.csv"))
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert "folder" in str(error_of(folder))


def test_gzipped_csv_is_read(tmp_path):
    path = write(tmp_path, "data.csv.gz", gzip.compress(b"text,label\na,1\nb,0\n"))
    assert read_table(path).columns == {"text": ["a", "b"], "label": ["1", "0"]}


# --------------------------------------------------------------------------- JSON, JSONL, Parquet, text


def test_jsonl_reads_objects_with_their_lines(tmp_path):
    path = write(tmp_path, "data.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n')
    table = read_table(path)
    assert table.columns == {"text": ["a", "b"], "label": [1, 0]}
    assert table.lines == [1, 3]


def test_jsonl_missing_keys_become_none(tmp_path):
    path = write(tmp_path, "data.jsonl", '{"text": "a"}\n{"text": "b", "label": 0}\n')
    assert read_table(path).columns == {"text": ["a", "b"], "label": [None, 0]}


def test_jsonl_bad_line_names_the_line(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": oops}\n')
    error = error_of(path)
    assert f"{path}:3" in str(error)
    assert "JSON" in str(error)


def test_jsonl_non_object_line(tmp_path):
    path = write(tmp_path, "list.jsonl", '{"text": "a"}\n["not", "an", "object"]\n')
    error = error_of(path)
    assert f"{path}:2" in str(error)
    assert "list" in str(error)


def test_json_list_of_records(tmp_path):
    records = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    table = read_table(write(tmp_path, "data.json", json.dumps(records, indent=2)))
    assert table.columns == {"text": ["a", "b"], "label": ["x", "y"]}
    assert table.lines is None
    assert table.where(1) == f"{tmp_path / 'data.json'} row 2"


def test_json_mapping_of_columns(tmp_path):
    path = write(tmp_path, "cols.json", json.dumps({"text": ["a", "b", "c"], "label": [1, 0, 1]}))
    assert read_table(path).columns == {"text": ["a", "b", "c"], "label": [1, 0, 1]}


def test_json_columns_of_different_lengths_are_refused(tmp_path):
    path = write(tmp_path, "cols.json", json.dumps({"text": ["a", "b"], "label": [1]}))
    assert "different lengths" in str(error_of(path))


def test_json_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "bad.json", '[\n  {"text": "a"},\n  {"text": }\n]\n')
    assert f"{path}:3" in str(error_of(path))


def test_json_list_of_non_objects(tmp_path):
    path = write(tmp_path, "items.json", '[{"text": "a"}, "b"]')
    assert "item 2" in str(error_of(path))


def test_parquet_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    texts = [f"text {i}" for i in range(10)]
    labels = [i % 3 for i in range(10)]
    pq.write_table(pa.table({"text": texts, "label": labels}), path)
    table = read_table(path)
    assert table.columns == {"text": texts, "label": labels}
    assert len(table) == 10


def test_broken_parquet_is_a_data_error(tmp_path):
    path = write(tmp_path, "broken.parquet", b"PAR1 not really parquet")
    assert "Parquet" in str(error_of(path))


def test_txt_is_one_text_per_line(tmp_path):
    path = write(tmp_path, "texts.txt", "\ufefffirst line\r\n\nsecond, with comma\n  \nthird\n")
    table = read_table(path)
    assert table.columns == {"text": ["first line", "second, with comma", "third"]}
    assert table.lines == [1, 3, 5]
    assert read_table(path, text_column="sentence").columns["sentence"][0] == "first line"


def test_table_head():
    table = Table("t", {"text": ["a", "b", "c"]}, [2, 3, 4])
    head = table.head(2)
    assert head.columns == {"text": ["a", "b"]}
    assert head.lines == [2, 3]
    assert table.head(None) is table
    assert table.head(10) is table


# --------------------------------------------------------------------------- on_error and stdin


def test_on_error_skips_bad_jsonl_rows_and_reports_each(tmp_path):
    lines = []
    for i in range(1, 11):
        if i in (3, 7):
            lines.append("{broken")
        elif i == 9:
            lines.append("42")
        else:
            lines.append(json.dumps({"text": f"row {i}"}))
    path = write(tmp_path, "mixed.jsonl", "\n".join(lines) + "\n")
    errors: list[DataError] = []
    rows = list(iter_rows(path, on_error=errors.append))
    assert [r["text"] for _, r in rows] == [f"row {i}" for i in (1, 2, 4, 5, 6, 8, 10)]
    assert [line for line, _ in rows] == [1, 2, 4, 5, 6, 8, 10]
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}:3", f"{path}:7", f"{path}:9"]


def test_on_error_skips_ragged_csv_rows_and_bad_utf8(tmp_path):
    content = b"text,label\nr1,a\nbad,row,here\nr3,b\n\xff\xfe,c\nr5,d\n"
    path = write(tmp_path, "mixed.csv", content)
    errors: list[DataError] = []
    rows = list(iter_rows(path, on_error=errors.append))
    assert [r["text"] for _, r in rows] == ["r1", "r3", "r5"]
    assert len(errors) == 2
    assert f"{path}:3" in str(errors[0])
    assert f"{path}:5" in str(errors[1])
    assert "UTF-8" in str(errors[1])


def test_on_error_keeps_true_line_numbers_after_an_undecodable_csv_line(tmp_path):
    path = write(tmp_path, "shift.csv", b"text,label\na,1\n\xff,0\nb,1\nc,0,extra\n")
    errors: list[DataError] = []
    rows = list(iter_rows(path, on_error=errors.append))
    assert [line for line, _ in rows] == [2, 4]
    assert f"{path}:5" in str(errors[1])


def test_without_on_error_the_first_bad_row_raises(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"text": "a"}\nnope\n')
    rows = iter_rows(path)
    assert next(rows) == (1, {"text": "a"})
    with pytest.raises(DataError, match=r":2: not valid JSON"):
        next(rows)


class _FakeStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_stdin_defaults_to_text_lines(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b"first\n\nsecond\n"))
    assert list(iter_rows(Path("-"))) == [(1, {"text": "first"}), (3, {"text": "second"})]


def test_stdin_with_a_declared_format(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b'{"text": "a", "id": 1}\n{"text": "b", "id": 2}\n'))
    rows = list(iter_rows(Path("-"), "jsonl"))
    assert [r for _, r in rows] == [{"text": "a", "id": 1}, {"text": "b", "id": 2}]


def test_stdin_csv(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b'text,label\n"a, b",1\n'))
    assert list(iter_rows(Path("-"), "csv")) == [(2, {"text": "a, b", "label": "1"})]


def test_stdin_cannot_stream_json(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b"[]"))
    with pytest.raises(DataError, match="cannot be streamed"):
        list(iter_rows(Path("-"), "json"))
