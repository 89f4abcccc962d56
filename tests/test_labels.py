"""Label decisions (single, multi, regression), label encoding, and the classification data loader."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest

from bertkit.errors import DataError
from bertkit.io.reading import Table, read_table
from bertkit.tasks.classification.data import load_classification_data
from bertkit.tasks.classification.labels import LabelSpec, detect_labels
from bertkit.tasks.classification.recipe import ClassificationData as DataSection
from bertkit.tasks.classification.recipe import LabelsSection


def table(labels: list, *, lines: list[int] | None = None, name: str = "train.csv") -> Table:
    texts = [f"text {i}" for i in range(len(labels))]
    if lines is None:
        lines = list(range(2, len(labels) + 2))
    return Table(name, {"text": texts, "label": list(labels)}, lines)


# --------------------------------------------------------------------------- detect_labels


def test_string_labels_are_single_label_with_sorted_names():
    spec = detect_labels(table(["pos", "neg", "neutral", "neg"]), "label")
    assert spec.problem == "single"
    assert spec.names == ("neg", "neutral", "pos")
    assert spec.num_labels == 3
    assert spec.problem_type == "single_label_classification"
    assert spec.id2label() == {0: "neg", 1: "neutral", 2: "pos"}
    assert "class names" in spec.reason


def test_integer_labels_are_single_label():
    spec = detect_labels(table([1, 0, 1, 0]), "label")
    assert spec.problem == "single"
    assert spec.names == ("0", "1")


def test_numeric_strings_from_a_csv_are_class_ids_sorted_numerically(tmp_path):
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([("a", "10"), ("b", "2"), ("c", "1"), ("d", "2")])
    spec = detect_labels(read_table(path), "label")
    assert spec.problem == "single"
    assert spec.names == ("1", "2", "10")  # numerically, not "1", "10", "2"
    assert spec.encode(read_table(path), "label") == [2, 1, 0, 1]


def test_integral_floats_are_the_same_labels_as_ints():
    spec = detect_labels(table([0.0, 1.0, 1, 0]), "label")
    assert spec.problem == "single"
    assert spec.names == ("0", "1")


def test_float_labels_are_regression():
    data = table([0.5, 1.25, 3.0, 4.75])
    spec = detect_labels(data, "label")
    assert spec.problem == "regression"
    assert spec.num_labels == 1
    assert spec.names == ()
    assert spec.problem_type == "regression"
    assert spec.id2label() == {0: "score"}
    assert spec.encode(data, "label") == [0.5, 1.25, 3.0, 4.75]


def test_float_strings_are_regression():
    spec = detect_labels(table(["0.5", "3.8", "1", "4.2"]), "label")
    assert spec.problem == "regression"


def test_lists_are_multi_label():
    data = table([["food", "service"], ["food"], ["price"], []])
    spec = detect_labels(data, "label")
    assert spec.problem == "multi"
    assert spec.names == ("food", "price", "service")
    assert spec.problem_type == "multi_label_classification"
    assert spec.encode(data, "label") == [
        [1.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0],
    ]


def test_separated_strings_are_multi_label_with_the_separator():
    data = table(["food|service", "food", "price | service", "price"])
    spec = detect_labels(data, "label", separator="|")
    assert spec.problem == "multi"
    assert spec.separator == "|"
    assert spec.names == ("food", "price", "service")
    assert spec.encode(data, "label") == [
        [1.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0],
    ]
    assert "'|'" in spec.reason


def test_mixed_label_types_name_the_first_odd_line():
    data = table(["pos", "neg", 3, "pos"], lines=[2, 3, 7, 8])
    with pytest.raises(DataError) as info:
        detect_labels(data, "label")
    message = str(info.value)
    assert "train.csv:7" in message
    assert "mixes label types" in message
    assert "labels.type" in info.value.hint


@pytest.mark.parametrize("empty", [None, "", "  ", float("nan")])
def test_empty_or_nan_label_names_the_line(empty):
    data = table(["pos", "neg", empty, "pos"], lines=[2, 3, 9, 10])
    with pytest.raises(DataError, match=r"train\.csv:9: empty label in column 'label'"):
        detect_labels(data, "label")


@pytest.mark.parametrize("word", ["none", "NaN", "null"])
def test_a_class_named_like_a_missing_value_is_a_class(word):
    """`none` is a real class in many tasks (no entity, no emotion): it is read as one."""
    spec = detect_labels(table(["pos", word, "neg", word]), "label")
    assert spec.names == tuple(sorted(["neg", "pos", word]))


def test_single_class_is_refused():
    with pytest.raises(DataError, match="single label value 'pos'") as info:
        detect_labels(table(["pos", "pos", "pos"]), "label")
    assert "two classes" in info.value.hint


def test_declared_type_overrides_detection():
    spec = detect_labels(table([0, 1, 2, 1]), "label", declared="regression")
    assert spec.problem == "regression"
    assert spec.reason == "set by labels.type"


def test_non_numeric_regression_label_names_the_line():
    with pytest.raises(DataError, match=r"train\.csv:4: regression label 'high'"):
        detect_labels(table(["1.5", "2.5", "high"]), "label", declared="regression")


def test_label_names_give_integer_ids_display_names():
    data = table([0, 2, 1, 0])
    spec = detect_labels(data, "label", names=["negative", "neutral", "positive"])
    assert spec.problem == "single"
    assert spec.names == ("negative", "neutral", "positive")
    assert spec.id2label() == {0: "negative", 1: "neutral", 2: "positive"}
    assert spec.encode(data, "label") == [0, 2, 1, 0]


def test_label_names_fix_the_id_order_of_named_labels():
    spec = detect_labels(table(["pos", "neg"]), "label", names=["pos", "neg", "neutral"])
    assert spec.names == ("pos", "neg", "neutral")
    assert spec.encode(table(["neg", "neutral", "pos"]), "label") == [1, 2, 0]


def test_label_names_missing_a_label_is_an_error():
    with pytest.raises(DataError) as info:
        detect_labels(table(["pos", "neg", "neutral"]), "label", names=["pos", "neg"])
    assert "neutral" in str(info.value)
    assert "labels.names" in str(info.value)


def test_integer_ids_out_of_range_of_label_names_are_an_error():
    with pytest.raises(DataError, match="not in labels.names"):
        detect_labels(table([0, 1, 5]), "label", names=["a", "b"])


# --------------------------------------------------------------------------- LabelSpec.encode


def test_unseen_validation_labels_are_all_named_with_their_first_line():
    spec = detect_labels(table(["pos", "neg"]), "label")
    validation = table(["pos", "meh", "neg", "awful", "meh"], lines=[2, 3, 4, 5, 6], name="validation.csv")
    with pytest.raises(DataError) as info:
        spec.encode(validation, "label")
    message = str(info.value)
    assert "2 label(s) not seen in training" in message
    assert "'meh' (first at validation.csv:3)" in message
    assert "'awful' (first at validation.csv:5)" in message


def test_unseen_multi_labels_are_named():
    spec = detect_labels(table(["a|b", "b"]), "label", separator="|")
    with pytest.raises(DataError, match="'c'"):
        spec.encode(table(["a|c"], name="validation.csv"), "label")


def test_empty_validation_label_names_the_line():
    spec = detect_labels(table(["pos", "neg"]), "label")
    with pytest.raises(DataError, match=r"validation\.csv:3: empty label"):
        spec.encode(table(["pos", ""], name="validation.csv"), "label")


def test_integer_ids_fall_back_for_named_labels():
    spec = LabelSpec("single", ("negative", "positive"))
    assert spec.encode(table([1, "0", "positive", 0.0]), "label") == [1, 0, 1, 0]


def test_integer_ids_beyond_the_names_are_unseen():
    spec = LabelSpec("single", ("negative", "positive"))
    with pytest.raises(DataError, match="'2'"):
        spec.encode(table([0, 2]), "label")


def test_numeric_label_names_do_not_use_the_id_fallback():
    # Names "1" and "2": a value "0" is an unknown label, not id 0 (which is "1").
    spec = LabelSpec("single", ("1", "2"))
    assert spec.encode(table(["2", 1]), "label") == [1, 0]
    with pytest.raises(DataError, match="'0'"):
        spec.encode(table(["0", "1"]), "label")


# --------------------------------------------------------------------------- load_classification_data


def _write_labelled(path: Path, rows: list[tuple[str, str]], header=("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _imbalanced(tmp_path: Path) -> Path:
    # 30 rows: 20 "a", 10 "b"; interleaved so every row is distinct and findable.
    rows = [(f"row {i}", "b" if i % 3 == 2 else "a") for i in range(30)]
    return _write_labelled(tmp_path / "train.csv", rows)


def test_validation_split_is_stratified_seeded_and_sized(tmp_path):
    data = DataSection(train=str(_imbalanced(tmp_path)), validation_split=0.3)
    first = load_classification_data(data, LabelsSection(), seed=7)
    again = load_classification_data(data, LabelsSection(), seed=7)
    other = load_classification_data(data, LabelsSection(), seed=8)

    train, held = first.tables["train"], first.tables["validation"]
    assert (len(train), len(held)) == (21, 9)
    assert Counter(held.columns["label"]) == {"a": 6, "b": 3}  # the 2:1 share, stratified
    # No row lost or duplicated, and each keeps its file line.
    assert sorted(train.columns["text"] + held.columns["text"]) == sorted(f"row {i}" for i in range(30))
    for part in (train, held):
        assert [int(t.split()[1]) + 2 for t in part.columns["text"]] == part.lines
    # Same seed, same split; another seed, another split.
    assert again.tables["validation"].columns == held.columns
    assert other.tables["validation"].columns != held.columns
    # Targets line up with the split tables.
    assert first.targets["validation"] == [first.labels.names.index(v) for v in held.columns["label"]]
    assert any("9 rows carved from train (30%, stratified, seed 7)" in n for n in first.notes)


def test_validation_split_falls_back_to_random_for_a_singleton_class(tmp_path):
    rows = [(f"row {i}", "a" if i else "b") for i in range(20)]
    path = _write_labelled(tmp_path / "train.csv", rows)
    loaded = load_classification_data(
        DataSection(train=str(path), validation_split=0.25), LabelsSection(), seed=1
    )
    assert len(loaded.tables["validation"]) == 5
    assert any("random" in n for n in loaded.notes)


def test_limit_keeps_the_first_rows_and_says_so(tmp_path):
    data = DataSection(train=str(_imbalanced(tmp_path)))
    loaded = load_classification_data(data, LabelsSection(), seed=1, limit=6)
    assert loaded.tables["train"].columns["text"] == [f"row {i}" for i in range(6)]
    assert any("30 rows" in n and "first 6 used" in n for n in loaded.notes)


def test_missing_column_suggests_the_closest(tmp_path):
    path = _write_labelled(tmp_path / "train.csv", [("a", "x"), ("b", "y")], header=("sentence", "label"))
    with pytest.raises(DataError) as info:
        load_classification_data(DataSection(train=str(path), text="sentense"), LabelsSection(), seed=1)
    assert "no column 'sentense' (data.text)" in str(info.value)
    assert "sentence, label" in str(info.value)
    assert "data.text=sentence" in info.value.hint


def test_missing_label_column_in_validation_is_named(tmp_path):
    train = _write_labelled(tmp_path / "train.csv", [("a", "x"), ("b", "y")])
    validation = _write_labelled(tmp_path / "validation.csv", [("a", "x")], header=("text", "labels"))
    with pytest.raises(DataError) as info:
        load_classification_data(
            DataSection(train=str(train), validation=str(validation)), LabelsSection(), seed=1
        )
    assert "validation.csv" in str(info.value)
    assert "data.label=labels" in info.value.hint


def test_unseen_validation_label_fails_before_any_tokenizing(tmp_path):
    train = _write_labelled(tmp_path / "train.csv", [("a", "x"), ("b", "y")])
    validation = _write_labelled(tmp_path / "validation.csv", [("a", "x"), ("c", "z")])
    with pytest.raises(DataError, match=r"'z' \(first at .*validation\.csv:3\)"):
        load_classification_data(
            DataSection(train=str(train), validation=str(validation)), LabelsSection(), seed=1
        )


def test_multi_label_data_with_separator_and_regression_targets(tmp_path):
    multi = _write_labelled(tmp_path / "multi.csv", [("a", "x;y"), ("b", "y"), ("c", "z")])
    loaded = load_classification_data(DataSection(train=str(multi)), LabelsSection(separator=";"), seed=1)
    assert loaded.labels.problem == "multi"
    assert loaded.targets["train"] == [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]

    scores = _write_labelled(tmp_path / "scores.csv", [("a", "0.25"), ("b", "4.5")])
    loaded = load_classification_data(DataSection(train=str(scores)), LabelsSection(), seed=1)
    assert loaded.labels.problem == "regression"
    assert all(isinstance(v, float) and math.isfinite(v) for v in loaded.targets["train"])
