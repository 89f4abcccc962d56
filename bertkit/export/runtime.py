"""Prediction backends beside plain torch: ONNX Runtime on an exported model, and int8.

`bertkit predict --backend onnx` runs a folder written by `bertkit export`
(`model.onnx`, `config.json`, tokenizer files, `export.json`) with ONNX Runtime. The
classifier it loads is a `Classifier` whose one forward step runs the ONNX graph, so
tokenization, length-sorted batching, outputs and file formats are the same whatever
the backend. `--quantize int8` runs the int8 graph (`model.int8.onnx`) on ONNX
Runtime, or quantizes the torch model's linear layers dynamically (CPU only).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import ModelError, UsageError
from bertkit.runs import RunDirectory, find_model_dir, is_run_dir, latest_run, open_run

BACKENDS = ("torch", "onnx")
QUANTIZATIONS = ("int8",)
EXPORT_SUBDIR = Path("export") / "onnx"  # where a run keeps its ONNX export
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_INFO = "export.json"
OUTPUT_NAME = "logits"
# The inputs an exported BERT graph may take, in the order of its forward().
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
_TORCH_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_INSTALL_HINT = 'install the ONNX extra: pip install "bertkit[export]" (onnxruntime-gpu for CUDA)'
_DEFAULT_MAX_LENGTH = 512


def is_onnx_export(folder: Path) -> bool:
    """Whether `folder` was written by `bertkit export --format onnx`."""
    return (folder / MODEL_FILE).is_file()


def check_backend_options(
    backend: str, quantize: str | None, device: str | None, precision: str = "auto"
) -> None:
    """Refuse option combinations no backend can run, before anything loads.

    Raises:
        UsageError: an unknown backend or quantization, int8 on a GPU, or a
            `--precision` the backend does not take.
    """
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r}: expected torch or onnx", hint="use --backend onnx")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UsageError(f"--quantize {quantize!r}: expected int8", hint="use --quantize int8")
    if quantize and device not in (None, "cpu"):
        raise UsageError(
            f"--quantize {quantize} runs on CPU only, not on {device}",
            hint="drop --device (or use --device cpu) with --quantize int8",
        )
    if precision not in ("auto", "fp32") and (backend != "torch" or quantize):
        what = "--quantize int8" if quantize else f"--backend {backend}"
        raise UsageError(
            f"--precision {precision}: applies to the torch backend in floating point, not to {what}",
            hint="drop --precision",
        )
    if backend == "onnx" and device not in (None, "cpu", "cuda"):
        raise UsageError(
            f"--backend onnx runs on cpu or cuda, not on {device}",
            hint="use --device cpu, or --backend torch on this device",
        )


def find_onnx_dir(model: Path | None, root: Path = Path("runs")) -> Path:
    """The ONNX export to run: `model` itself, a run's `export/onnx`, or the latest run's.

    Raises:
        ModelError: no such folder, or no export where one was looked for.
        RunError: no latest run, or an incomplete run.
    """
    if model is not None and not model.exists():
        raise ModelError(f"{model}: no such folder", hint="give an export folder or a run directory")
    if model is not None and is_onnx_export(model):
        return model
    if model is None:
        run = latest_run(root)
    elif is_run_dir(model):
        run = open_run(model)
    else:
        raise ModelError(
            f"{model}: holds no ONNX export (no {MODEL_FILE})",
            hint=f"export it first: bertkit export --model {model} --output DIR, then --model DIR",
        )
    folder = run.path / EXPORT_SUBDIR
    if not is_onnx_export(folder):
        raise ModelError(
            f"{run.path}: has no ONNX export (no {folder / MODEL_FILE})",
            hint=f"export it first: bertkit export --model {run.path}",
        )
    return folder


def backend_model_dir(model: Path | None, backend: str, root: Path = Path("runs")) -> Path:
    """The folder the backend will load (its config.json says what kind of model it is).

    Raises:
        UsageError: an ONNX export given to the torch backend.
        BertkitError: nothing to load (see `find_model_dir`, `find_onnx_dir`).
    """
    if backend == "onnx":
        return find_onnx_dir(model, root)
    folder, _ = find_model_dir(model, root)
    if is_onnx_export(folder) and not any((folder / name).is_file() for name in _TORCH_WEIGHTS):
        raise UsageError(
            f"{folder}: an ONNX export, which the torch backend cannot load",
            hint="add --backend onnx",
        )
    return folder


def open_session(path: Path, device: str | None = None) -> Any:
    """An ONNX Runtime session on `path`: CUDA when asked (or available), else CPU.

    Raises:
        ModelError: ONNX Runtime is not installed, CUDA was asked for but is not
            available to it, or the graph cannot be loaded.
    """
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda:
        raise ModelError(
            f"--device cuda: this ONNX Runtime has no CUDA provider (it has {', '.join(available)})",
            hint="pip install onnxruntime-gpu in place of onnxruntime, or use --device cpu",
        )
    # int8 graphs use integer kernels that ONNX Runtime runs on the CPU only.
    use_cuda = cuda and device != "cpu" and path.name != INT8_FILE
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are about graph internals
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        from bertkit.errors import first_line

        raise ModelError(
            f"{path}: ONNX Runtime cannot load the graph: {first_line(exc)}",
            hint="export it again with `bertkit export` (and the ONNX Runtime version you run)",
        ) from exc


def import_onnxruntime() -> Any:
    """The onnxruntime module, or a ModelError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("ONNX Runtime is not installed", hint=_INSTALL_HINT) from None
    return onnxruntime


def session_feed(names: tuple[str, ...], batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's inputs from a padded batch, as int64 (segment ids default to zeros)."""
    feed = {}
    for name in names:
        value = batch.get(name)
        if value is None and name == "token_type_ids":
            value = np.zeros_like(batch["input_ids"])
        if value is None:
            raise ModelError(
                f"the ONNX graph needs input {name!r}, which the tokenizer does not produce",
                hint="export the model again with its own tokenizer",
            )
        feed[name] = np.asarray(value, dtype=np.int64)
    return feed


def quantize_linear_int8(model: Any) -> Any:
    """The torch model with its linear layers quantized to int8, dynamically (CPU only).

    Weights are stored as int8 with a scale per output channel; activations are
    quantized per batch at run time. Per-channel scales cost no speed and lose less
    accuracy than one scale per tensor (torch's default): on SST-2 dev, a MiniLM
    classifier at 79.2% fell 0.7 point with them and 1.4 points without.

    Raises:
        UsageError: the model is not on the CPU.
        ModelError: this torch build has no dynamic quantization.
    """
    import torch

    if next(model.parameters()).device.type != "cpu":
        raise UsageError("--quantize int8 runs on CPU only", hint="use --device cpu with --quantize int8")
    # torch.ao.quantization is deprecated in favour of torchao, but still ships and has
    # the fast fbgemm/x86 kernels for dynamic int8 linear layers; its warnings say so.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        except ImportError:
            raise ModelError(
                f"torch {torch.__version__} has no dynamic quantization (torch.ao.quantization)",
                hint="use the ONNX backend: bertkit export --quantize int8, then predict --backend onnx "
                "--quantize int8",
            ) from None
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def graph_file(folder: Path, quantize: str | None) -> Path:
    path = folder / (INT8_FILE if quantize else MODEL_FILE)
    if not path.is_file():
        what = f"int8 graph ({INT8_FILE})" if quantize else f"graph ({MODEL_FILE})"
        raise ModelError(
            f"{folder}: has no {what}",
            hint="export the model again: bertkit export --model MODEL --quantize int8 --overwrite",
        )
    return path


def run_of(folder: Path) -> RunDirectory | None:
    """The run an export folder sits in (`RUN/export/onnx`), if any."""
    run_path = folder.resolve().parents[1] if len(folder.resolve().parents) > 1 else None
    if run_path is not None and folder.resolve() == (run_path / EXPORT_SUBDIR) and is_run_dir(run_path):
        return RunDirectory(run_path)
    return None


def load_on_backend(
    model: Path | None,
    *,
    backend: str,
    quantize: str | None,
    device: str | None,
    precision: str,
    root: Path,
    load_torch: Callable[..., Any],
    load_onnx: Callable[..., Any],
) -> Any:
    """A task's predictor on the backend asked for; the same interface whichever it is.

    `load_torch(model, root=, device=, precision=)` loads the torch predictor (its
    linear layers quantized to int8 with `quantize`, on the CPU in fp32);
    `load_onnx(folder, quantize=, device=)` loads one for an export folder.

    Raises:
        BertkitError: bad options, nothing to load, or a missing ONNX Runtime.
    """
    check_backend_options(backend, quantize, device, precision)
    if backend == "onnx":
        return load_onnx(find_onnx_dir(model, root), quantize=quantize, device=device)
    if quantize:
        device, precision = "cpu", "fp32"
    predictor = load_torch(model, root=root, device=device, precision=precision)
    if quantize:
        predictor.model = quantize_linear_int8(predictor.model)
    return predictor


def describe_backend(predictor: Any) -> str:
    """How a predictor runs, for messages: `torch on cpu`, `onnx int8 on cpu`, ..."""
    if hasattr(predictor, "input_names"):  # an ONNX Runtime predictor (its session's inputs)
        return f"onnx{' int8' if predictor.quantized else ''} on {predictor.device}"
    modules = getattr(predictor.model, "modules", None)
    quantized = modules is not None and any(".quantized." in type(m).__module__ for m in modules())
    return f"torch{' int8' if quantized else ''} on {predictor.device}"
