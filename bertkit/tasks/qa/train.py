"""Fine-tuning an extractive question-answering model: windows, answer positions, SQuAD scores.

The training itself is the orchestrator's (bertkit.training.run); this module is
what question answering brings to it. Evaluation turns the windows' start and end
logits back into each question's answer (answers.py) and scores it the SQuAD way
(scoring.py). A model that may leave questions unanswered tunes its no-answer
threshold on every validation pass and records the one of the last pass (the model
it keeps) in its config.json, where test scores and predictions then read it.
"""

from __future__ import annotations

from typing import Any

from bertkit.console import plural
from bertkit.errors import RecipeError
from bertkit.tasks.base import CardFacts, Prepared
from bertkit.tasks.qa.recipe import QaRecipe
from bertkit.tasks.qa.splits import QaSplits, load_qa_data
from bertkit.training.arguments import Selection

MAIN_METRIC = "f1"
METRICS = ("f1", "exact_match", "loss", "best_f1", "has_answer_f1", "no_answer_f1")
UNANSWERABLE_METRICS = ("best_f1", "has_answer_f1", "no_answer_f1")  # SQuAD 2.0 data only


def read(recipe: QaRecipe) -> QaSplits:
    """Read every split and check its answers (see splits.load_qa_data).

    Raises:
        BertkitError: unreadable data, answers not in their context (with `error`), a bad train.metric.
    """
    data = load_qa_data(recipe)
    select_metric(recipe)
    name = (recipe.train.metric or MAIN_METRIC).removeprefix("eval_")
    if name in UNANSWERABLE_METRICS and not data.unanswerable:
        raise RecipeError(
            f"train.metric: {name} needs questions without an answer, and this data has none",
            hint=f"use one of {', '.join(m for m in METRICS if m not in UNANSWERABLE_METRICS)}",
        )
    return data


def select_metric(recipe: QaRecipe) -> Selection:
    """The metric that picks the best checkpoint: `train.metric`, else F1.

    Raises:
        RecipeError: a metric question answering does not report.
    """
    name = (recipe.train.metric or MAIN_METRIC).removeprefix("eval_")
    if name not in METRICS:
        raise RecipeError(
            f"train.metric: unknown metric {name!r} for question answering",
            hint=f"metrics: {', '.join(METRICS)}",
        )
    return Selection(name, name != "loss")


POSITIONS = ("start_positions", "end_positions")  # the labels of a window


def prepare(recipe: QaRecipe, data: QaSplits, tokenizer: Any, placement: Any) -> Prepared:
    """Encode every split in windows and build the model, its collator and SQuAD scores."""
    from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding

    from bertkit.console import note
    from bertkit.models import load_model, resolve_model
    from bertkit.tasks.qa.packed import use_window_loss
    from bertkit.training.arguments import pad_multiple
    from bertkit.training.packing import PackedCollator, padding_free

    notes = list(data.notes)
    datasets, features = {}, {}
    for split, questions in data.splits.items():
        datasets[split], features[split] = _encode(recipe, questions, tokenizer, split, notes)
    ref = resolve_model(str(recipe.model.name))
    model, missing = load_model(
        AutoModelForQuestionAnswering,
        ref,
        revision=recipe.model.revision,
        trust_remote_code=recipe.model.trust_remote_code,
        allow_pickle=recipe.model.allow_pickle,
    )
    if any(key.startswith("qa_outputs") for key in missing):
        note(f"{ref.shown}: new question-answering head (start and end), randomly initialised")
    # Start and end scored over each window's real tokens, padded or packed (BERT models).
    if use_window_loss(model):
        packed = padding_free(recipe.train, model, placement.device, notes)
    elif recipe.train.padding_free is True:
        raise RecipeError(
            f"train.padding_free: {type(model).__name__} reads padded batches only",
            hint="set train.padding_free: auto or false",
        )
    else:
        packed = False
        notes.append(f"{type(model).__name__}: Transformers' loss, padding positions included in its softmax")
    config = {
        "max_length": recipe.data.max_length,
        "doc_stride": recipe.data.doc_stride,
        "max_answer_length": recipe.qa.max_answer_length,
        "n_best": recipe.qa.n_best,
        "unanswerable": data.unanswerable,
        "null_threshold": 0.0,
    }

    def metrics_for(split: str) -> Any:
        from bertkit.tasks.qa.evaluate import make_compute_metrics

        return make_compute_metrics(data.splits[split], features[split], model, tune=split == "validation")

    return Prepared(
        datasets=datasets,
        model=model,
        model_ref=ref,
        collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(recipe.train, placement)),
        selection=select_metric(recipe),
        card=_card(data, ref),
        metrics_for=metrics_for,
        label_names=list(POSITIONS),
        notes=notes,
        config=config,
        sorted_batches=not packed,
        train_collator=PackedCollator(per_example=POSITIONS) if packed else None,
    )


def _encode(
    recipe: QaRecipe, questions: Any, tokenizer: Any, split: str, notes: list[str]
) -> tuple[Any, Any]:
    """One split as a dataset of windows with answer positions, and the windows themselves."""
    from datasets import Dataset

    from bertkit.tasks.qa.features import make_features
    from bertkit.training.trainer import LENGTH_COLUMN

    features = make_features(tokenizer, questions, recipe.data.max_length, recipe.data.doc_stride)
    columns: dict[str, list[Any]] = {key: [f[key] for f in features.inputs] for key in features.inputs[0]}
    columns["start_positions"], columns["end_positions"] = features.starts, features.ends
    columns[LENGTH_COLUMN] = [len(ids) for ids in columns["input_ids"]]
    line = f"{split}: {plural(len(questions), 'question')} -> {plural(len(features), 'window')}"
    if features.windowed:
        line += f"; {plural(features.windowed, 'context')} longer than data.max_length read in windows"
    notes.append(line)
    if features.clipped_questions:
        notes.append(
            f"{split}: {plural(features.clipped_questions, 'question')} cut to half of data.max_length"
        )
    return Dataset.from_dict(columns), features


def _card(data: QaSplits, ref: Any) -> CardFacts:
    kind = (
        "SQuAD 2.0 style: it may answer that the context holds no answer"
        if data.unanswerable
        else "SQuAD 1.1 style"
    )
    return CardFacts(
        f"An extractive question-answering model ({kind}), fine-tuned from `{ref.shown}` with bertkit.",
        [
            "## Answers",
            "",
            "The model marks the answer as a span of the context. Contexts longer than its window are "
            "read in overlapping windows. Use it with `bertkit predict --question ... --context ...`: "
            "Transformers 5 has no question-answering pipeline.",
            "",
        ],
        usage=[
            "# Transformers 5 has no question-answering pipeline; the model gives start and end logits.",
            "from transformers import AutoModelForQuestionAnswering, AutoTokenizer",
            'model = AutoModelForQuestionAnswering.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        ],
        bertkit='bertkit predict --model RUN_DIR --context document.txt "who founded the company?"',
    )
