"""Sentence embeddings on the tiny BERT: embed, evaluate, search, train, export; refusals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from bertkit.recipe import load_recipe

TEXTS = ["the film was great", "i loved the food", "the service was slow and rude", "a good book"]
NOUNS = ["film", "movie", "food", "service", "book", "show", "meal", "place", "staff", "story"]
GOOD = ["good", "great", "excellent", "wonderful", "lovely", "fun", "nice", "tasty", "friendly"]
BAD = ["bad", "terrible", "awful", "boring", "dull", "poor", "rude", "cold", "slow"]


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, tiny_model_dir) -> Path:
    """A sentence-transformers folder of the tiny BERT with CLS pooling and normalisation."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    folder = tmp_path_factory.mktemp("tiny-st")
    transformer = Transformer(str(tiny_model_dir))
    model = SentenceTransformer(
        modules=[
            transformer,
            Pooling(transformer.get_embedding_dimension(), pooling_mode="cls"),
            Normalize(),
        ],
        device="cpu",
    )
    model.save(str(folder))
    return folder


def test_a_plain_bert_embeds_with_mean_pooling_as_sentence_transformers_does(run_cli, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    result = run_cli("embed", "--model", tiny_model_dir, *TEXTS)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    ours = np.array([r["embedding"] for r in rows], dtype=np.float32)
    theirs = SentenceTransformer(str(tiny_model_dir), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert "mean pooling (bertkit's default)" in result.stderr


def test_a_sentence_transformers_folder_keeps_its_pooling_and_normalisation(run_cli, st_folder):
    from sentence_transformers import SentenceTransformer

    result = run_cli("embed", "--model", st_folder, *TEXTS)
    assert result.exit_code == 0, result.output
    ours = np.array([json.loads(line)["embedding"] for line in result.stdout.splitlines()])
    np.testing.assert_allclose(
        ours, SentenceTransformer(str(st_folder), device="cpu").encode(TEXTS), atol=1e-6
    )
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    assert "cls pooling (the model's own), normalised" in result.stderr
    # --pooling and --normalize override the folder's own.
    mean = run_cli("embed", "--model", st_folder, "--pooling", "mean", "--no-normalize", *TEXTS)
    assert mean.exit_code == 0, mean.output
    vectors = np.array([json.loads(line)["embedding"] for line in mean.stdout.splitlines()])
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_a_file_streams_to_npy_parquet_and_jsonl_in_input_order(
    run_cli, tiny_model_dir, tmp_path, monkeypatch
):
    import pyarrow.parquet as pq

    import bertkit.tasks.embedding.embed as embed

    monkeypatch.setattr(embed, "CHUNK", 3)  # several chunks: order and streaming across them
    source = tmp_path / "in.jsonl"
    rows = [{"id": i, "text": TEXTS[i % 4] + " " * i} for i in range(8)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    vectors = {}
    for suffix in ("npy", "parquet", "jsonl"):
        out = tmp_path / f"out.{suffix}"
        result = run_cli("embed", "--model", tiny_model_dir, "--input", source, "--output", out)
        assert result.exit_code == 0, result.output
        if suffix == "npy":
            vectors[suffix] = np.load(out)
        elif suffix == "parquet":
            table = pq.read_table(out).to_pydict()
            assert table["id"] == list(range(8))
            vectors[suffix] = np.array(table["embedding"])
        else:
            lines = [json.loads(line) for line in out.read_text().splitlines()]
            assert [line["id"] for line in lines] == list(range(8))
            vectors[suffix] = np.array([line["embedding"] for line in lines])
    assert vectors["npy"].shape == (8, 32) and vectors["npy"].dtype == np.float32
    np.testing.assert_allclose(vectors["parquet"], vectors["npy"], atol=1e-6)
    np.testing.assert_allclose(vectors["jsonl"], vectors["npy"], atol=1e-6)
    np.testing.assert_allclose(vectors["npy"][4], vectors["npy"][0], atol=1e-5)  # same text, trailing spaces
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_token_vectors_come_with_their_character_offsets(run_cli, tiny_model_dir):
    result = run_cli("embed", "--model", tiny_model_dir, "--tokens", "the films were good")
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    pieces = [(t["text"], t["start"], t["end"]) for t in row["tokens"]]
    assert pieces[0] == ("", 0, 0) and pieces[-1] == ("", 0, 0)  # [CLS] and [SEP]
    assert [p[0] for p in pieces[1:-1]] == ["the", "film", "s", "were", "good"]
    assert all(len(t["vector"]) == 32 for t in row["tokens"])


def test_wrong_outputs_and_options_are_refused(run_cli, tiny_model_dir, tmp_path):
    npy_tokens = run_cli("embed", "--model", tiny_model_dir, "--tokens", "x", "-o", tmp_path / "t.npy")
    assert npy_tokens.exit_code == 2
    assert "--tokens: token vectors do not fit one .npy array" in npy_tokens.stderr
    csv = run_cli("embed", "--model", tiny_model_dir, "x", "-o", tmp_path / "v.csv")
    assert csv.exit_code == 2 and "cannot tell the output format" in csv.stderr
    quantized = run_cli("embed", "--model", tiny_model_dir, "--quantize", "int8", "x")
    assert quantized.exit_code == 2 and "--quantize: with --backend onnx" in quantized.stderr


# ------------------------------------------------------------------------------- evaluation


def _sts_file(path: Path) -> Path:
    rows = ["sentence1\tsentence2\tscore"]
    for i in range(24):
        a, b = NOUNS[i % 10], NOUNS[(i + 3) % 10]
        rows.append(
            f"the {a} was {GOOD[i % 9]}\tthe {a if i % 2 else b} was {GOOD[(i + i % 3) % 9]}\t{i % 6}"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _beir(folder: Path) -> Path:
    folder.mkdir()
    (folder / "qrels").mkdir()
    docs = [
        {"_id": f"d{i}", "title": NOUNS[i], "text": f"the {NOUNS[i]} was {GOOD[i % 9]} ."} for i in range(10)
    ]
    queries = [{"_id": f"q{i}", "text": f"{NOUNS[i]} {GOOD[i % 9]}"} for i in range(10)]
    for name, rows in (("corpus", docs), ("queries", queries)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for split, ids in (("train", range(0, 6)), ("test", range(6, 10))):
        lines = ["query-id\tcorpus-id\tscore", *(f"q{i}\td{i}\t1" for i in ids)]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_check_reports_a_beir_folders_lengths_empty_texts_repeats_and_leakage(
    run_cli, tmp_path, tiny_model_dir
):
    folder = _beir(tmp_path / "beir")
    corpus = folder / "corpus.jsonl"
    long_text = " ".join(["word"] * 80)
    extra = [
        {"_id": "d10", "title": "", "text": "  "},
        *({"_id": f"long{i}", "text": long_text} for i in range(4)),
    ]
    corpus.write_text(corpus.read_text() + "".join(json.dumps(r) + "\n" for r in extra), encoding="utf-8")
    queries = folder / "queries.jsonl"
    # q10 repeats q7's text; it is judged in test, and train's q2 comes back as a test query.
    added = [{"_id": "q10", "text": "place tasty"}, {"_id": "q11", "text": "food excellent"}]
    queries.write_text(queries.read_text() + "".join(json.dumps(r) + "\n" for r in added), encoding="utf-8")
    with (folder / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("q10\td5\t1\nq11\td2\t1\n")
    data = {"train": str(folder), "test": str(folder), "qrels": {"test": "test"}, "max_length": 32}
    recipe = {"task": "embedding", "model": {"name": str(tiny_model_dir)}, "data": data,
              "output": {"root": str(tmp_path / "runs")}}  # fmt: skip
    path = tmp_path / "beir.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    result = run_cli("check", "--recipe", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    test = report["splits"]["test"]
    assert test["rows"] == 6 and test["duplicates"] == 1 and test["in_train"] == 1
    assert test["tokens"]["counted"] == 15 and test["tokens"]["truncated"] == 4
    messages = {f["code"]: f["message"] for f in report["findings"] if f["split"] == "test"}
    assert "1 of the documents are empty (ids 'd10')" in messages["empty_texts"]
    assert (
        "1 judged queries repeat an earlier query's text under another id, e.g. 'q10'"
        in messages["duplicates"]
    )
    assert "are longer than data.max_length=32 tokens" in messages["truncation"]
    assert "also appear in train, e.g. 'food excellent'" in messages["leakage"]
    assert any(
        "6 judged queries, 15 documents, 1.00 relevant documents per query" in n for n in report["notes"]
    )


def test_embed_refuses_file_options_with_texts_given_as_arguments(run_cli, tiny_model_dir):
    result = run_cli("embed", "--model", tiny_model_dir, "a text", "--text-column", "body")
    assert result.exit_code == 2
    assert "--text-column: describes an --input file" in result.stderr


def test_similarity_evaluation_scores_cosines_against_gold(run_cli, st_folder, tmp_path):
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    data = _sts_file(tmp_path / "sts.tsv")
    result = run_cli("eval", "--model", st_folder, "--data", data, "--output", tmp_path / "report", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = [line.split("\t") for line in data.read_text().splitlines()[1:]]
    model = SentenceTransformer(str(st_folder), device="cpu")
    a, b = (model.encode([r[k] for r in rows]).astype(np.float64) for k in (0, 1))
    cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    expected = 100 * spearmanr([float(r[2]) for r in rows], cosines).statistic
    assert payload["metrics"]["spearman"] == pytest.approx(expected, abs=1e-4)
    report = Path(payload["report"])
    assert len((report / "results.jsonl").read_text().splitlines()) == 24
    assert "pairs ranked furthest from their gold score" in (report / "report.md").read_text()


def test_retrieval_evaluation_matches_sentence_transformers_and_lists_the_worst_queries(
    run_cli, st_folder, tmp_path
):
    from sentence_transformers import SentenceTransformer

    from bertkit.tasks.embedding.data import read_retrieval
    from bertkit.tasks.embedding.evaluate import retrieval_evaluator

    folder = _beir(tmp_path / "beir")
    result = run_cli(
        "eval",
        "--model",
        st_folder,
        "--data",
        folder,
        "--split",
        "test",
        "--output",
        tmp_path / "report",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    reference = retrieval_evaluator(read_retrieval(folder, "test"), 32)(
        SentenceTransformer(str(st_folder), device="cpu")
    )
    assert payload["metrics"]["ndcg@10"] == pytest.approx(100 * reference["cosine_ndcg@10"])
    assert payload["metrics"]["mrr@10"] == pytest.approx(100 * reference["cosine_mrr@10"])
    per_query = [
        json.loads(line) for line in (Path(payload["report"]) / "results.jsonl").read_text().splitlines()
    ]
    assert len(per_query) == 4
    # The report's per-query scores average to the evaluator's.
    assert 100 * np.mean([q["ndcg@10"] for q in per_query]) == pytest.approx(payload["metrics"]["ndcg@10"])
    assert 100 * np.mean([q["reciprocal_rank@10"] for q in per_query]) == pytest.approx(
        payload["metrics"]["mrr@10"]
    )


# ------------------------------------------------------------------------------- training


def _pairs_file(path: Path, count: int, templates: list[str]) -> Path:
    """(anchor, positive) pairs that share no word: each noun goes with its own adjective.

    An untrained encoder has nothing to match them by; training teaches the pairing.
    """
    rows = []
    for i in range(count):
        noun, adjective = NOUNS[i % 9], GOOD[i % 9]
        rows.append({"anchor": f"the {noun}", "positive": templates[i % len(templates)].format(adjective)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TRAIN_TEMPLATES = ["it was {} .", "really {} !", "so {} , i liked it", "always {}"]
HELD_OUT_TEMPLATES = ["we loved it , very {}"]


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory, tiny_model_dir):
    from bertkit.training.run import train_recipe

    folder = tmp_path_factory.mktemp("embedding-run")
    recipe = {
        "task": "embedding",
        "model": {"name": str(tiny_model_dir)},
        "data": {
            "train": str(_pairs_file(folder / "train.jsonl", 108, TRAIN_TEMPLATES)),
            "validation": str(_pairs_file(folder / "validation.jsonl", 9, HELD_OUT_TEMPLATES)),
            "test": str(_sts_file(folder / "sts.tsv")),
            "max_length": 32,
        },
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.002, "seed": 7, "logging_steps": 2},
        "output": {"root": str(folder / "runs")},
    }
    path = folder / "embedding.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    result = train_recipe(load_recipe(path))
    return SimpleNamespace(run=result.run.path, metrics=result.metrics, recipe=path, folder=folder)


def test_training_saves_a_sentence_transformers_folder_that_embeds_as_bertkit_does(run_cli, embedding_run):
    from sentence_transformers import SentenceTransformer

    model_dir = embedding_run.run / "model"
    assert (model_dir / "modules.json").is_file()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["bertkit"] == {"task": "embedding", "pooling": "mean", "normalize": False}
    result = run_cli("embed", "--model", embedding_run.run, *TEXTS)
    assert result.exit_code == 0, result.output
    ours = np.array([json.loads(line)["embedding"] for line in result.stdout.splitlines()])
    np.testing.assert_allclose(
        ours, SentenceTransformer(str(model_dir), device="cpu").encode(TEXTS), atol=1e-6
    )


def test_in_batch_negatives_training_improves_retrieval(embedding_run, tiny_model_dir):
    validation = embedding_run.metrics["validation"]
    assert set(validation) >= {"ndcg@10", "mrr@10"}
    # Retrieval on the held-out pairs beats the untrained encoder's by far.
    from bertkit.recipe.base import DataSource
    from bertkit.tasks.embedding.data import read_pairs
    from bertkit.tasks.embedding.encoder import load_encoder
    from bertkit.tasks.embedding.evaluate import retrieval_scores
    from bertkit.tasks.embedding.train import as_retrieval

    held_out = as_retrieval(read_pairs(DataSource(path=str(embedding_run.folder / "validation.jsonl"))))
    untrained, _ = retrieval_scores(load_encoder(tiny_model_dir, device="cpu"), held_out, 32)
    assert validation["ndcg@10"] > untrained["ndcg@10"] + 10


def test_eval_of_the_saved_model_reproduces_trainings_test_scores(run_cli, embedding_run):
    result = run_cli("eval", "--model", embedding_run.run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["spearman"] == pytest.approx(embedding_run.metrics["test"]["spearman"], abs=1e-3)


def test_search_ranks_the_corpus_by_cosine_similarity(run_cli, embedding_run, tmp_path):
    corpus = tmp_path / "corpus.txt"
    documents = [f"the {noun} was really good ." for noun in NOUNS]
    corpus.write_text("\n".join(documents) + "\n", encoding="utf-8")
    result = run_cli(
        "predict", "--model", embedding_run.run, "--corpus", corpus, "--top-k", "3", "book good", "--json"
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    scores = [hit["score"] for hit in row["results"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert row["results"][0]["text"] == "the book was really good ."
    refused = run_cli("predict", "--model", embedding_run.run, "book good")
    assert refused.exit_code == 2 and "give --corpus FILE" in refused.stderr


def test_predict_and_eval_take_a_model_alias_as_embed_does(run_cli, tmp_path):
    from bertkit.models import packaged_model_dir

    if packaged_model_dir("minilm") is None:
        pytest.skip("the minilm weights package is not installed")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a man is playing a guitar .\nthe stock market fell today .\n", encoding="utf-8")
    found = run_cli("predict", "--model", "minilm", "--corpus", corpus, "someone plays music", "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)[0]["results"][0]["text"] == "a man is playing a guitar ."
    scored = run_cli("eval", "--model", "minilm", "--data", _sts_file(tmp_path / "sts.tsv"), "--json",
                     "--output", tmp_path / "report")  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert -100 <= json.loads(scored.stdout)["metrics"]["spearman"] <= 100
    missing = run_cli("predict", "--model", "no-such-org/no-such-model", "--corpus", corpus, "text")
    assert missing.exit_code == 1
    assert "no-such-org/no-such-model: not a folder, and the Hugging Face Hub cannot give" in missing.stderr


def test_the_onnx_export_puts_pooling_inside_the_graph(run_cli, embedding_run, st_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    for name, model in (("run", embedding_run.run), ("st", st_folder)):
        out = tmp_path / name
        exported = run_cli("export", "--model", model, "--output", out, "--quantize", "int8")
        assert exported.exit_code == 0, exported.output
        info = json.loads((out / "export.json").read_text())
        assert info["parity"]["fp32"]["passed"] is True
        torch_rows = run_cli("embed", "--model", model, *TEXTS).stdout.splitlines()
        onnx_rows = run_cli("embed", "--model", out, "--backend", "onnx", *TEXTS).stdout.splitlines()
        ours = np.array([json.loads(line)["embedding"] for line in torch_rows])
        theirs = np.array([json.loads(line)["embedding"] for line in onnx_rows])
        np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_blank_lines_keep_their_row_so_npy_rows_line_up_with_the_input(run_cli, tiny_model_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("the film was great\n\ni loved the food\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    result = run_cli("embed", "--model", tiny_model_dir, "--input", source, "--output", out)
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (3, 32)
    refused = run_cli("embed", "--model", tiny_model_dir, "--input", source, "-o", out, "--on-error", "skip")
    assert refused.exit_code == 2 and "rows would stop lining up" in refused.stderr


def test_parquet_takes_rows_whose_columns_vary_until_a_new_column_appears(
    run_cli, tiny_model_dir, tmp_path, monkeypatch
):
    import pyarrow.parquet as pq

    import bertkit.tasks.embedding.embed as embed

    monkeypatch.setattr(embed, "CHUNK", 2)
    source = tmp_path / "in.jsonl"
    rows = [{"text": "a good film", "note": None}, {"text": "a bad film"}, {"note": "x", "text": "the food"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.parquet"
    result = run_cli("embed", "--model", tiny_model_dir, "--input", source, "--output", out)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pydict()
    assert table["text"] == ["a good film", "a bad film", "the food"]
    assert table["note"] == [None, None, "x"]
    source.write_text(source.read_text() + json.dumps({"text": "late", "extra": 1}) + "\n", encoding="utf-8")
    late = run_cli("embed", "--model", tiny_model_dir, "--input", source, "--output", out)
    assert late.exit_code == 1 and "column 'extra' first appears after row" in late.stderr
    assert not list(tmp_path.glob(".out.parquet*")), "temporary files left behind"


def test_scored_pairs_train_with_cosent_and_select_by_spearman(tmp_path, tiny_model_dir):
    from bertkit.training.run import train_recipe

    data = _sts_file(tmp_path / "sts.tsv")
    recipe = {
        "task": "embedding",
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": str(data), "validation": str(data), "max_length": 32},
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 0.001, "seed": 3},
        "output": {"root": str(tmp_path / "runs")},
    }
    path = tmp_path / "sts.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    result = train_recipe(load_recipe(path))
    assert result.main_metric == "spearman"
    assert "loss: CoSENTLoss (from the data)" in result.notes
    assert set(result.metrics["validation"]) >= {"spearman", "pearson"}


def test_a_loss_the_data_cannot_feed_is_refused(run_cli, tmp_path, tiny_model_dir):
    data = _pairs_file(tmp_path / "pairs.jsonl", 12, TRAIN_TEMPLATES)
    recipe = {"task": "embedding", "model": {"name": str(tiny_model_dir)}, "data": {"train": str(data)},
              "embedding": {"loss": "cosent"}, "output": {"root": str(tmp_path / "runs")}}  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    result = run_cli("finetune", "--recipe", path)
    assert result.exit_code == 1
    assert "embedding.loss: cosent needs scored pairs" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding": {"score_range": [0, 5]}}, "embedding.score_range: only the cosine loss maps scores"),
        (
            {"data": {"texts": ["sentence1", "sentence2", "other"], "score": "score"}},
            "data.score: 'score' with three text columns",
        ),
    ],
    ids=["score-range-with-cosent", "score-with-triplets"],
)
def test_settings_the_data_or_loss_would_ignore_are_refused(
    run_cli, tmp_path, tiny_model_dir, change, message
):
    data = tmp_path / "sts.tsv"
    lines = _sts_file(data).read_text(encoding="utf-8").splitlines()
    data.write_text(
        "\n".join([lines[0] + "\tother"] + [f"{line}\tsomething else" for line in lines[1:]]) + "\n",
        encoding="utf-8",
    )
    recipe = {"task": "embedding", "model": {"name": str(tiny_model_dir)}, "data": {"train": str(data)},
              "output": {"root": str(tmp_path / "runs")}}  # fmt: skip
    for section, values in change.items():
        recipe.setdefault(section, {}).update(values)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    for command in ("check", "finetune"):
        result = run_cli(command, "--recipe", path)
        assert result.exit_code == 1, (command, result.output)
        assert message in result.stderr + result.stdout, command
    assert not (tmp_path / "runs").exists()


def test_two_processes_train_an_encoder_at_default_settings(run_cli, tmp_path, tiny_model_dir):
    """Two processes (gloo): in-batch negatives gathered across them; eval of the saved model = training."""
    import os
    import subprocess
    import sys

    recipe = {
        "task": "embedding",
        "model": {"name": str(tiny_model_dir)},
        "data": {
            "train": str(_pairs_file(tmp_path / "train.jsonl", 64, TRAIN_TEMPLATES)),
            "validation": str(_pairs_file(tmp_path / "validation.jsonl", 9, HELD_OUT_TEMPLATES)),
            "max_length": 32,
        },
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 0.002, "seed": 7},
        "output": {"root": str(tmp_path / "runs")},
    }
    path = tmp_path / "embedding.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BERTKIT_CACHE": str(tmp_path / "cache")}
    env.pop("BERTKIT_DEBUG", None)
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bertkit", "finetune", "--recipe", str(path), "--set", f"output.dir={run}",
         "--num-processes", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "environment.json").read_text())["ran"]["processes"] == 2
    trained = json.loads((run / "metrics.json").read_text())["validation"]
    result = run_cli("eval", "--model", run, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["ndcg@10"] == pytest.approx(trained["ndcg@10"], abs=1e-3)


def test_a_run_resumes_from_its_sentence_transformers_checkpoint(run_cli, tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    run = tmp_path / "run"
    recipe = {
        "task": "embedding",
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": str(_pairs_file(tmp_path / "train.jsonl", 48, TRAIN_TEMPLATES)), "max_length": 32},
        "train": {"max_steps": 2, "save_steps": 2, "batch_size": 8, "learning_rate": 0.002, "seed": 7,
                  "logging_steps": 1},
        "output": {"dir": str(run)},
    }  # fmt: skip
    path = tmp_path / "embedding.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    first = run_cli("finetune", "--recipe", path)
    assert first.exit_code == 0, first.output
    assert (run / "checkpoints" / "checkpoint-2" / "modules.json").is_file()
    resumed = run_cli("finetune", "--recipe", run / "recipe.yaml", "--resume", "--set", "train.max_steps=4")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in resumed.stderr and "checkpoint-2" in resumed.stderr
    assert json.loads((run / "run.json").read_text())["steps"] == 4
    steps = [json.loads(line).get("step") for line in (run / "log.jsonl").read_text().splitlines()]
    assert sorted({s for s in steps if s}) == [1, 2, 3, 4]
    SentenceTransformer(str(run / "model"), device="cpu").encode(
        TEXTS
    )  # still a sentence-transformers folder


def test_the_bundled_triplets_are_what_the_script_derives_from_the_qa_set():
    import runpy

    from bertkit.recipe.bundled import bundled_dir

    script = runpy.run_path(
        str(Path(__file__).resolve().parent.parent / "scripts" / "make_embedding_sample.py")
    )
    for split in ("train", "validation", "test"):
        bundled = (bundled_dir() / "data" / "embedding" / f"{split}.jsonl").read_text(encoding="utf-8")
        assert [json.loads(line) for line in bundled.splitlines()] == script["triplets"](split), split


def test_the_embedding_quickstart_checks_clean(run_cli):
    from bertkit.models import packaged_model_dir

    if packaged_model_dir("minilm") is None:
        pytest.skip("the minilm weights package is not installed")
    result = run_cli("check", "--recipe", "quickstart-embedding", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == 0 and report["warnings"] == 0, report["findings"]
    assert [report["splits"][s]["rows"] for s in ("train", "validation", "test")] == [360, 90, 90]
    assert "triplets (query, positive, negative)" in " ".join(report["notes"])


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_a_padding_free_encoder_gives_the_padded_batchs_vectors_loss_and_gradients(tiny_model_dir, pooling):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from bertkit.tasks.embedding.packed import use_packed_encoder
    from bertkit.training.packing import use_packed_attention

    def build() -> Any:
        torch.manual_seed(0)
        no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
        transformer = Transformer(str(tiny_model_dir), config_args=no_dropout)
        pooled = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
        return SentenceTransformer(modules=[transformer, pooled], device="cpu").train()

    anchors = ["the film was great", "bad", "i loved the food and the staff was friendly"]
    positives = ["it was good !", "so dull", "really lovely"]
    results = {}
    for name in ("padded", "packed"):
        model = build()
        if name == "packed":
            use_packed_attention(model[0].auto_model)
            use_packed_encoder(model[0])
        features = [model.tokenize(texts) for texts in (anchors, positives)]
        assert not features[0]["attention_mask"].all()  # padding, which the rows leave out
        if name == "packed":  # the BERT inside sees one row of the real tokens
            shapes: list[tuple[int, ...]] = []
            inner = model[0].model.forward

            def probe(*args: Any, shapes: list = shapes, inner: Any = inner, **kwargs: Any) -> Any:
                shapes.append(tuple(kwargs["input_ids"].shape))
                return inner(*args, **kwargs)

            model[0].model.forward = probe
            seen = model[0](dict(features[0]))
            del model[0].model.forward
            assert shapes == [(1, int(features[0]["attention_mask"].sum()))]
            assert seen["token_embeddings"].shape[:2] == features[0]["input_ids"].shape
        vectors = model(dict(features[0]))["sentence_embedding"]
        loss = losses.MultipleNegativesRankingLoss(model)([dict(f) for f in features], None)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[name] = (vectors.detach(), loss.detach(), grads)
    (vectors, loss, grads), (packed_vectors, packed_loss, packed_grads) = results["padded"], results["packed"]
    torch.testing.assert_close(packed_vectors, vectors, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(packed_loss, loss)
    assert set(packed_grads) == set(grads)
    for name, grad in grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)
