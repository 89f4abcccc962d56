"""Load a trained classifier and run it fast: batched, sorted by length, no autograd.

Shared by `bertkit eval` and `bertkit predict`. A model folder knows how it was
trained: bertkit writes the input settings (max length, sentence pairs) into its
config.json under `bertkit`, so any copy of the folder predicts the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bertkit.devices import to_device
from bertkit.errors import DataError, ModelError
from bertkit.runs import RunDirectory, find_model_dir
from bertkit.tasks.classification.labels import LabelSpec
from bertkit.tokenization import clip

if TYPE_CHECKING:
    from bertkit.tasks.classification.recipe import ClassificationRecipe as Recipe

CONFIG_KEY = "bertkit"
_DEFAULT_MAX_LENGTH = 512
# Texts are tokenized and sorted by length this many at a time, so each batch holds
# texts of nearly the same length. A wider window pads less: on SST-2 sentences mixed
# with AG News articles, batches of 32 pad 12% of their positions in windows of 512
# texts and 3% in windows of 2,048. It costs memory linearly: a few MB for short texts.
SORT_WINDOW = 4096


def sort_window(batch_size: int) -> int:
    """How many texts are sorted together: SORT_WINDOW, and never less than one batch."""
    return max(SORT_WINDOW, batch_size)


@dataclass
class Classifier:
    """A classification model ready for inference.

    Attributes:
        model: the transformers model, in eval mode on `device`.
        tokenizer: its tokenizer.
        labels: problem type and label names, from the model config.
        threshold: multi-label decision threshold.
        max_length: truncation length used in training.
        pair: whether it was trained on sentence pairs (None: unknown).
        source: the folder it was loaded from.
        run: the run directory, when loaded from one.
        recipe: the run's recipe, when loaded from a run.
    """

    model: Any
    tokenizer: Any
    labels: LabelSpec
    threshold: float
    max_length: int
    pair: bool | None
    source: Path
    device: str
    run: RunDirectory | None = None
    recipe: Recipe | None = None
    precision: str = "fp32"

    def logits(
        self,
        texts: list[str],
        pairs: list[str] | None = None,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Model outputs for every text, in input order (float32, shape (n, num_labels)).

        `on_batch` is called with the number of texts of each batch once it is done.
        """
        return (
            np.concatenate(list(self.iter_logits(texts, pairs, batch_size, on_batch)), axis=0)
            if texts
            else (np.zeros((0, self.labels.num_labels), dtype=np.float32))
        )

    def iter_logits(
        self,
        texts: list[str],
        pairs: list[str] | None = None,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """Like `logits`, but yields one array per window of `SORT_WINDOW` texts, in order.

        Within each window texts are sorted by length so each batch pads little.
        """
        chunk = sort_window(batch_size)
        for start in range(0, len(texts), chunk):
            part = [clip(t, self.max_length) for t in texts[start : start + chunk]]
            second = (
                [clip(t, self.max_length) for t in pairs[start : start + chunk]]
                if pairs is not None
                else None
            )
            encoded = self.tokenizer(part, second, truncation=True, max_length=self.max_length)
            features = [{k: encoded[k][i] for k in encoded} for i in range(len(part))]
            order = sorted(range(len(part)), key=lambda i: len(features[i]["input_ids"]))
            out = np.empty((len(part), self.labels.num_labels), dtype=np.float32)
            for b in range(0, len(order), batch_size):
                index = order[b : b + batch_size]
                batch = self.tokenizer.pad([features[i] for i in index], return_tensors="np")
                out[index] = self.forward(dict(batch))
                if on_batch is not None:
                    on_batch(len(index))
            yield out

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of one padded batch of token ids (float32, shape (batch, num_labels)).

        The one step a backend changes (see `bertkit.export.runtime` for ONNX Runtime).
        """
        import torch

        with torch.inference_mode():
            return self.model(**to_device(batch, self.device)).logits.float().cpu().numpy()


def load_classifier(
    model: Path | None, *, root: Path = Path("runs"), device: str | None = None, precision: str = "auto"
) -> Classifier:
    """Load a classifier from a run directory, a model folder, or the latest run.

    Args:
        model: a run directory or model folder; default the latest run under `root`.
        root: where runs and `latest` live.
        device: cpu, cuda or mps; default the best available.
        precision: auto, fp32, bf16 or fp16 (see `devices.inference_precision`); on
            CUDA, half precision is used only once it passed a parity check against
            fp32 on sample texts.

    Raises:
        BertkitError: nothing to load, not a classifier, unsafe or broken weights.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from bertkit.devices import detect_device, hardware, inference_precision
    from bertkit.models import ModelRef, load_model, load_tokenizer
    from bertkit.tasks.classification.recipe import read_run_recipe

    folder, run = find_model_dir(model, root)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelError(
            f"{folder}: a {architectures[0]} model, not a text classifier",
            hint="fill-mask models are for `bertkit predict` with a [MASK] in the text; "
            "fine-tune one first for classification",
        )
    ref = ModelRef(str(folder), str(model or folder), True, run.path if run else None)
    classifier_model, _ = load_model(AutoModelForSequenceClassification, ref)
    tokenizer = load_tokenizer(str(folder))
    device = detect_device(device)
    precision = inference_precision(precision, hardware(device))
    classifier_model.to(device).eval()

    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    saved = getattr(config, CONFIG_KEY, None) or {}
    labels = labels_from_config(config, separator=saved.get("separator"))
    limit = min(tokenizer.model_max_length or _DEFAULT_MAX_LENGTH, _DEFAULT_MAX_LENGTH)
    classifier = Classifier(
        model=classifier_model,
        tokenizer=tokenizer,
        labels=labels,
        threshold=float(saved.get("threshold", 0.5)),
        max_length=int(saved.get("max_length", limit)),
        pair=saved.get("text_pair"),
        source=folder,
        device=device,
        run=run,
        recipe=recipe,
    )
    if precision != "fp32":
        use_half_precision(classifier, precision)
    return classifier


def use_half_precision(classifier: Classifier, precision: str) -> None:
    """Switch a classifier to bf16 or fp16 if it predicts as fp32 does on sample texts.

    The sample and the limits are those of the int8 export check (`bertkit.export.parity`):
    the run's validation texts (else built-in sentences), at least 99% of predictions
    unchanged, or at most a point of accuracy lost where the texts have labels. A
    model that fails stays in fp32, and a warning says so.
    """
    import torch

    import bertkit.tasks.classification.parity as parity
    from bertkit.console import note, warn
    from bertkit.export.parity import HALF_SAMPLE_TEXTS, Tolerances, judge

    sample = parity.sample_texts(
        classifier.recipe, None, classifier.pair, HALF_SAMPLE_TEXTS, classifier.labels
    )
    problem, threshold = classifier.labels.problem, classifier.threshold
    reference = classifier.logits(sample.texts, sample.pairs)
    classifier.model.to(getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[precision]))
    half = classifier.logits(sample.texts, sample.pairs)
    agreement, of = parity.prediction_agreement(problem, threshold, reference, half)
    accuracy = None
    if sample.targets is not None:
        theirs = parity.sample_accuracy(problem, threshold, reference, sample.targets)
        accuracy = (
            len(sample.texts),
            parity.sample_accuracy(problem, threshold, half, sample.targets),
            theirs,
        )
    diff = float(np.abs(reference - half).max()) if len(sample.texts) else 0.0
    count = len(sample.texts)
    check = judge(precision, count, count, diff, agreement, of, Tolerances(), accuracy)
    if check.passed:
        classifier.precision = precision
        note(f"predicting in {precision}: {of} agree with fp32 on {agreement:.1%} of {sample.where}")
    else:
        classifier.model.float()
        warn(
            f"predicting in fp32: {precision} changed the {of} of {1 - agreement:.1%} of {sample.where} "
            "(use --precision fp32 to skip this check)"
        )


def labels_from_config(config: Any, separator: str | None = None) -> LabelSpec:
    """The LabelSpec a model was trained with, read back from its config."""
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression" or (problem_type is None and config.num_labels == 1):
        return LabelSpec("regression", (), "regression (from the model config)")
    names = tuple(config.id2label[i] for i in sorted(config.id2label))
    if problem_type == "multi_label_classification":
        return LabelSpec("multi", names, "multi-label (from the model config)", separator)
    return LabelSpec("single", names, "single-label (from the model config)")


def inputs_config(recipe: Recipe) -> dict[str, Any]:
    """What bertkit stores in config.json so the model predicts as it was trained."""
    return {
        "max_length": recipe.data.max_length,
        "text_pair": recipe.data.text_pair is not None,
        "threshold": recipe.labels.threshold,
        "separator": recipe.labels.separator,
    }


def check_pairs(classifier: Classifier, has_pairs: bool, where: str) -> None:
    """Refuse inputs whose shape (single texts vs pairs) differs from training.

    Raises:
        DataError: pairs given to a single-text model, or single texts to a pair model.
    """
    if classifier.pair is True and not has_pairs:
        raise DataError(
            f"{where}: the model was trained on sentence pairs, but no second text was given",
            hint="give --input FILE with both columns and --text-pair COLUMN",
        )
    if classifier.pair is False and has_pairs:
        raise DataError(
            f"{where}: the model was trained on single texts, but pairs were given",
            hint="drop --text-pair, or use a model trained on sentence pairs",
        )
