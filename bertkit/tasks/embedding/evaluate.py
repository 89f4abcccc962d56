"""Evaluate a sentence encoder: semantic similarity against gold scores, or retrieval against judgements.

- Scored pairs (STS-B, SICK): the cosine similarity of each pair's vectors against
  its gold score, as Spearman and Pearson correlations (x100, as STS is reported);
  the report lists the pairs whose cosine ranks furthest from their gold rank.
- A BEIR folder (SciFact): every query searched in the whole corpus by cosine
  similarity with sentence-transformers' InformationRetrievalEvaluator (nDCG@10,
  MRR@10, MAP@100, Recall and Accuracy at 1/3/5/10, x100); the report lists the
  queries with the lowest nDCG@10, with what was found and what was relevant.

The same evaluators score the validation data during training (see train.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import UsageError
from bertkit.files import atomic_write_json, atomic_write_text, check_writable_folder
from bertkit.reports import cell, markdown_table
from bertkit.runs import eval_report_dir
from bertkit.tasks.embedding.data import Pairs, Retrieval, is_beir, read_pairs, read_retrieval

WORST = 25
K = 10  # the cut-off of nDCG and MRR


@dataclass
class EmbeddingEvaluation:
    metrics: dict[str, float]
    main_metric: str
    data: str
    examples: int
    report_dir: Path


def similarity_scores(encoder: Any, pairs: Pairs, batch_size: int) -> tuple[dict[str, float], np.ndarray]:
    """Spearman and Pearson (x100) of the pairs' cosine similarities against their gold scores.

    `encoder` has `encode(texts, batch_size) -> vectors` (an Encoder, or a model in training).
    """
    from scipy.stats import pearsonr, spearmanr

    first, second = (encoder.encode(texts, batch_size) for texts in pairs.texts[:2])
    cosines = pairwise_cosine(first, second)
    gold = np.asarray(pairs.scores, dtype=np.float64)
    metrics = {
        "spearman": 100.0 * float(spearmanr(gold, cosines).statistic),
        "pearson": 100.0 * float(pearsonr(gold, cosines).statistic),
    }
    return metrics, cosines


def pairwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return (a64 * b64).sum(axis=1) / np.maximum(norms, 1e-12)


def retrieval_evaluator(data: Retrieval, batch_size: int, name: str = "") -> Any:
    """sentence-transformers' InformationRetrievalEvaluator over the set, keeping each query's hits."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    class KeepingHits(InformationRetrievalEvaluator):
        def compute_metrics(self, queries_result_list: list[Any]) -> dict[str, Any]:
            self.hits = dict(zip(self.queries_ids, queries_result_list, strict=True))
            return super().compute_metrics(queries_result_list)

    queries = {qid: data.queries[qid] for qid in data.relevant}
    return KeepingHits(
        queries,
        data.corpus,
        {qid: set(documents) for qid, documents in data.relevant.items()},
        mrr_at_k=[K],
        ndcg_at_k=[K],
        accuracy_at_k=[1, 3, 5, 10],
        precision_recall_at_k=[1, 3, 5, 10, 100],
        map_at_k=[100],
        batch_size=batch_size,
        name=name,
        write_csv=False,
        show_progress_bar=False,
        score_functions={"cosine": cos_sim},  # cosine, whatever similarity the model declares
    )


def retrieval_scores(encoder: Any, data: Retrieval, batch_size: int) -> tuple[dict[str, float], Any]:
    """nDCG@10, MRR@10, MAP@100, Recall@k and Accuracy@k (x100) of cosine search, and the evaluator."""
    evaluator = retrieval_evaluator(data, batch_size)
    raw = evaluator(encoder.model)
    metrics = {}
    for key, value in raw.items():
        name = key.split("cosine_", 1)[-1]  # "cosine_ndcg@10" -> "ndcg@10"
        metrics[name] = 100.0 * float(value)
    return metrics, evaluator


def per_query(hits: list[dict[str, Any]], relevant: dict[str, int]) -> dict[str, Any]:
    """One query's nDCG@10 and reciprocal rank@10 (binary relevance, as the evaluator counts them)."""
    ranked = sorted(hits, key=lambda h: (-h["score"], h["corpus_id"]))
    gains = [1.0 if h["corpus_id"] in relevant else 0.0 for h in ranked[:K]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), K)))
    first = next((i + 1 for i, h in enumerate(ranked) if h["corpus_id"] in relevant), None)
    return {
        "ndcg@10": dcg / ideal if ideal else 0.0,
        "reciprocal_rank@10": 1.0 / first if first is not None and first <= K else 0.0,
        "first_relevant_rank": first,
        "found": [h["corpus_id"] for h in ranked[:3]],
    }


def evaluate_embedding(
    model: Path | None,
    *,
    data: Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    output: Path | None = None,
    root: Path = Path("runs"),
    device: str | None = None,
) -> EmbeddingEvaluation:
    """Score an encoder on scored pairs or a BEIR folder; write report.md, results.jsonl, metrics.json.

    Raises:
        BertkitError: no model or data, unreadable data.
    """
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.embedding.encoder import load_encoder

    if output is not None:
        check_writable_folder(output, "--output")
    encoder = load_encoder(model, root=root, device=device)
    recipe = _run_recipe(encoder)
    batch = batch_size or DEFAULT_INFERENCE_BATCH[encoder.device]
    source, split_name = _source(recipe, data, split)
    title = f"Evaluation of {encoder.run.path.name if encoder.run else encoder.source}"
    if source is not None and is_beir(Path(str(source.path or ""))):
        retrieval = read_retrieval(Path(str(source.path)), split_name)
        if limit is not None:
            kept = list(retrieval.relevant)[:limit]
            retrieval.relevant = {qid: retrieval.relevant[qid] for qid in kept}
        return _evaluate_retrieval(encoder, retrieval, batch, output, split_name, title)
    columns = recipe.data if recipe is not None else None
    pairs = read_pairs(
        source,
        columns.texts if columns is not None else None,
        columns.score if columns is not None else None,
    ).head(limit)
    if pairs.scores is None:  # pairs or triplets: scored by search, as in training
        from bertkit.console import note
        from bertkit.tasks.embedding.train import as_retrieval

        note(
            f"{pairs.name}: {pairs.shape} without a score column, scored as a search: each "
            f"{pairs.columns[0]} among every {' and '.join(pairs.columns[1:])} text (name a score column "
            "with data.score for similarity)"
        )
        retrieval = as_retrieval(pairs)
        return _evaluate_retrieval(encoder, retrieval, batch, output, split_name, title)
    metrics, cosines = similarity_scores(encoder, pairs, batch)
    report_dir = output or _report_dir(encoder, pairs.name, split_name)
    check_writable_folder(report_dir, "--output")
    _similarity_report(report_dir, pairs, cosines, metrics, title, encoder)
    return EmbeddingEvaluation(metrics, "spearman", pairs.name, len(pairs), report_dir)


def _evaluate_retrieval(
    encoder: Any, retrieval: Retrieval, batch: int, output: Path | None, split: str, title: str
) -> EmbeddingEvaluation:
    """Search every query of the set, and write the retrieval report."""
    metrics, evaluator = retrieval_scores(encoder, retrieval, batch)
    report_dir = output or _report_dir(encoder, retrieval.name, split)
    check_writable_folder(report_dir, "--output")
    _retrieval_report(report_dir, retrieval, evaluator, metrics, title, encoder)
    return EmbeddingEvaluation(metrics, "ndcg@10", retrieval.name, len(retrieval), report_dir)


def _similarity_report(
    folder: Path, pairs: Pairs, cosines: np.ndarray, metrics: dict[str, float], title: str, encoder: Any
) -> None:
    from scipy.stats import rankdata

    folder.mkdir(parents=True, exist_ok=True)
    gold = np.asarray(pairs.scores, dtype=np.float64)
    # How far each pair's cosine rank is from its gold rank, as a share of the pairs.
    gap = (rankdata(cosines) - rankdata(gold)) / max(len(gold), 1)
    rows = [
        {"text1": a, "text2": b, "gold": g, "cosine": round(float(c), 6), "rank_gap": round(float(d), 4)}
        for a, b, g, c, d in zip(pairs.texts[0], pairs.texts[1], gold.tolist(), cosines, gap, strict=True)
    ]
    worst = sorted(rows, key=lambda r: -abs(r["rank_gap"]))[:WORST]
    md = _header(title, pairs.name, f"{len(pairs):,} pairs", encoder, metrics)
    md += [f"## The {len(worst)} pairs ranked furthest from their gold score", ""]
    md.append(markdown_table(worst, ["text1", "text2", "gold", "cosine", "rank_gap"]))
    _write(folder, rows, md, title, "similarity", pairs.name, len(pairs), metrics)


def _retrieval_report(
    folder: Path, data: Retrieval, evaluator: Any, metrics: dict[str, float], title: str, encoder: Any
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    hits = evaluator.hits
    rows = []
    for qid, relevant in data.relevant.items():
        scores = per_query(hits[qid], relevant)
        rows.append({"id": qid, "query": data.queries[qid], "relevant": sorted(relevant), **scores})
    worst = sorted(rows, key=lambda r: (r["ndcg@10"], -(r["first_relevant_rank"] or 10**9)))[:WORST]
    shown = [
        {
            "query": r["query"],
            "ndcg@10": round(r["ndcg@10"], 3),
            "first relevant at": r["first_relevant_rank"] or "beyond 100",
            "found first": data.corpus[r["found"][0]][:120] if r["found"] else "",
            "relevant": data.corpus[r["relevant"][0]][:120],
        }
        for r in worst
    ]
    md = _header(title, data.name, f"{len(data):,} queries, {len(data.corpus):,} documents", encoder, metrics)
    md += [f"## The {len(worst)} queries with the lowest nDCG@10", ""]
    md.append(markdown_table(shown, ["query", "ndcg@10", "first relevant at", "found first", "relevant"]))
    _write(folder, rows, md, title, "retrieval", data.name, len(data), metrics)


def _header(title: str, name: str, size: str, encoder: Any, metrics: dict[str, float]) -> list[str]:
    shown = [{"metric": k, "value": round(v, 2)} for k, v in metrics.items()]
    return [
        f"# {cell(title)}",
        "",
        f"- Data: {cell(name)} ({size})",
        f"- Encoder: {cell(encoder.describe())}",
        "",
        "## Scores (x100)",
        "",
        markdown_table(shown, ["metric", "value"]),
        "",
    ]


def _write(
    folder: Path, rows: list[dict[str, Any]], md: list[str], title: str, kind: str, name: str, n: int,
    metrics: dict[str, float],
) -> None:  # fmt: skip
    atomic_write_text(
        folder / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    atomic_write_text(folder / "report.md", "\n".join(md) + "\n")
    summary = {
        "title": title,
        "task": "embedding",
        "kind": kind,
        "data": name,
        "n_examples": n,
        "metrics": metrics,
    }
    atomic_write_json(folder / "metrics.json", summary)


def _run_recipe(encoder: Any) -> Any:
    run = encoder.run
    if run is None or not run.recipe_file.is_file():
        return None
    from bertkit.tasks.embedding.recipe import read_run_recipe

    return read_run_recipe(run.recipe_file)


def _source(recipe: Any, data: Path | None, split: str | None) -> tuple[Any, str]:
    from bertkit.recipe.base import DataSource

    if data is not None:
        if is_beir(data):
            return DataSource(path=str(data)), split or "test"
        if split is not None:
            raise UsageError("--split: applies to a run's data or to a BEIR folder", hint="drop it")
        return DataSource(path=str(data)), data.stem
    if recipe is None:
        raise UsageError(
            "no data to evaluate on: give scored pairs (e.g. STS-B) or a BEIR folder with --data",
            hint="bertkit eval --model MODEL --data sts-dev.tsv",
        )
    for name in [split] if split else ["validation", "test"]:
        source = getattr(recipe.data, name, None)
        if source is not None:
            return source, recipe.data.qrels_split(name) if is_beir(Path(str(source.path or ""))) else name
    raise UsageError(f"the run's recipe has no {split or 'validation or test'} data", hint="give --data")


def _report_dir(encoder: Any, data_name: str, split: str) -> Path:
    # A BEIR set is named "folder (split)": the folder names the report.
    return eval_report_dir(encoder.run, Path(encoder.source).name or "model", data_name.split(" (")[0], split)
