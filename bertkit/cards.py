"""Model cards: what a model is, what it was trained on, how well it does, how to rerun it."""

from __future__ import annotations

from bertkit.recipe.schema import Recipe
from bertkit.tasks.classification.labels import LabelSpec

_SKIP = ("runtime", "per_second", "flos", "epoch")


def model_card(
    *,
    recipe: Recipe,
    metrics: dict[str, dict[str, float]],
    labels: LabelSpec | None,
    main_metric: str | None,
    lineage: list[str],
    data_notes: list[str],
    precision: str,
    device: str,
) -> str:
    """A Hugging Face style README.md (YAML front matter, then Markdown) for a trained run."""
    classification = recipe.task == "classification"
    pipeline = "text-classification" if classification else "fill-mask"
    base = lineage[-1] if lineage else recipe.model.name
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline}",
        "tags: [bertkit, bert]",
        "---",
        "",
        f"# {recipe.run_name}",
        "",
        recipe.description or "",
        "",
        _summary(recipe, labels, lineage),
        "",
    ]
    if labels is not None and labels.names:
        lines += ["## Labels", "", f"{labels.reason}.", ""]
        lines += [f"- `{i}`: {name}" for i, name in enumerate(labels.names)] + [""]
    lines += ["## Data", ""]
    for split in ("train", "validation", "test"):
        source = getattr(recipe.data, split)
        if source is not None:
            lines.append(f"- {split}: `{source.describe()}`")
    lines += [f"- {n}" for n in data_notes if not n.startswith(("train:", "validation:", "test:"))]
    lines += ["", "## Results", ""]
    lines += _metrics_table(metrics, main_metric)
    t = recipe.train
    lines += [
        "",
        "## Training",
        "",
        f"- started from: {' <- '.join(f'`{step}`' for step in lineage) or f'`{base}`'}",
        f"- epochs: {t.epochs:g}" + (f", max steps: {t.max_steps}" if t.max_steps else ""),
        f"- batch size: {t.batch_size} x {t.gradient_accumulation} accumulation, "
        f"learning rate {t.learning_rate:g}, warmup {t.warmup:g}, weight decay {t.weight_decay:g}",
        f"- max length: {recipe.data.max_length} tokens, seed {t.seed}, {precision} on {device}",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        f'model = pipeline("{pipeline}", model="path/to/this/folder")',
        'model("what a wonderful film")' if classification else 'model("Paris is the [MASK] of France.")',
        "```",
        "",
        'Or with bertkit: `bertkit predict --model RUN_DIR "some text"`. To train it again: '
        "`bertkit finetune --recipe recipe.yaml` in the run directory"
        if classification
        else "To train it again: `bertkit pretrain --recipe recipe.yaml` in the run directory.",
        "",
        "## Intended use and limits",
        "",
        "Made for the data and labels above. Its scores hold for data like its validation "
        "set; check it on your own data before relying on it, and do not use it for decisions "
        "about people without a careful review of errors and bias.",
        "",
    ]
    return "\n".join(lines)


def _summary(recipe: Recipe, labels: LabelSpec | None, lineage: list[str]) -> str:
    start = f"`{lineage[0]}`" if lineage else f"`{recipe.model.name}`"
    if recipe.task == "mlm":
        how = "trained from scratch" if recipe.model.init == "scratch" else f"continued from {start}"
        return f"A BERT masked language model {how} with bertkit."
    kind = {"single": "single-label", "multi": "multi-label", "regression": "regression"}
    problem = kind[labels.problem] if labels else "text"
    count = f" over {len(labels.names)} labels" if labels and labels.names else ""
    return f"A {problem} text classifier{count}, fine-tuned from {start} with bertkit."


def _metrics_table(metrics: dict[str, dict[str, float]], main_metric: str | None) -> list[str]:
    splits = [s for s in ("validation", "test") if s in metrics]
    if not splits:
        train = metrics.get("train", {})
        loss = train.get("train_loss", train.get("loss"))
        return [f"No evaluation data. Final training loss: {loss:.4f}." if loss is not None else "None."]
    names: list[str] = []
    for split in splits:
        for name in metrics[split]:
            if name not in names and not any(s in name for s in _SKIP) and "/" not in name:
                names.append(name)
    if main_metric in names:
        names.remove(main_metric)
        names.insert(0, main_metric)
    rows = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for name in names:
        shown = f"**{name}**" if name == main_metric else name
        cells = [f"{metrics[s][name]:.4f}" if name in metrics[s] else "" for s in splits]
        rows.append(f"| {shown} | " + " | ".join(cells) + " |")
    return rows
