"""Fine-tuning a sentence encoder with sentence-transformers' trainer, inside bertkit's orchestrator.

`SentenceTransformerTrainer` is a Transformers Trainer, so the run directory,
checkpoints, resume, several processes, progress and the model card are the
orchestrator's as for every task; this module brings the data, the model, the loss
and the evaluators:

- Loss from the data's shape (`embedding.loss: auto`): pairs and triplets train with
  in-batch negatives (MultipleNegativesRankingLoss, with a batch sampler that keeps
  duplicate texts out of a batch, since a duplicate would be a false negative);
  scored pairs with CoSENT. `cosine` and `triplet` are the alternatives.
- Evaluation: scored pairs by Spearman correlation of cosine similarities (STS);
  pairs, triplets and BEIR folders by retrieval (nDCG@10), the anchors searched
  among all positives (and negatives) of the split.

The saved model is a sentence-transformers folder: `SentenceTransformer(path)` loads
it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import RecipeError
from bertkit.tasks.base import CardFacts, Prepared
from bertkit.tasks.embedding.data import Pairs, Retrieval, is_beir, read_pairs, read_retrieval
from bertkit.tasks.embedding.recipe import EmbeddingRecipe
from bertkit.training.arguments import Selection

SPLITS = ("train", "validation", "test")
LOSSES = {"pairs": "mnrl", "triplets": "mnrl", "scored pairs": "cosent"}


@dataclass
class EmbeddingSplits:
    """Each split as rows (Pairs) or a retrieval set, and the loss the training rows call for."""

    splits: dict[str, Pairs | Retrieval]
    loss: str
    notes: list[str] = field(default_factory=list)


def read_split(recipe: EmbeddingRecipe, split: str) -> Pairs | Retrieval:
    """One split: a BEIR folder's judged queries, or rows of pairs, triplets or scored pairs.

    Raises:
        DataError: unreadable data, columns not found.
    """
    source = getattr(recipe.data, split)
    if source.path is not None and is_beir(Path(source.path)):
        retrieval = read_retrieval(Path(source.path), recipe.data.qrels_split(split))
        if recipe.data.limit:
            kept = list(retrieval.relevant)[: recipe.data.limit]
            retrieval.relevant = {qid: retrieval.relevant[qid] for qid in kept}
        return retrieval.pairs() if split == "train" else retrieval
    return read_pairs(source, recipe.data.texts, recipe.data.score).head(recipe.data.limit)


def read(recipe: EmbeddingRecipe) -> EmbeddingSplits:
    """Read every split and decide the loss.

    Raises:
        BertkitError: unreadable data; a loss the training data cannot feed.
    """
    from bertkit.console import plural

    splits: dict[str, Pairs | Retrieval] = {}
    notes: list[str] = []
    for split in SPLITS:
        if getattr(recipe.data, split) is None:
            continue
        data = read_split(recipe, split)
        splits[split] = data
        if isinstance(data, Retrieval):
            notes.append(
                f"{split}: {len(data):,} queries searched in {plural(len(data.corpus), 'document')}"
                f" ({data.name})"
            )
        else:
            notes.append(f"{split}: {plural(len(data), 'row')} of {data.shape} from {data.name}")
    train = splits.get("train")
    if not isinstance(train, Pairs):
        raise RecipeError("data.train: an embedding recipe trains on data.train", hint="give training data")
    loss = decide_loss(recipe.embedding.loss, train, recipe.embedding.score_range)
    chosen = "embedding.loss" if recipe.embedding.loss != "auto" else "from the data"
    notes.append(f"loss: {_LOSS_NAMES[loss]} ({chosen})")
    select_metric(recipe, splits.get("validation"))
    return EmbeddingSplits(splits, loss, notes)


_LOSS_NAMES = {
    "mnrl": "in-batch negatives (MultipleNegativesRankingLoss)",
    "cosent": "CoSENTLoss",
    "cosine": "CosineSimilarityLoss",
    "triplet": "TripletLoss",
}


def decide_loss(setting: str, train: Pairs, score_range: Any = None) -> str:
    """The loss: `embedding.loss`, else from the training data's shape.

    Raises:
        RecipeError: a loss the data cannot feed (a score loss without scores, a triplet loss
            without negatives); `embedding.score_range` with a loss that does not read it.
    """
    loss = LOSSES[train.shape] if setting == "auto" else setting
    if score_range is not None and loss != "cosine":
        raise RecipeError(
            f"embedding.score_range: only the cosine loss maps scores to [0, 1]; this run's loss is {loss}"
            + (" (CoSENT ranks pairs by score, whatever their scale)" if loss == "cosent" else ""),
            hint="remove embedding.score_range, or set embedding.loss: cosine",
        )
    if loss in ("cosent", "cosine") and train.scores is None:
        raise RecipeError(
            f"embedding.loss: {loss} needs scored pairs; {train.name} has {train.shape}",
            hint="name the score column with data.score, or use loss mnrl",
        )
    if loss == "triplet" and train.shape != "triplets":
        raise RecipeError(
            f"embedding.loss: triplet needs (anchor, positive, negative) rows; {train.name} has "
            f"{train.shape}",
            hint="give three data.texts columns, or use loss mnrl",
        )
    if loss == "mnrl" and train.scores is not None:
        raise RecipeError(
            f"embedding.loss: mnrl ignores scores, and {train.name} has scored pairs",
            hint="use cosent or cosine for scored pairs",
        )
    return loss


def select_metric(recipe: EmbeddingRecipe, validation: Pairs | Retrieval | None) -> Selection:
    """The metric that picks the best checkpoint: Spearman for scored pairs, else nDCG@10.

    Raises:
        RecipeError: a metric the validation data does not give.
    """
    scored = isinstance(validation, Pairs) and validation.scores is not None
    available = ("spearman", "pearson") if scored else ("ndcg@10", "mrr@10", "map@100", "recall@10")
    name = (recipe.train.metric or available[0]).removeprefix("eval_")
    if name not in available:
        raise RecipeError(
            f"train.metric: {name!r} is not a metric of this validation data",
            hint=f"metrics: {', '.join(available)}",
        )
    return Selection(name, True)


def evaluator_for(data: Pairs | Retrieval, batch_size: int) -> Any:
    """The evaluator of a split, reporting bertkit's metric names as `bertkit eval` computes them (x100)."""
    from bertkit.tasks.embedding.evaluate import retrieval_evaluator

    if isinstance(data, Pairs) and data.scores is not None:
        return Evaluator(similarity=data, batch_size=batch_size)
    retrieval = data if isinstance(data, Retrieval) else as_retrieval(data)
    return Evaluator(retrieval=retrieval_evaluator(retrieval, batch_size), batch_size=batch_size)


def as_retrieval(pairs: Pairs) -> Retrieval:
    """Pairs or triplets as a search: each distinct anchor's positives among every positive and negative."""
    corpus: dict[str, str] = {}
    ids: dict[str, str] = {}
    for column in pairs.texts[1:]:
        for text in column:
            if text not in ids:
                ids[text] = f"d{len(ids)}"
                corpus[ids[text]] = text
    queries: dict[str, str] = {}
    relevant: dict[str, dict[str, int]] = {}
    by_anchor: dict[str, str] = {}
    for anchor, positive in zip(pairs.texts[0], pairs.texts[1], strict=True):
        qid = by_anchor.setdefault(anchor, f"q{len(by_anchor)}")
        queries[qid] = anchor
        relevant.setdefault(qid, {})[ids[positive]] = 1
    return Retrieval(pairs.name, queries, corpus, relevant)


def Evaluator(*, batch_size: int, similarity: Pairs | None = None, retrieval: Any = None) -> Any:  # noqa: N802
    """A sentence-transformers evaluator of one split: STS correlations, or retrieval metrics."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    from bertkit.tasks.embedding.evaluate import similarity_scores

    class SplitEvaluator(BaseEvaluator):
        """Scores the model in training with bertkit's metric names, as percentages."""

        def __init__(self) -> None:
            super().__init__()
            self.greater_is_better = True
            self.primary_metric = "spearman" if similarity is not None else "ndcg@10"

        def __call__(
            self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
        ) -> dict:
            if similarity is not None:
                return similarity_scores(_Encoding(model), similarity, batch_size)[0]
            raw = retrieval(model, output_path=None, epoch=epoch, steps=steps)
            return {_metric_name(k): 100.0 * float(v) for k, v in raw.items()}

    return SplitEvaluator()


class _Encoding:
    """A model in training seen as an encoder: `encode(texts, batch_size)` -> float32 vectors."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: list[str], batch_size: int) -> Any:
        import numpy as np

        vectors = self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def _metric_name(key: str) -> str:
    """`cosine_ndcg@10` -> ndcg@10."""
    return key.split("cosine_", 1)[-1]


def prepare(recipe: EmbeddingRecipe, data: EmbeddingSplits, tokenizer: Any, placement: Any) -> Prepared:
    """The encoder, the training rows, the loss, and an evaluator per evaluated split."""
    from datasets import Dataset

    from bertkit.models import resolve_model
    from bertkit.tasks.embedding.encoder import load_encoder

    ref = resolve_model(str(recipe.model.name))
    section = recipe.embedding
    encoder = load_encoder(
        ref.location,
        pooling=None if section.pooling == "auto" else section.pooling,
        normalize=None if section.normalize == "auto" else section.normalize,
        device="cpu",
        max_length=recipe.data.max_length,
    )
    model = encoder.model
    # Sentence vectors pool the token vectors; BERT's pooler (the [CLS] head of next-sentence
    # prediction) takes no part. Frozen, it keeps its weights, and DDP does not wait for its gradients.
    pooler = getattr(model[0].auto_model, "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(False)
    train = data.splits["train"]
    assert isinstance(train, Pairs)
    columns = {
        name: texts for name, texts in zip(("anchor", "positive", "negative"), train.texts, strict=False)
    }
    if train.scores is not None:
        columns = {
            "sentence1": train.texts[0],
            "sentence2": train.texts[1],
            "score": _scaled(train.scores, section),
        }
    rows = Dataset.from_dict(columns)
    batch = recipe.train.eval_batch_size or (
        recipe.train.batch_size if isinstance(recipe.train.batch_size, int) else 32
    )
    evaluators = {split: evaluator_for(d, batch) for split, d in data.splits.items() if split != "train"}
    notes = [*data.notes, f"encoder: {encoder.describe()}"]
    if type(model[0]).__name__ == "Transformer":
        from bertkit.tasks.embedding.packed import use_packed_encoder
        from bertkit.training.packing import padding_free

        if padding_free(recipe.train, model[0].auto_model, placement.device, notes):
            use_packed_encoder(model[0])
    elif recipe.train.padding_free is True:
        raise RecipeError(
            f"train.padding_free: the encoder's first module is a {type(model[0]).__name__}",
            hint="set train.padding_free: auto or false",
        )

    def select_split(trainer: Any, split: str) -> None:
        trainer.evaluator = evaluators[split]

    def make_trainer(kwargs: dict[str, Any]) -> Any:
        return _trainer(model, data.loss, rows, evaluators.get("validation"), kwargs)

    return Prepared(
        datasets={"train": rows, **{split: None for split in evaluators}},
        model=model,
        model_ref=ref,
        collator=None,
        selection=select_metric(recipe, data.splits.get("validation")),
        card=_card(encoder, ref, data.loss),
        notes=notes,
        config={"pooling": encoder.pooling, "normalize": encoder.normalize},
        hf_model=model[0].auto_model,
        make_trainer=make_trainer,
        select_split=select_split,
        sorted_batches=False,
    )


def _scaled(scores: list[float], section: Any) -> list[float]:
    """Gold scores mapped to [0, 1] (what cosine similarity is compared with), for the cosine loss."""
    low, high = section.score_range or (min(scores), max(scores))
    if section.loss != "cosine" or high <= low:
        return [float(s) for s in scores]
    return [(float(s) - low) / (high - low) for s in scores]


def _trainer(model: Any, loss_name: str, rows: Any, validation: Any, kwargs: dict[str, Any]) -> Any:
    """sentence-transformers' trainer on bertkit's training arguments and callbacks."""
    from dataclasses import fields

    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from transformers import TrainingArguments

    from bertkit.training.arguments import recipe_precision

    args = kwargs["args"]
    settings = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init}
    settings["batch_sampler"] = (
        BatchSamplers.NO_DUPLICATES if loss_name == "mnrl" else BatchSamplers.BATCH_SAMPLER
    )
    settings["remove_unused_columns"] = False
    settings["label_names"] = None
    # Built again from bertkit's arguments: the recipe's precision must win over a launcher's here too.
    with recipe_precision("bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"):
        st_args = SentenceTransformerTrainingArguments(**settings)
    if loss_name == "mnrl":
        # Every process's texts are negatives for every other's: N processes see the same
        # negatives as one process with their whole batch.
        loss = losses.MultipleNegativesRankingLoss(model, gather_across_devices=args.world_size > 1)
    else:
        kinds = {
            "cosent": losses.CoSENTLoss,
            "cosine": losses.CosineSimilarityLoss,
            "triplet": losses.TripletLoss,
        }
        loss = kinds[loss_name](model)
    return SentenceTransformerTrainer(
        model=model,
        args=st_args,
        train_dataset=rows,
        loss=loss,
        evaluator=validation,
        callbacks=kwargs["callbacks"],
    )


def _card(encoder: Any, ref: Any, loss: str) -> CardFacts:
    return CardFacts(
        f"A sentence encoder fine-tuned from `{ref.shown}` with bertkit ({_LOSS_NAMES[loss]}).",
        [
            "## Embeddings",
            "",
            f"{encoder.describe().capitalize()}. A sentence-transformers folder: "
            "`SentenceTransformer(path).encode(texts)` gives the same vectors as `bertkit embed`.",
            "",
        ],
        usage=[
            "from sentence_transformers import SentenceTransformer",
            'model = SentenceTransformer("path/to/this/folder")',
            'vectors = model.encode(["a sentence to embed", "another one"])',
        ],
        bertkit='bertkit embed --model RUN_DIR "a sentence to embed"',
    )
