"""The NER settings that depend on the data: the selection metric, tag weights, what the model records."""

from __future__ import annotations

import difflib
from typing import Any

from bertkit.errors import RecipeError
from bertkit.tasks.ner.metrics import MAIN_METRIC, METRICS
from bertkit.tasks.ner.recipe import NerRecipe
from bertkit.tasks.ner.tagging import TagSpec
from bertkit.training.arguments import Selection


def select_metric(recipe: NerRecipe, spec: TagSpec) -> Selection:
    """The metric that picks the best checkpoint: `train.metric`, else entity micro-F1.

    Raises:
        RecipeError: a metric NER does not report (the hint names the closest).
    """
    name = (recipe.train.metric or MAIN_METRIC).removeprefix("eval_")
    known = [*METRICS, *(f"f1/{kind}" for kind in spec.types)]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        did_you_mean = f"did you mean `{close[0]}`? " if close else ""
        raise RecipeError(
            f"train.metric: unknown metric {name!r} for NER",
            hint=f"{did_you_mean}metrics: {', '.join(METRICS)} and f1/<entity type>",
        )
    return Selection(name, name != "loss")


def class_weights(recipe: NerRecipe, labels: list[list[int]], num_labels: int) -> list[float] | None:
    """Per-tag loss weights for `train.class_weights: auto`: n / (tags x n_tag), over labelled sub-tokens.

    A tag that training never uses gets weight 1.
    """
    if recipe.train.class_weights == "none":
        return None
    counts = [0] * num_labels
    for row in labels:
        for label in row:
            if label >= 0:
                counts[label] += 1
    total = sum(counts)
    return [total / (num_labels * count) if count else 1.0 for count in counts]


def inputs_config(recipe: NerRecipe, spec: TagSpec) -> dict[str, Any]:
    """What bertkit stores in config.json so any copy of the model predicts as it was trained."""
    return {
        "max_length": recipe.data.max_length,
        "stride": recipe.data.overlap,
        "align": recipe.tags.align,
        "scheme": spec.scheme,
        "position_suffix": recipe.data.position_suffix,
    }
