"""Option aliases shared by every command, so flags read and behave the same everywhere."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

# Choices, declared so `--help` lists them and the parser refuses anything else.


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"


class Quantization(str, Enum):
    int8 = "int8"


class OnError(str, Enum):
    stop = "stop"
    skip = "skip"


class Split(str, Enum):
    validation = "validation"
    test = "test"


class InferencePrecision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class InputFormat(str, Enum):
    txt = "txt"
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"
    json = "json"
    parquet = "parquet"


class ExportFormat(str, Enum):
    onnx = "onnx"


class Aggregation(str, Enum):
    first = "first"
    average = "average"
    max = "max"


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
        help="A bertkit run directory, a Hugging Face model folder, an alias (minilm) or a Hub id. "
        "Default: the latest run.",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    Device | None,
    typer.Option("--device", help="Default: the best available.", show_default=False),
]
PrecisionOption = Annotated[
    InferencePrecision,
    typer.Option(
        "--precision",
        help="auto: bf16 (fp16 on older GPUs) on CUDA once it agrees with fp32 on sample texts; fp32 on CPU.",
    ),
]
BackendOption = Annotated[
    Backend,
    typer.Option("--backend", help="onnx: ONNX Runtime on a `bertkit export` folder (or a run's export)."),
]
QuantizeOption = Annotated[
    Quantization | None,
    typer.Option(
        "--quantize",
        help="int8, on CPU: torch quantizes its linear layers; onnx runs the int8 export.",
        show_default=False,
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


def value(choice: Any) -> Any:
    """The plain value of an option (an Enum choice's string), for the domain functions."""
    return choice.value if isinstance(choice, Enum) else choice


def refuse_options(command: str, task: Any, given: dict[str, Any], applies: frozenset[str]) -> None:
    """Refuse options the user gave that do not apply to this model's task.

    Args:
        command: eval or predict, for the message.
        task: the model's task.
        given: option name (as on the command line, without --) -> value, for the
            options the user set (left at their defaults, they are not listed).
        applies: the options the task takes.

    Raises:
        UsageError: naming the first option that does not apply.
    """
    from bertkit.errors import UsageError

    extra = [name for name in given if name not in applies]
    if extra:
        takes = ", ".join(f"--{name}" for name in sorted(applies)) or "no options"
        raise UsageError(
            f"--{extra[0]}: does not apply to `bertkit {command}` on a {task.name} model",
            hint=f"drop it; for {task.name} models `bertkit {command}` takes {takes}",
        )


def refuse_file_options(command: str, given: dict[str, Any]) -> None:
    """Refuse options that describe an input file when the texts are given as arguments.

    Args:
        command: predict or embed, for the message.
        given: option name (without --) -> value, None where the user left the default.

    Raises:
        UsageError: naming the first such option.
    """
    from bertkit.errors import UsageError

    for name, setting in given.items():
        if setting is not None:
            raise UsageError(
                f"--{name}: describes an --input file; the texts here are given as arguments",
                hint=f"drop --{name}, or pass the file with `bertkit {command} --input FILE --{name} ...`",
            )


AggregationOption = Annotated[
    Aggregation | None,
    typer.Option(
        "--aggregation",
        help="NER models: how a word's sub-tokens make its tag: first (its first sub-token, as trained "
        "with align: first), average (their mean probabilities) or max (the surest one). Default: first.",
        show_default=False,
    ),
]
