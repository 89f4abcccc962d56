"""Evaluate an NER model on tagged data and write a report folder.

`bertkit eval` with no arguments evaluates the latest run on its recipe's validation
data (or test data with `--split test`); any NER model folder and any tagged file
(CoNLL, JSON/JSONL token lists, JSONL with entity spans) work too. The file's tag
scheme is detected like training data's, and its entities scored against the
model's, word by word, with long sentences read in windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, UsageError
from bertkit.files import check_writable_folder
from bertkit.recipe.base import DataSource
from bertkit.runs import eval_report_dir
from bertkit.tasks.ner.data import Sentences, name_tags, read_sentences
from bertkit.tasks.ner.recipe import NerData


@dataclass
class NerEvaluation:
    """Scores of one evaluation and where its report went."""

    metrics: dict[str, float]
    data: str
    sentences: int
    model: Path
    report_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


def evaluate_ner(
    model: Path | None = None,
    *,
    data: Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    output: Path | None = None,
    aggregation: str = "first",
    root: Path = Path("runs"),
    device: str | None = None,
    precision: str = "auto",
) -> NerEvaluation:
    """Tag every sentence of the data, score the entities, write report.md, errors.jsonl, metrics.json.

    Raises:
        BertkitError: no model or data, malformed tags, entity types the model does not know.
    """
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.ner.inference import load_tagger
    from bertkit.tasks.ner.metrics import entity_report, entity_scores
    from bertkit.tasks.ner.report import write_ner_report

    if output is not None:
        check_writable_folder(output, "--output")
    tagger = load_tagger(model, root=root, device=device, precision=precision)
    sentences, split_name = _gold(tagger, data, split, limit)
    report_dir = output or _report_dir(tagger, sentences.name, split_name)
    check_writable_folder(report_dir, "--output")  # before the model runs over the data
    predicted = tagger.tag(
        sentences.tokens,
        batch_size=batch_size or DEFAULT_INFERENCE_BATCH[tagger.device],
        aggregation=aggregation,
    )
    metrics = entity_scores(sentences.tags, predicted)
    files = write_ner_report(
        report_dir,
        metrics=metrics,
        per_type=entity_report(sentences.tags, predicted),
        types=tagger.types,
        gold=sentences.tags,
        predicted=predicted,
        words=sentences.tokens,
        where=[sentences.where(i) for i in range(len(sentences))],
        title=f"Evaluation of {tagger.run.path.name if tagger.run else tagger.source}",
        data_description=f"{sentences.name} ({len(sentences):,} sentences), aggregation {aggregation}",
    )
    return NerEvaluation(metrics, sentences.name, len(sentences), tagger.source, report_dir, files)


def _gold(tagger: Any, data: Path | None, split: str | None, limit: int | None) -> tuple[Sentences, str]:
    """The evaluation sentences with IOB2 tags in the model's types, and the split's name."""
    from bertkit.tasks.ner.schemes import detect_scheme
    from bertkit.tasks.ner.tagging import TagSpec, convert, raise_first

    recipe = tagger.recipe
    columns = recipe.data if recipe is not None else NerData()
    source, split_name = _source(columns if recipe is not None else None, data, split)
    sentences = name_tags(read_sentences(source, columns), recipe.tags.names if recipe else None).head(limit)
    scheme = recipe.tags.scheme if recipe is not None and recipe.tags.scheme != "auto" else None
    if scheme is None:
        try:
            scheme = detect_scheme(sentences.tags)[0]
        except ValueError as exc:
            raise DataError(
                f"{sentences.name}: {exc}", hint="fix the tags (they are O or PREFIX-TYPE)"
            ) from None
    spec = TagSpec(scheme, tuple(tagger.types), "")
    converted, errors, _ = convert(sentences, spec, recipe.tags.repair if recipe else False)
    raise_first(errors, sentences.name)
    return converted, split_name


def _source(columns: NerData | None, data: Path | None, split: str | None) -> tuple[DataSource, str]:
    if data is not None:
        return DataSource(path=str(data)), data.stem
    if columns is None:
        raise UsageError(
            "no data to evaluate on: this model folder has no bertkit recipe",
            hint="give a tagged file with --data FILE",
        )
    order = [split] if split else ["validation", "test"]
    for name in order:
        source = getattr(columns, name, None)
        if source is not None:
            return source, name
    if columns.validation_split and split in (None, "validation"):
        raise DataError(
            "the run's validation data was carved from train (data.validation_split); "
            "it is reported in the run's metrics.json",
            hint="evaluate on other data with --data FILE, or --split test if the recipe has test data",
        )
    raise DataError(
        f"the run's recipe has no {' or '.join(order)} data", hint="give a tagged file with --data FILE"
    )


def _report_dir(tagger: Any, data_name: str, split: str) -> Path:
    return eval_report_dir(tagger.run, tagger.source.name, data_name, split)
