"""Option aliases shared by every command, so flags read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RecipeOption = Annotated[
    str,
    typer.Option(
        "--recipe",
        "-r",
        help="Recipe file, or the name of a bundled recipe (see `bertkit recipes list`).",
        show_default=False,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a recipe key, e.g. --set train.epochs=2 (repeatable; values are YAML).",
        metavar="KEY=VALUE",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON instead of a table (for scripts and bug reports)."),
]
ModelDirOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help="A bertkit run directory or any Hugging Face model directory. Default: the latest run.",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="cpu, cuda or mps. Default: the best available.",
        show_default=False,
    ),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto, fp32, bf16 or fp16. auto: bf16 (fp16 on older GPUs) on CUDA once it agrees with "
        "fp32 on sample texts, fp32 on CPU.",
    ),
]
BatchSizeOption = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        help="Texts per forward pass. Default: 64 on CPU, 256 on a GPU.",
        show_default=False,
    ),
]
