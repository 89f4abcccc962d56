"""Sentence embeddings on the shared public data: off-the-shelf MiniLM on STS-B, SICK and SciFact.

Run with `bash scripts/test.sh -m realdata`; skipped when ../shared/data or the MiniLM
weights are absent. The published scores of all-MiniLM-L6-v2 (MTEB: STS-B test
Spearman 82.0, SICK-R 77.6, SciFact nDCG@10 64.5) set the floors a little below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.realdata

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def minilm() -> Path:
    from bertkit.models import packaged_model_dir

    folder = packaged_model_dir("minilm")
    if folder is None:
        pytest.skip("MiniLM weights not installed")
    return folder


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (the shared public data is absent)")
    return path


def test_sts_b_and_sick_spearman_of_the_off_the_shelf_model(minilm, tmp_path):
    from bertkit.tasks.embedding.evaluate import evaluate_embedding

    stsb = _need(DATA / "stsb" / "test_labeled.tsv")
    sick = tmp_path / "sick.tsv"  # a TSV named .txt, with CRLF line ends
    shutil.copyfile(_need(DATA / "sick" / "SICK_test_annotated.txt"), sick)
    scores = {}
    for name, path in (("stsb", stsb), ("sick", sick)):
        result = evaluate_embedding(minilm, data=path, output=tmp_path / name, device="cpu")
        scores[name] = result.metrics["spearman"]
        assert result.examples == {"stsb": 1379, "sick": 4927}[name]
    assert scores["stsb"] > 80
    assert scores["sick"] > 75


def test_scifact_retrieval_of_the_off_the_shelf_model(minilm, tmp_path):
    from bertkit.tasks.embedding.evaluate import evaluate_embedding

    folder = _need(DATA / "scifact" / "beir_format_derived")
    result = evaluate_embedding(minilm, data=folder, split="test", output=tmp_path / "scifact", device="cpu")
    assert result.examples == 300
    assert result.metrics["ndcg@10"] > 60
    assert (tmp_path / "scifact" / "report.md").read_text().count("\n|") > 20  # the worst queries listed
