"""`bertkit eval`: score a trained model on held-out data and write a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import (
    AggregationOption,
    BatchSizeOption,
    DeviceOption,
    InferencePrecision,
    JsonOption,
    ModelDirOption,
    PrecisionOption,
    Split,
    refuse_options,
    value,
)


@app.command("eval")
def evaluate(
    model: ModelDirOption = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="A labelled file (csv, tsv, jsonl, json, parquet; text for masked-LM). "
            "Default: the run's validation data.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        Split | None, typer.Option("--split", help="Which data of the run's recipe.", show_default=False)
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option(
            "--text-column",
            help="Text column (repeat to join several). Default: the recipe's.",
            show_default=False,
        ),
    ] = None,
    text_pair: Annotated[
        str | None,
        typer.Option("--text-pair", help="Second text column, for sentence-pair models.", show_default=False),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label-column", help="Label column. Default: the recipe's.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N rows.", show_default=False)
    ] = None,
    batch_size: BatchSizeOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Report folder. Default: RUN/eval/<data>.", show_default=False),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="Also compute a metric of the `evaluate` library (needs the Hub).",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Masked-LM runs: also score this model (e.g. the starting "
            "checkpoint) on the same masked text.",
            show_default=False,
        ),
    ] = None,
    aggregation: AggregationOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = InferencePrecision.auto,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on held-out data and write a report.

    Classifiers: metrics, per-class scores, confusion matrix and the misclassified
    examples. NER models: entity precision, recall and F1 (micro and per type), a type
    confusion table and the wrong or missed entities. Masked-LM models: loss,
    perplexity and masked-token accuracy on text masked once with a fixed seed.
    Options that do not apply to the model are refused.

    With no options it evaluates the latest run on its recipe's validation data.

    \b
    Examples:
      bertkit eval
      bertkit eval --split test
      bertkit eval --model runs/quickstart-20250101-120000 --data reviews.csv --label-column stars
      bertkit eval --model runs/mlm-20250101-120000 --baseline minilm
    """
    from bertkit.runs import find_model_dir
    from bertkit.tasks import task_of

    folder, _ = find_model_dir(model)
    task = task_of(folder)
    options = {
        "data": data,
        "split": value(split),
        "text-column": text,
        "text-pair": text_pair,
        "label-column": label,
        "limit": limit,
        "batch-size": batch_size,
        "output": output,
        "metric": metric,
        "baseline": baseline,
        "aggregation": value(aggregation),
        "device": value(device),
        "precision": None if precision is InferencePrecision.auto else value(precision),
    }
    given = {name: option for name, option in options.items() if option}
    refuse_options("eval", task, given, task.eval_options)
    _render(task.evaluate(model, given), as_json)


def _render(outcome, as_json: bool) -> None:
    import json

    from bertkit.cli.render import metrics_table
    from bertkit.console import out

    if as_json:
        record = {
            "metrics": outcome.metrics,
            "n_examples": outcome.examples,
            "data": outcome.data,
            "report": str(outcome.report_dir),
        }
        if outcome.baseline is not None:
            record["baseline"] = outcome.baseline
        out.print_json(json.dumps(record))
        return
    columns = {"model" if outcome.baseline else "value": outcome.metrics}
    if outcome.baseline:
        columns[f"baseline ({outcome.baseline_name})"] = outcome.baseline
    out.print(metrics_table(columns, outcome.main_metric, outcome.title, outcome.positive))
    out.print(f"report: {outcome.report_dir}/report.md")
