"""`bertkit embed`: sentence vectors of texts given as arguments, or of a whole file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import (
    Backend,
    BatchSizeOption,
    DeviceOption,
    InputFormat,
    OnError,
    Quantization,
    refuse_file_options,
    value,
)


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"
    max = "max"


@app.command("embed")
def embed(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to embed.", show_default=False)] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="A bertkit run, a model folder (sentence-transformers or any BERT), `minilm`, or a Hub id. "
            "Default: the latest run.",
            show_default=False,
        ),
    ] = None,
    input: Annotated[  # noqa: A002 - the option is called --input
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="File to embed: txt, csv, tsv, jsonl, parquet; `-` for stdin.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write here: .npy (vectors only, in input order), .parquet or .jsonl (input columns and an "
            "`embedding` column). Default: JSONL on stdout.",
            show_default=False,
        ),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(
            "--text-column", help="Input column holding the text. Default: text.", show_default=False
        ),
    ] = None,
    input_format: Annotated[
        InputFormat | None,
        typer.Option("--input-format", help="Default: from the file's extension.", show_default=False),
    ] = None,
    pooling: Annotated[
        Pooling | None,
        typer.Option(
            "--pooling",
            help="How token vectors make one vector. Default: the model's own (a sentence-transformers "
            "folder), else mean over the attention mask.",
            show_default=False,
        ),
    ] = None,
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--no-normalize",
            help="Scale vectors to unit length. Default: as the model does.",
            show_default=False,
        ),
    ] = None,
    tokens: Annotated[
        bool,
        typer.Option("--tokens", help="Write each token's contextual vector with its character offsets."),
    ] = False,
    max_length: Annotated[
        int | None,
        typer.Option(
            "--max-length", min=8, help="Longest text in tokens. Default: the model's.", show_default=False
        ),
    ] = None,
    batch_size: BatchSizeOption = None,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend", help="onnx: ONNX Runtime on a `bertkit export` folder (or a run's export)."
        ),
    ] = Backend.torch,
    quantize: Annotated[
        Quantization | None,
        typer.Option("--quantize", help="With --backend onnx: the int8 graph.", show_default=False),
    ] = None,
    on_error: Annotated[
        OnError, typer.Option("--on-error", help="stop: fail on a malformed row; skip: skip and report it.")
    ] = OnError.stop,
    device: DeviceOption = None,
) -> None:
    """Embed texts with a sentence encoder: a vector per text, streamed to .npy, .parquet or .jsonl.

    Any bertkit embedding run, sentence-transformers folder or BERT model works; the
    model's own pooling and normalisation are used (a sentence-transformers folder),
    else mean pooling. Files are streamed in chunks (flat memory on millions of
    lines), input columns pass through, and the output appears only when complete.

    \b
    Examples:
      bertkit embed --model minilm "a man is playing a guitar" "someone plays music"
      bertkit embed --model minilm --input sentences.txt --output vectors.npy
      bertkit embed --input docs.jsonl --text-column body --output docs.parquet
      bertkit embed --model minilm --tokens "bank of the river" -o tokens.jsonl
      bertkit embed --backend onnx --quantize int8 --model export/ --input in.txt -o out.npy
    """
    from bertkit.errors import UsageError

    if bool(texts) == (input is not None):
        raise UsageError(
            "give texts as arguments or --input FILE (one of them)",
            hint='bertkit embed --model minilm "some text", or bertkit embed --input in.txt -o out.npy',
        )
    if input is None:
        refuse_file_options(
            "embed",
            {
                "text-column": text_column,
                "input-format": value(input_format),
                "on-error": None if on_error is OnError.stop else value(on_error),
            },
        )
    from bertkit.devices import DEFAULT_INFERENCE_BATCH
    from bertkit.tasks.embedding.embed import embed_file, output_kind

    output_kind(output, tokens)  # refuse a wrong extension before loading anything
    if backend is Backend.onnx:
        refused = {"--pooling": pooling, "--normalize": normalize, "--tokens": tokens or None,
                   "--max-length": max_length}  # fmt: skip
        for name, given in refused.items():
            if given is not None:
                raise UsageError(f"{name}: not with --backend onnx", hint="the graph has its pooling inside")
    from bertkit.tasks.embedding.backends import load_backend_encoder

    settings = {} if backend is Backend.onnx else {"pooling": value(pooling), "normalize": normalize,
                                                   "max_length": max_length}  # fmt: skip
    encoder = load_backend_encoder(
        model, backend=value(backend), quantize=value(quantize), device=value(device), **settings
    )
    batch = batch_size or DEFAULT_INFERENCE_BATCH[encoder.device]
    from bertkit.console import note

    note(f"{encoder.source}: {encoder.describe()}")
    if input is not None:
        from bertkit.predicting import report, with_progress

        stats = with_progress(
            input,
            value(input_format),
            output,
            lambda progress: embed_file(
                encoder,
                input,
                output,
                text_column=text_column or "text",
                input_format=value(input_format),
                batch_size=batch,
                tokens=tokens,
                skip_errors=on_error is OnError.skip,
                on_progress=progress,
            ),
        )
        report(stats, f"on {encoder.device}", output, unit="text")
        return
    _embed_arguments(encoder, list(texts or []), output, batch, tokens)


def _embed_arguments(encoder, texts: list[str], output: Path | None, batch: int, tokens: bool) -> None:  # noqa: ANN001
    import json
    import sys

    from bertkit.console import err
    from bertkit.tasks.embedding.embed import JsonlSink, NpySink, ParquetSink, embed_texts, output_kind

    kind = output_kind(output, tokens)
    if output is None:
        records = embed_texts(encoder, texts, batch, tokens)
        sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return
    sink = {"npy": NpySink, "parquet": ParquetSink, "jsonl": JsonlSink}[kind](output, encoder.dimension)
    try:
        if kind == "npy":
            sink.write([{} for _ in texts], encoder.encode(texts, batch))
        else:
            sink.write_records(embed_texts(encoder, texts, batch, tokens))
        sink.close()
    except BaseException:
        sink.abort()
        raise
    err.print(f"{len(texts)} {'texts' if len(texts) > 1 else 'text'} -> {output}")
