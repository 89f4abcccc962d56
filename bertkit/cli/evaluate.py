"""`bertkit eval`: score a trained model on labelled data and write a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import BatchSizeOption, DeviceOption, JsonOption, ModelDirOption, PrecisionOption


@app.command("eval")
def evaluate(
    model: ModelDirOption = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="A labelled file (csv, tsv, jsonl, json, parquet). Default: the run's validation data.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option("--split", help="validation or test, from the run's recipe.", show_default=False),
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
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on labelled data and write a report.

    Metrics, per-class scores, confusion matrix and the misclassified examples.

    With no options it evaluates the latest run on its recipe's validation data.

    \b
    Examples:
      bertkit eval
      bertkit eval --split test
      bertkit eval --model runs/quickstart-20250101-120000 --data reviews.csv --label-column stars
    """
    from bertkit.tasks.classification.inference import find_model_dir
    from bertkit.tasks.mlm.inference import model_kind

    folder, _ = find_model_dir(model)
    if model_kind(folder) == "masked-lm":
        if precision not in ("auto", "fp32"):
            from bertkit.errors import UsageError

            raise UsageError(f"--precision {precision}: masked-LM evaluation runs in fp32", hint="drop it")
        _evaluate_masked_lm(model, data, baseline, limit, batch_size or 32, output, device, as_json)
        return
    from bertkit.tasks.classification.evaluate import evaluate_classifier

    result = evaluate_classifier(
        model,
        data=data,
        split=split,
        text=text,
        text_pair=text_pair,
        label=label,
        limit=limit,
        batch_size=batch_size,
        output=output,
        extra_metrics=metric,
        device=device,
        precision=precision,
    )
    _render(result, as_json)


def _evaluate_masked_lm(model, data, baseline, limit, batch_size, output, device, as_json) -> None:
    import json

    from rich.table import Table

    from bertkit.console import out
    from bertkit.tasks.mlm.inference import evaluate_masked_lm

    result = evaluate_masked_lm(
        model, data=data, baseline=baseline, limit=limit, batch_size=batch_size, output=output, device=device
    )
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "metrics": result.metrics,
                    "baseline": result.baseline,
                    "data": result.data,
                    "report": str(result.report_dir),
                }
            )
        )
        return
    table = Table(title=f"{result.data}: {result.sequences:,} sequences, fixed masks", title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    if result.baseline:
        table.add_column(f"baseline ({baseline})", justify="right")
    for name, value in result.metrics.items():
        extra = [f"{result.baseline[name]:.4f}"] if result.baseline and name in result.baseline else []
        table.add_row(name, f"{value:.4f}", *extra)
    out.print(table)
    out.print(f"report: {result.report_dir}/report.md")


def _render(result, as_json: bool) -> None:
    import json

    from bertkit.cli.render import metrics_table, positive_class
    from bertkit.console import out

    if as_json:
        out.print_json(
            json.dumps(
                {
                    "metrics": result.metrics,
                    "n_examples": result.n_examples,
                    "data": result.data,
                    "report": str(result.report_dir),
                }
            )
        )
        return
    title = f"{result.data}: {result.n_examples:,} examples"
    out.print(
        metrics_table({"value": result.metrics}, result.main_metric, title, positive_class(result.model))
    )
    out.print(f"report: {result.report_dir}/report.md")
