"""`bertkit predict`: labels for texts given as arguments, or for a whole file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import (
    AggregationOption,
    Backend,
    BackendOption,
    BatchSizeOption,
    DeviceOption,
    InferencePrecision,
    InputFormat,
    JsonOption,
    ModelDirOption,
    OnError,
    PrecisionOption,
    QuantizeOption,
    refuse_file_options,
    refuse_options,
    value,
)


@app.command("predict")
def predict(
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Texts to predict (with a [MASK] for fill-mask; questions for question answering).",
            show_default=False,
        ),
    ] = None,
    model: ModelDirOption = None,
    question: Annotated[
        str | None,
        typer.Option("--question", "-q", help="Question-answering models: the question.", show_default=False),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            "-c",
            help="Question-answering models: the text to answer from, or a file holding it (any length).",
            show_default=False,
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="Embedding models: search this corpus (txt, csv, jsonl; a BEIR corpus.jsonl) for each text.",
            show_default=False,
        ),
    ] = None,
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
        str | None,
        typer.Option(
            "--text-column",
            help="Input column holding the text (question answering: the question). Default: text.",
            show_default=False,
        ),
    ] = None,
    text_pair: Annotated[
        str | None,
        typer.Option(
            "--text-pair",
            help="Input column holding the second text (pair models; question answering: the context).",
            show_default=False,
        ),
    ] = None,
    input_format: Annotated[
        InputFormat | None,
        typer.Option("--input-format", help="Default: from the file's extension.", show_default=False),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            min=1,
            help="List the k most likely labels (fill-mask: tokens, default 5; question answering: "
            "answers, default 1; search: documents, default 10).",
            show_default=False,
        ),
    ] = None,
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
        OnError, typer.Option("--on-error", help="stop: fail on a malformed row; skip: skip and report it.")
    ] = OnError.stop,
    backend: BackendOption = Backend.torch,
    quantize: QuantizeOption = None,
    aggregation: AggregationOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = InferencePrecision.auto,
    as_json: JsonOption = False,
) -> None:
    """Predict with a trained model: texts given as arguments, or a whole file.

    Classifiers give labels and scores; NER models list entities with their type,
    character offsets, text and score; question-answering models answer each question
    from --context (a text or a file of any length); masked-LM models fill each [MASK];
    embedding models search --corpus for the nearest documents. Files are
    streamed (input columns pass through) and written atomically. Options that do
    not apply to the model are refused.

    Uses the latest run unless --model is given.

    \b
    Examples:
      bertkit predict "what a wonderful film" "the soup was cold"
      bertkit predict --input reviews.csv --text-column review --output predictions.csv
      cat texts.txt | bertkit predict --input - > predictions.jsonl
      bertkit predict --backend onnx --quantize int8 --input texts.txt -o out.jsonl
      bertkit predict --model runs/mlm-20250101-120000 "the food was [MASK] ."
      bertkit predict --model runs/ner-20250101-120000 "Angela Merkel visited Paris"
      bertkit predict --model runs/qa-20250101-120000 --context report.txt "who wrote it?"
      bertkit predict --model runs/embedding-20250101-120000 --corpus docs.jsonl "reset my password"
    """
    from bertkit.errors import UsageError

    if bool(texts or question) == (input is not None):
        raise UsageError(
            "give texts as arguments or --input FILE (one of them)",
            hint='bertkit predict "some text"   or   bertkit predict --input texts.txt',
        )
    if input is None:
        refuse_file_options(
            "predict",
            {
                "text-column": text_column,
                "text-pair": text_pair,
                "input-format": value(input_format),
                "on-error": None if on_error is OnError.stop else value(on_error),
            },
        )
    from bertkit.export.runtime import backend_model_dir, check_backend_options
    from bertkit.tasks import task_of

    check_backend_options(value(backend), value(quantize), value(device), value(precision))
    task = task_of(backend_model_dir(model, value(backend)))
    options = {
        "question": question,
        "context": context,
        "corpus": corpus,
        "input": input,
        "output": output,
        "text-column": text_column,
        "text-pair": text_pair,
        "input-format": value(input_format),
        "top-k": top_k,
        "threshold": threshold,
        "batch-size": batch_size,
        "on-error": None if on_error is OnError.stop else value(on_error),
        "aggregation": value(aggregation),
        "backend": None if backend is Backend.torch else value(backend),
        "quantize": value(quantize),
        "device": value(device),
        "precision": None if precision is InferencePrecision.auto else value(precision),
        "json": as_json,
    }
    given = {name: option for name, option in options.items() if option is not None and option is not False}
    refuse_options("predict", task, given, task.predict_options)
    task.predict(model, texts or [], given)
