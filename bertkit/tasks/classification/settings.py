"""What the data decides for training a classifier: the selection metric and class weights.

Both are pure functions of the recipe and the read data, so `bertkit check` and
training decide them the same way, before any model is loaded.
"""

from __future__ import annotations

from bertkit.errors import RecipeError
from bertkit.tasks.classification.data import ClassificationData
from bertkit.tasks.classification.recipe import ClassificationRecipe
from bertkit.training.arguments import Selection


def select_metric(recipe: ClassificationRecipe, data: ClassificationData) -> Selection:
    """The metric that picks the best checkpoint: `train.metric`, else the task's default.

    Raises:
        BertkitError: `train.metric` is not a metric this task reports, or one the
            validation data cannot give (ROC AUC needs both classes).
    """
    from bertkit.tasks.classification.metrics import main_metric, resolve_metric

    spec = data.labels
    if not recipe.train.metric:
        return Selection(*main_metric(spec.problem, spec.num_labels))
    name, greater = resolve_metric(recipe.train.metric, spec.problem, spec.num_labels, list(spec.names))
    validation = data.targets.get("validation")
    if name == "roc_auc" and validation is not None and len(set(validation)) < 2:
        raise RecipeError(
            "train.metric: roc_auc is undefined on validation data that holds a single class",
            hint="use another train.metric (accuracy, f1_macro, mcc), or validation data with both classes",
        )
    return Selection(name, greater)


def resolve_class_weights(recipe: ClassificationRecipe, data: ClassificationData) -> list[float] | None:
    """Per-class loss weights from `train.class_weights`, in label id order.

    `auto` weighs each class by n_examples / (n_classes * n_class_examples), the
    usual "balanced" weighting.

    Raises:
        RecipeError: weights for a problem other than single-label, or not matching the labels.
    """
    setting = recipe.train.class_weights
    if setting == "none":
        return None
    spec = data.labels
    if spec.problem != "single":
        raise RecipeError(
            f"train.class_weights: applies to single-label classification, not {spec.problem}",
            hint="remove train.class_weights",
        )
    names = list(spec.names)
    if setting == "auto":
        targets = data.targets["train"]
        counts = [targets.count(i) for i in range(len(names))]
        weights = [len(targets) / (len(names) * max(c, 1)) for c in counts]
    elif isinstance(setting, dict):
        unknown = sorted(set(setting) - set(names))
        if unknown:
            raise RecipeError(
                f"train.class_weights: unknown labels {unknown}; labels are {names}",
                hint="name every weight by a label of the training data",
            )
        weights = [float(setting.get(name, 1.0)) for name in names]
    else:
        if len(setting) != len(names):
            raise RecipeError(
                f"train.class_weights: {len(setting)} weights for {len(names)} labels {names}",
                hint="give one weight per label, in label id order, or a mapping label: weight",
            )
        weights = [float(w) for w in setting]
    if any(w <= 0 for w in weights):
        raise RecipeError("train.class_weights: weights must be positive", hint="use values > 0")
    return weights
