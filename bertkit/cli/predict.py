"""`bertkit predict`: labels for texts given as arguments, or for a whole file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import BatchSizeOption, DeviceOption, JsonOption, ModelDirOption, PrecisionOption


@app.command("predict")
def predict(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify.", show_default=False)] = None,
    model: ModelDirOption = None,
    input: Annotated[  # noqa: A002 - the option is called --input
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="File to predict: txt (one text per line), csv, tsv, jsonl; `-` for stdin.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write predictions here (.jsonl, .csv, .tsv). Default: stdout.",
            show_default=False,
        ),
    ] = None,
    text_column: Annotated[
        str, typer.Option("--text-column", help="Input column holding the text.")
    ] = "text",
    text_pair: Annotated[
        str | None,
        typer.Option(
            "--text-pair", help="Input column holding the second text (pair models).", show_default=False
        ),
    ] = None,
    input_format: Annotated[
        str | None,
        typer.Option("--input-format", help="txt, csv, tsv, jsonl, json or parquet.", show_default=False),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Also list the k most likely labels.")] = 1,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Multi-label models: predict labels at least this likely. Default: the training setting.",
            show_default=False,
        ),
    ] = None,
    batch_size: BatchSizeOption = None,
    on_error: Annotated[
        str, typer.Option("--on-error", help="stop: fail on a malformed row; skip: skip and report it.")
    ] = "stop",
    backend: Annotated[
        str,
        typer.Option(
            "--backend", help="torch, or onnx: ONNX Runtime on a `bertkit export` folder (or a run's export)."
        ),
    ] = "torch",
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="int8, on CPU: torch quantizes its linear layers; onnx runs the int8 export.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Predict labels for texts or a file with a trained model.

    Uses the latest run unless --model is given.

    \b
    Examples:
      bertkit predict "what a wonderful film" "the soup was cold"
      bertkit predict --input reviews.csv --text-column review --output predictions.csv
      cat texts.txt | bertkit predict --input - > predictions.jsonl
      bertkit predict --backend onnx --quantize int8 --input texts.txt -o out.jsonl
    """
    from bertkit.errors import UsageError

    if on_error not in ("stop", "skip"):
        raise UsageError(f"--on-error {on_error!r}: expected stop or skip", hint="use --on-error skip")
    if bool(texts) == (input is not None):
        raise UsageError(
            "give texts as arguments or --input FILE (one of them)",
            hint='bertkit predict "some text"   or   bertkit predict --input texts.txt',
        )
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.export.runtime import backend_model_dir, check_backend_options, load_backend_classifier
    from bertkit.tasks.mlm.inference import model_kind

    check_backend_options(backend, quantize, device, precision)
    folder = backend_model_dir(model, backend)
    if model_kind(folder) == "masked-lm":
        if precision not in ("auto", "fp32"):
            raise UsageError(f"--precision {precision}: fill-mask predicts in fp32", hint="drop --precision")
        if not texts:
            raise UsageError(
                "fill-mask takes texts as arguments, not --input", hint='bertkit predict "a [MASK] day"'
            )
        _fill_mask(model, texts, top_k if top_k > 1 else 5, device, as_json, backend, quantize)
        return
    classifier = load_backend_classifier(
        model, backend=backend, quantize=quantize, device=device, precision=precision
    )
    batch_size = batch_size or DEFAULT_INFERENCE_BATCH[classifier.device]
    problem = classifier.labels.problem
    if top_k > 1 and problem != "single":
        raise UsageError(
            f"--top-k: ranks the labels of single-label models; this one is {problem}",
            hint="drop --top-k" + (" (every label over --threshold is listed)" if problem == "multi" else ""),
        )
    if threshold is not None and problem != "multi":
        raise UsageError(
            f"--threshold: applies to multi-label models; this one is {problem}", hint="drop --threshold"
        )
    if threshold is not None:
        classifier.threshold = threshold
    if texts:
        _predict_arguments(classifier, texts, top_k, batch_size, as_json, output)
    else:
        _predict_file(
            classifier,
            input,
            output,
            text_column,
            text_pair,
            input_format,
            top_k,
            batch_size,
            on_error == "skip",
        )


def _fill_mask(model, texts, top_k, device, as_json, backend, quantize) -> None:
    import json

    from rich.table import Table

    from bertkit.console import out
    from bertkit.export.runtime import load_backend_masked_lm
    from bertkit.tasks.mlm.inference import fill_mask

    mlm = load_backend_masked_lm(model, backend=backend, quantize=quantize, device=device)
    results = fill_mask(mlm, texts, top_k=top_k)
    if as_json:
        out.print_json(json.dumps([{"text": t, "masks": r} for t, r in zip(texts, results, strict=True)]))
        return
    for text, masks in zip(texts, results, strict=True):
        table = Table(title=text, title_justify="left", box=None, pad_edge=False)
        for index in range(len(masks)):
            table.add_column(f"mask {index + 1}" if len(masks) > 1 else "token")
            table.add_column("p", justify="right")
        for rank in range(top_k):
            cells = []
            for candidates in masks:
                cells += [candidates[rank]["token"], f"{candidates[rank]['score']:.3f}"]
            table.add_row(*cells)
        out.print(table)


def _predict_arguments(classifier, texts, top_k, batch_size, as_json, output) -> None:
    import json

    from rich.table import Table

    from bertkit.console import out
    from bertkit.tasks.classification.predict import predict_texts

    results = predict_texts(classifier, texts, top_k=top_k, batch_size=batch_size)
    if output is not None:
        from bertkit.console import err
        from bertkit.tasks.classification.predict import write_predictions

        write_predictions([{"text": t, **r} for t, r in zip(texts, results, strict=True)], output)
        err.print(f"{len(texts)} predictions -> {output}")
        return
    if as_json:
        out.print_json(json.dumps([{"text": t, **r} for t, r in zip(texts, results, strict=True)]))
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("text", overflow="fold")
    problem = classifier.labels.problem
    if problem == "regression":
        table.add_column("value", justify="right")
    else:
        table.add_column("label" if problem == "single" else "labels", style="bold")
        if problem == "single":
            table.add_column("score", justify="right")
    for text, result in zip(texts, results, strict=True):
        if problem == "regression":
            table.add_row(text, f"{result['predicted_value']:.4f}")
        elif problem == "multi":
            table.add_row(text, ", ".join(result["predicted_labels"]) or "-")
        else:
            shown = result["predicted_label"]
            if top_k > 1:
                shown = ", ".join(f"{c['label']} {c['score']:.3f}" for c in result["top_k"])
            table.add_row(text, shown, f"{result['predicted_score']:.4f}")
    out.print(table)


def _predict_file(
    classifier, source, output, text_column, text_pair, input_format, top_k, batch_size, skip
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bertkit.console import err, note, plural, warn
    from bertkit.export.runtime import describe_backend
    from bertkit.tasks.classification.predict import count_rows, predict_file

    total = count_rows(source, input_format)
    columns = [TextColumn("[bold]predicting[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(
        *columns, console=err, transient=True, disable=output is None and not err.is_terminal
    ) as bar:
        task = bar.add_task("predict", total=total)
        stats = predict_file(
            classifier,
            source,
            output,
            text_column=text_column,
            pair_column=text_pair,
            input_format=input_format,
            top_k=top_k,
            batch_size=batch_size,
            skip_errors=skip,
            on_progress=lambda done: bar.update(task, completed=done),
        )
    for line in stats.notes:
        note(line)
    if stats.empty:
        warn(
            f"{stats.empty:,} row{'s' if stats.empty > 1 else ''} had no text (blank lines or empty values): "
            "kept in the output with empty predictions"
        )
    for message in stats.skipped[:20]:
        warn(f"skipped {message}")
    if len(stats.skipped) > 20:
        warn(f"... and {len(stats.skipped) - 20} more skipped rows")
    where = f" -> {stats.output}" if output else ""
    err.print(
        f"{plural(stats.rows, 'row')} in {stats.seconds:.1f}s ({stats.rows_per_second:,.0f} rows/s, "
        f"{describe_backend(classifier)}){where}"
        + (f", {len(stats.skipped)} skipped" if stats.skipped else "")
    )
