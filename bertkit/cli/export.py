"""`bertkit export`: a trained model as ONNX (optionally int8), checked against the original."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app
from bertkit.cli.options import JsonOption, ModelDirOption


@app.command("export")
def export(
    model: ModelDirOption = None,
    format: Annotated[  # noqa: A002 - the option is called --format
        str, typer.Option("--format", "-f", help="Export format (onnx).")
    ] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Export folder. Default: RUN/export/onnx (required for a model folder).",
            show_default=False,
        ),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="int8: also write a dynamically quantized graph for CPU (model.int8.onnx).",
            show_default=False,
        ),
    ] = None,
    optimize: Annotated[
        bool,
        typer.Option(
            "--optimize/--no-optimize",
            help="Fuse attention, layer norms and GELUs into ONNX Runtime's kernels (faster); "
            "--no-optimize keeps standard ONNX operators, for other runtimes.",
        ),
    ] = True,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Texts for the parity check (a `text` column, or the run's). "
            "Default: the run's validation data, else built-in sentences.",
            show_default=False,
        ),
    ] = None,
    max_diff: Annotated[
        float,
        typer.Option("--max-diff", help="Largest |logit difference| allowed between fp32 ONNX and torch."),
    ] = 1e-3,
    min_agreement: Annotated[
        float,
        typer.Option("--min-agreement", help="Least share of equal predictions allowed for int8 (0-1)."),
    ] = 0.99,
    max_accuracy_drop: Annotated[
        float,
        typer.Option(
            "--max-accuracy-drop",
            help="Or, when the sample texts have labels: most accuracy (question answering: F1) int8 may "
            "lose (0.01: one point).",
        ),
    ] = 0.01,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing export folder.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export a classifier or masked-LM model to ONNX, checked against the original.

    The folder holds model.onnx (dynamic batch and sequence axes; fused for ONNX
    Runtime unless --no-optimize), model.int8.onnx with --quantize int8, config.json
    with the label names, the tokenizer, and export.json with the parity report.
    The export is run next to the original model on sample texts and fails, leaving
    nothing behind, if they differ beyond the tolerances.

    Uses the latest run unless --model is given.

    \b
    Examples:
      bertkit export
      bertkit export --model runs/sentiment-20250101-120000 --quantize int8
      bertkit export --model my-model/ --output my-model-onnx
      bertkit export --no-optimize    # standard ONNX operators only
      bertkit predict --backend onnx --model runs/latest "what a wonderful film"
    """
    import json

    from bertkit.console import note
    from bertkit.export.run import export_model

    result = export_model(
        model,
        output=output,
        format=format,
        quantize=quantize,
        optimize=optimize,
        data=data,
        overwrite=overwrite,
        max_diff=max_diff,
        min_agreement=min_agreement,
        max_accuracy_drop=max_accuracy_drop,
        on_step=note,
    )
    if as_json:
        from bertkit.console import out

        out.print_json(json.dumps({"folder": str(result.folder), **result.info}))
        return
    _report(result)


def _report(result) -> None:
    from rich.table import Table

    from bertkit.console import err, out

    table = Table(title=f"ONNX export: {result.folder}", title_justify="left")
    same = f"same {result.parity[0].agreement_of}" if result.parity else "agreement"
    labelled = any(check.accuracy is not None for check in result.parity)
    quality = result.parity[0].quality if result.parity else "accuracy"
    columns = ("graph", "size", "max |Δ|", same, *([quality] if labelled else []), "check")
    for name in columns:
        table.add_column(name, justify="left" if name in ("graph", "check") else "right", overflow="fold")
    limits = []
    for check in result.parity:
        file = result.folder / result.files[check.variant]
        tolerance = check.tolerance
        if "max_abs_diff" in tolerance:
            limits.append(f"{check.variant} max |Δ| ≤ {tolerance['max_abs_diff']:g}")
        else:
            limit = f"{check.variant} {same} ≥ {tolerance['min_agreement']:.0%}"
            if "max_accuracy_drop" in tolerance:
                limit += f" or {quality} down ≤ {tolerance['max_accuracy_drop'] * 100:g} pt"
            limits.append(limit)
        accuracy = [f"{check.accuracy:.2%}" if check.accuracy is not None else ""] if labelled else []
        table.add_row(
            file.name,
            f"{file.stat().st_size / 1e6:,.1f} MB",
            f"{check.max_abs_diff:.1e}",
            f"{check.agreement:.2%}",
            *accuracy,
            "passed" if check.passed else "FAILED",
        )
    out.print(table)
    err.print(f"limits: {'; '.join(limits)}")
    original = next((c for c in result.parity if c.reference_accuracy is not None), None)
    if original is not None:
        err.print(
            f"the original model's {quality} on the {original.labelled} labelled texts: "
            f"{original.reference_accuracy:.2%}"
        )
    err.print(f"checked on {result.sample}; {result.seconds:.1f}s")
    quantized = " --quantize int8" if "int8" in result.files else ""
    example = result.example
    err.print(f"next: bertkit predict --backend onnx{quantized} --model {result.folder} {example}")
