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
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import ModelError, first_line
from bertkit.export.parity import (
    Parity,
    raise_on_failure,
)
from bertkit.export.runtime import (
    INPUT_ORDER,
    INT8_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
)

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
    example: str = '"some text"'  # `bertkit predict` arguments for the exported model, for the next-step hint


def write_graphs(
    model: Any,
    tokenizer: Any,
    folder: Path,
    tmp: Path,
    quantize: str | None,
    optimize: bool,
    pair: bool,
    step: Callable[[str], None],
    outputs: tuple[str, ...] = (OUTPUT_NAME,),
) -> dict[str, Any]:
    """Write model.onnx (and model.int8.onnx), config.json and the tokenizer into `tmp`.

    `outputs` names the model outputs the graph returns, in order (`logits`, or
    `start_logits` and `end_logits` for question answering).
    """

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
    export_graph(model, {n: example[n] for n in names}, tmp / MODEL_FILE, positions, external, outputs)
    files = {"fp32": MODEL_FILE}
    optimized: dict[str, Any] | None = None
    if optimize:
        step("fusing the fp32 graph for ONNX Runtime (onnxscript)")
        optimized = optimize_graph(tmp / MODEL_FILE, external)
        if "skipped" in optimized:
            step(f"graph left unfused: {optimized['skipped']}")
    if quantize:
        # From the fused graph: its attention keeps the products of two activations
        # (query x key, weights x value) in fp32, where the unfused graph's MatMuls would
        # quantize them too. MiniLM's vectors: worst cosine 0.972 against 0.961, same speed.
        step("quantizing to int8 with ONNX Runtime (dynamic)")
        quantize_graph(tmp / MODEL_FILE, tmp / INT8_FILE, external)
        files["int8"] = INT8_FILE
    shutil.copy2(folder / "config.json", tmp / "config.json")
    tokenizer.save_pretrained(str(tmp))

    return _export_info(files, quantize, optimized, names, positions, external, outputs)


def _export_info(
    files: dict[str, str],
    quantize: str | None,
    optimized: dict[str, Any] | None,
    names: tuple[str, ...],
    positions: int,
    external: bool,
    outputs: tuple[str, ...],
) -> dict[str, Any]:
    """export.json's record of how the graphs were made, with every library's version."""
    import onnx
    import onnxruntime
    import onnxscript
    import torch
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
        "output": outputs[0] if len(outputs) == 1 else list(outputs),
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
    model: Any,
    example: dict[str, np.ndarray],
    path: Path,
    max_positions: int,
    external: bool = False,
    outputs: tuple[str, ...] = (OUTPUT_NAME,),
) -> None:
    """Export `model(**inputs)`'s `outputs` to an ONNX file with dynamic batch and sequence axes.

    Raises:
        ModelError: the exporter fails.
    """
    import torch

    names = tuple(example)
    module = _outputs_module(model, names, outputs)
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
                output_names=list(outputs),
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
                # The fused graph's ONNX Runtime operators have no types the quantizer's shape
                # inference knows; their weights are float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
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


def _outputs_module(model: Any, names: tuple[str, ...], outputs: tuple[str, ...]) -> Any:
    """A module whose forward takes the graph inputs positionally and returns only `outputs`."""
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> Any:
            result = self.model(**dict(zip(names, inputs, strict=True)))
            found = tuple(getattr(result, name) for name in outputs)
            return found[0] if len(found) == 1 else found

    return Outputs().eval()


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
