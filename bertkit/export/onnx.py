"""Export a trained model to ONNX, quantize it, and prove it computes what the original does.

The graph comes from torch's own exporter (`torch.onnx.export(..., dynamo=True)`,
which traces with `torch.export` and needs `onnxscript`), with dynamic batch and
sequence axes. The legacy TorchScript exporter is not used: it bakes the example's
padding into the attention mask of Transformers 5 models and gets padded batches
wrong. An export folder is usable on its own:

    model.onnx         the graph, fp32 (fused for ONNX Runtime unless --no-optimize);
                       inputs input_ids, attention_mask, token_type_ids
    model.int8.onnx    with --quantize int8: ONNX Runtime's dynamic int8 quantization
    config.json        the original's: id2label, label2id, problem_type, bertkit settings
    tokenizer files    the original's tokenizer
    export.json        how it was made, and the parity report

Nothing is declared done before a parity check: the export folder is loaded as
`bertkit predict --backend onnx` loads it and run on sample texts next to the
original torch model. The folder is built beside its target and renamed into place
only when every check passes, so a failed export leaves nothing behind.

The tolerances (1e-3 for fp32 logits; for int8, 99% equal predictions or at most a
point of accuracy lost on labelled texts) and why they are what they are:
`bertkit.export.parity`. The int8 graph has per-channel int8 weights and activations
quantized per batch at run time; it runs on the CPU.

By default the fp32 graph is then optimized for ONNX Runtime by onnxscript's
transformer fusions (`onnxscript.rewriter.ort_fusions`): each layer's attention
becomes one `Attention` kernel, and the residual adds, layer norms and GELUs become
`SkipLayerNormalization` and `BiasGelu`. That took MiniLM on a 2-core CPU from 0.94x
to 1.01x the speed of torch (`bench/export.py`), but these are ONNX Runtime's own
operators (domain `com.microsoft`), which other runtimes do not have;
`optimize=False` (`--no-optimize`) keeps standard ONNX operators only. The int8
graph is quantized from the standard graph: ONNX Runtime's quantizer handles all of
it, and a fused graph quantized to int8 ran no faster.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import ModelError, UsageError, first_line
from bertkit.export.parity import (
    FP32_MAX_DIFF,
    INT8_MAX_ACCURACY_DROP,
    INT8_MIN_AGREEMENT,
    Parity,
    Tolerances,
    raise_on_failure,
)
from bertkit.export.runtime import (
    EXPORT_INFO,
    EXPORT_SUBDIR,
    INPUT_ORDER,
    INT8_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
    QUANTIZATIONS,
    is_onnx_export,
)
from bertkit.files import atomic_write_json
from bertkit.runs import find_model_dir

FORMATS = ("onnx",)
OPSET = 18  # ONNX Runtime 1.14 and later run it
SAMPLE_TEXTS = 256  # enough for a 99% agreement to allow a couple of flips
MLM_SAMPLE_TEXTS = 64  # masked-LM logits are (sequence x vocabulary) per text
_EXTERNAL_DATA_BYTES = 1_800_000_000  # a single ONNX file holds at most 2 GB


@dataclass
class ExportResult:
    """What an export wrote and how it checked out."""

    folder: Path
    kind: str
    files: dict[str, str]
    parity: list[Parity]
    sample: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def export_model(
    model: Path | None = None,
    *,
    output: Path | None = None,
    format: str = "onnx",  # noqa: A002 - the option is called --format
    quantize: str | None = None,
    optimize: bool = True,
    data: Path | None = None,
    overwrite: bool = False,
    max_diff: float = FP32_MAX_DIFF,
    min_agreement: float = INT8_MIN_AGREEMENT,
    max_accuracy_drop: float = INT8_MAX_ACCURACY_DROP,
    root: Path = Path("runs"),
    on_step: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a model to ONNX, check it against the original (as its task says), write the folder.

    Args:
        model: a run directory or model folder; default the latest run.
        output: the export folder; default `RUN/export/onnx` for a run.
        format: onnx (the only one so far).
        quantize: int8 to also write a dynamically quantized graph.
        optimize: fuse the fp32 graph's attention, layer norms and GELUs into ONNX
            Runtime's kernels; False keeps standard ONNX operators, for other runtimes.
        data: a file of texts for the parity check (column `text`, or the run's
            text columns); default the run's validation data, else built-in sentences.
        overwrite: replace an existing export folder.
        max_diff: the largest |logit difference| allowed for the fp32 graph.
        min_agreement: the least share of equal predictions allowed for int8.
        max_accuracy_drop: int8 also passes, on a sample with labels, by losing at most
            this share of accuracy (0.01: one point).
        root: where runs live.
        on_step: called with a short message as each step starts.

    Raises:
        UsageError: bad options, or an output folder that is taken.
        ModelError: not an exportable model, exporter failure, or a parity check failed.
        DataError: the `data` file cannot be read.
    """
    from bertkit.tasks import task_of

    step = on_step or (lambda message: None)
    if format not in FORMATS:
        raise UsageError(f"--format {format!r}: expected onnx", hint="use --format onnx")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UsageError(f"--quantize {quantize!r}: expected int8", hint="use --quantize int8")
    if not max_diff > 0 or not 0 <= min_agreement <= 1 or not 0 <= max_accuracy_drop <= 1:
        raise UsageError(
            "--max-diff must be above 0, and --min-agreement and --max-accuracy-drop between 0 and 1",
            hint=f"the defaults are {FP32_MAX_DIFF:g}, {INT8_MIN_AGREEMENT:g} and {INT8_MAX_ACCURACY_DROP:g}",
        )
    folder, run = find_model_dir(model, root)
    if is_onnx_export(folder):
        raise UsageError(f"{folder}: is already an ONNX export", hint="export the run or model it came from")
    task = task_of(folder)
    target = _target(output, folder, run, overwrite)
    _require_export_libraries()
    limits = Tolerances(max_diff, min_agreement, max_accuracy_drop)

    start = time.perf_counter()
    tmp = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir(parents=True)
        result = task.export(folder, run, tmp, quantize, optimize, data, limits, step)
        result.info.update(
            {
                "source": str(folder.resolve()),
                "run": str(run.path.resolve()) if run else None,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        atomic_write_json(tmp / EXPORT_INFO, result.info)
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.folder = target
    result.seconds = time.perf_counter() - start
    return result


def _target(output: Path | None, folder: Path, run: Any, overwrite: bool) -> Path:
    """The export folder, checked free (or replaceable) before any work starts."""
    if output is None:
        if run is None:
            raise UsageError(
                f"{folder}: not a run directory, so there is no default export folder",
                hint=f"give one: bertkit export --model {folder} --output {folder.name}-onnx",
            )
        output = run.path / EXPORT_SUBDIR
    if output.resolve() == folder.resolve() or folder.resolve() in output.resolve().parents:
        raise UsageError(f"{output}: inside the model folder it exports", hint="choose another --output")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output}: exists and is not a folder", hint="choose another --output")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        what = "an export" if is_onnx_export(output) else "files"
        raise UsageError(f"{output}: already holds {what}", hint="pass --overwrite to replace it")
    return output


def _require_export_libraries() -> None:
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ModelError(
            f"exporting to ONNX needs {', '.join(missing)}, which is not installed",
            hint='install the export extra: pip install "bertkit[export]"',
        )


def write_graphs(
    model: Any,
    tokenizer: Any,
    folder: Path,
    tmp: Path,
    quantize: str | None,
    optimize: bool,
    pair: bool,
    step: Callable[[str], None],
) -> dict[str, Any]:
    """Write model.onnx (and model.int8.onnx), config.json and the tokenizer into `tmp`."""
    import torch

    names = tuple(n for n in INPUT_ORDER if n in tokenizer.model_input_names or n == "attention_mask")
    # Two texts of different lengths: torch.export specialises axes whose example size is 1.
    example = tokenizer(
        ["a short example", "and a somewhat longer example sentence for tracing"],
        ["with a pair", "and its longer second text"] if pair else None,
        padding=True,
        return_tensors="np",
    )
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    external = size > _EXTERNAL_DATA_BYTES
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    step(f"exporting the graph with torch.onnx (dynamo), opset {OPSET}")
    export_graph(model, {n: example[n] for n in names}, tmp / MODEL_FILE, positions, external)
    files = {"fp32": MODEL_FILE}
    if quantize:
        step("quantizing to int8 with ONNX Runtime (dynamic)")
        quantize_graph(tmp / MODEL_FILE, tmp / INT8_FILE, external)
        files["int8"] = INT8_FILE
    optimized: dict[str, Any] | None = None
    if optimize:
        step("fusing the fp32 graph for ONNX Runtime (onnxscript)")
        optimized = optimize_graph(tmp / MODEL_FILE, external)
        if "skipped" in optimized:
            step(f"graph left unfused: {optimized['skipped']}")
    shutil.copy2(folder / "config.json", tmp / "config.json")
    tokenizer.save_pretrained(str(tmp))

    import onnx
    import onnxruntime
    import onnxscript
    import transformers

    from bertkit import __version__

    return {
        "format": "onnx",
        "files": files,
        "quantized": quantize,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        "quantizer": (
            "onnxruntime.quantization.quantize_dynamic (int8 weights per channel, 7-bit range)"
            if quantize
            else None
        ),
        "opset": OPSET,
        "optimized": optimized,
        "inputs": list(names),
        "output": OUTPUT_NAME,
        "dynamic_axes": {"0": "batch", "1": "sequence"},
        "max_sequence": positions,
        "external_data": external,
        "versions": {
            "bertkit": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }


def export_graph(
    model: Any, example: dict[str, np.ndarray], path: Path, max_positions: int, external: bool = False
) -> None:
    """Export `model(**inputs).logits` to an ONNX file with dynamic batch and sequence axes.

    Raises:
        ModelError: the exporter fails.
    """
    import torch

    names = tuple(example)
    module = _logits_module(model, names)
    args = tuple(torch.from_numpy(np.asarray(example[n], dtype=np.int64)) for n in names)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=max_positions)
    shapes = {"inputs": tuple({0: batch, 1: sequence} for _ in names)}  # forward(*inputs)
    with _quiet_exporter() as captured:
        try:
            program = torch.onnx.export(
                module,
                args,
                None,
                input_names=list(names),
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                dynamo=True,
                dynamic_shapes=shapes,
                verbose=False,
            )
            program.save(str(path), external_data=external)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds of error
            cause = exc
            while cause.__cause__ is not None:  # the exporter wraps the error that says why
                cause = cause.__cause__
            raise ModelError(
                f"the ONNX exporter failed: {first_line(cause)}",
                hint="run with --debug for the exporter's traceback; "
                f"its log ended: {captured.getvalue().strip()[-200:] or '(empty)'}",
            ) from exc


def optimize_graph(path: Path, external: bool = False) -> dict[str, Any]:
    """Fuse an exported graph's transformer blocks into ONNX Runtime's kernels, in place.

    Returns what was done, for export.json: the ONNX Runtime operators in the fused
    graph and how many of each, or `skipped` with the reason when the fusions failed
    or found nothing to fuse (the standard graph is then kept as it was: correct,
    only slower).
    """
    with _quiet_exporter():
        try:
            import onnx_ir as ir
            from onnxscript.rewriter.ort_fusions import optimize_for_ort

            model = ir.load(str(path))
            if external:  # the weights are rewritten to the same .data file: hold them first
                ir.external_data.load_to_model(model)
            model, _ = optimize_for_ort(model)
        except Exception as exc:  # noqa: BLE001 - the rewriter raises many kinds of error
            return {"skipped": f"onnxscript's fusions failed: {first_line(exc)}"}
        fused_ops = Counter(node.op_type for node in model.graph if node.domain == "com.microsoft")
        if not fused_ops:
            return {"skipped": "onnxscript's fusions found no attention, layer norm or GELU to fuse"}
        fused = path.with_name(f".{path.name}.fused")
        ir.save(model, str(fused), external_data=f"{path.name}.data" if external else None)
        os.replace(fused, path)
    return {"by": "onnxscript.rewriter.ort_fusions", "onnxruntime_operators": dict(sorted(fused_ops.items()))}


def quantize_graph(source: Path, target: Path, external: bool = False) -> None:
    """Write a dynamically int8-quantized copy of an ONNX graph (weights int8, activations per batch).

    Raises:
        ModelError: the quantizer fails.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source))
    # The exporter annotates intermediate shapes (value_info) that the quantizer's own
    # shape inference rejects; they are optional hints, so drop them.
    graph.graph.ClearField("value_info")
    with _quiet_exporter():
        try:
            # Per-channel weight scales halve the logit error of per-tensor ones at the same
            # speed; 7-bit weights (reduce_range) avoid the overflow of the u8 x s8 kernels
            # of CPUs without VNNI, and the file may run on any CPU.
            quantize_dynamic(
                graph,
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                use_external_data_format=external,
            )
        except Exception as exc:  # noqa: BLE001 - the quantizer raises many kinds of error
            raise ModelError(
                f"ONNX Runtime's quantizer failed: {first_line(exc)}",
                hint="export without --quantize, or run with --debug for the traceback",
            ) from exc


def finish(kind: str, info: dict[str, Any], checks: list[Parity], sample: str) -> ExportResult:
    """The result, with the parity report in `info`, once every check has passed."""
    info["kind"] = kind
    info["parity"] = {"sample": sample, **{c.variant: asdict(c) for c in checks}}
    raise_on_failure(checks)
    return ExportResult(Path(), kind, dict(info["files"]), checks, sample, 0.0, info)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder to `target`, replacing an old export only now."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and any(target.iterdir()):
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if target.is_dir():
            target.rmdir()
        os.replace(tmp, target)


def _logits_module(model: Any, names: tuple[str, ...]) -> Any:
    """A module whose forward takes the graph inputs positionally and returns only logits."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    return Logits().eval()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[io.StringIO]:
    """Silence the exporter's and quantizer's progress prints, warnings and log lines.

    They go to stdout and the root logger, where they would mix with `--json` output;
    what was printed is kept for error messages.
    """
    captured = io.StringIO()
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx"), logging.getLogger("onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield captured
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
