"""Model cards: what a model is, what it was trained on, how well it does, how to rerun it.

The layout is the same for every task; the task says what its model is (CardFacts:
a summary, sections such as its labels, an example call).
"""

from __future__ import annotations

from typing import Any

from bertkit.recipe.base import RecipeBase

_SKIP = ("runtime", "per_second", "flos", "epoch")


def model_card(
    *,
    recipe: RecipeBase,
    facts: Any,
    pipeline_tag: str,
    command: str,
    metrics: dict[str, dict[str, float]],
    main_metric: str | None,
    lineage: list[str],
    data_notes: list[str],
    precision: str,
    device: str,
) -> str:
    """A Hugging Face style README.md (YAML front matter, then Markdown) for a trained run.

    Args:
        facts: the task's CardFacts (summary, sections, example call).
        pipeline_tag: the Hugging Face pipeline the model works in.
        command: the bertkit command that trains it again (finetune or pretrain).
    """
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline_tag}",
        "tags: [bertkit, bert]",
        "---",
        "",
        f"# {recipe.run_name}",
        "",
        recipe.description or "",
        "",
        facts.summary,
        "",
        *facts.sections,
        "## Data",
        "",
    ]
    for split in ("train", "validation", "test"):
        source = getattr(recipe.data, split)
        if source is not None:
            lines.append(f"- {split}: `{source.describe()}`")
    lines += [f"- {n}" for n in data_notes if not n.startswith(("train:", "validation:", "test:"))]
    lines += ["", "## Results", "", *_metrics_table(metrics, main_metric)]
    t = recipe.train
    lines += [
        "",
        "## Training",
        "",
        f"- started from: {' <- '.join(f'`{step}`' for step in lineage) or f'`{recipe.model.name}`'}",
        f"- epochs: {t.epochs:g}" + (f", max steps: {t.max_steps}" if t.max_steps else ""),
        f"- batch size: {t.batch_size} x {t.gradient_accumulation} accumulation, "
        f"learning rate {t.learning_rate:g}, warmup {t.warmup:g}, weight decay {t.weight_decay:g}",
        f"- max length: {recipe.data.max_length} tokens, seed {t.seed}, {precision} on {device}",
        "",
        "## Use",
        "",
        "```python",
        *(
            facts.usage
            or [
                "from transformers import pipeline",
                f'model = pipeline("{pipeline_tag}", model="path/to/this/folder")',
                facts.example,
            ]
        ),
        "```",
        "",
        f"Or with bertkit: `{facts.bertkit}`. To train it again: "
        f"`bertkit {command} --recipe recipe.yaml` in the run directory.",
        "",
        "## Intended use and limits",
        "",
        "Made for the data and labels above. Its scores hold for data like its validation "
        "set; check it on your own data before relying on it, and do not use it for decisions "
        "about people without a careful review of errors and bias.",
        "",
    ]
    return "\n".join(lines)


def _metrics_table(metrics: dict[str, dict[str, float]], main_metric: str | None) -> list[str]:
    splits = [s for s in ("validation", "test") if s in metrics]
    if not splits:
        loss = metrics.get("train", {}).get("loss")
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
