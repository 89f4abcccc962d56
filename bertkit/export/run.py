"""`bertkit export`: a model as ONNX (optionally int8), checked against it before it is declared done.

The model's task writes and checks the graphs (bertkit/tasks/<task>/export.py, with
the pieces in bertkit.export.onnx); here the export folder is chosen, built beside
its target, and renamed into place only when every check passes, so a failed export
leaves nothing behind. The limits the checks use are explained in bertkit.export.parity.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bertkit.errors import ModelError, UsageError
from bertkit.export.onnx import FORMATS, ExportResult
from bertkit.export.parity import FP32_MAX_DIFF, INT8_MAX_ACCURACY_DROP, INT8_MIN_AGREEMENT, Tolerances
from bertkit.export.runtime import EXPORT_INFO, EXPORT_SUBDIR, QUANTIZATIONS, is_onnx_export
from bertkit.files import atomic_write_json
from bertkit.runs import find_model_dir


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
        result.example = task.predict_arguments()
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
