"""Pick the device and numeric precision for a run, and say why."""

from __future__ import annotations

from dataclasses import dataclass

from bertkit.errors import RecipeError


@dataclass(frozen=True)
class Placement:
    """Where and how a run computes.

    Attributes:
        device: cuda, mps or cpu.
        precision: fp32, bf16 or fp16 as resolved from the recipe.
        tf32: TensorFloat-32 matmuls (Ampere and newer GPUs).
        reason: one line for the user.
    """

    device: str
    precision: str
    tf32: bool
    reason: str


def detect_device(requested: str | None = None) -> str:
    """cuda, mps or cpu: the requested one, else the best available."""
    import torch

    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_placement(precision: str, device: str | None = None) -> Placement:
    """Resolve `train.precision` (auto | fp32 | bf16 | fp16) for the device in use.

    auto: bf16 on GPUs that support it (no loss scaling needed), else fp16 with
    loss scaling on CUDA, fp32 on CPU and MPS.

    Raises:
        RecipeError: a precision the device cannot run (fp16 without CUDA, bf16 on a
            GPU without bf16).
    """
    import torch

    device = detect_device(device)
    cuda = device == "cuda"
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    tf32 = cuda and torch.cuda.get_device_capability()[0] >= 8
    if precision == "auto":
        if bf16_ok:
            return Placement(device, "bf16", tf32, "auto: bf16 (this GPU supports it)")
        if cuda:
            return Placement(device, "fp16", tf32, "auto: fp16 with loss scaling (no bf16 on this GPU)")
        return Placement(device, "fp32", False, f"auto: fp32 on {device}")
    if precision == "fp16" and not cuda:
        raise RecipeError(
            f"train.precision: fp16 needs a CUDA GPU; this run is on {device}",
            hint="use --set train.precision=auto (fp32 on CPU) or bf16",
        )
    if precision == "bf16" and cuda and not bf16_ok:
        raise RecipeError(
            "train.precision: this GPU has no bf16 support",
            hint="use --set train.precision=fp16 or auto",
        )
    return Placement(device, precision, tf32, f"{precision} (set in the recipe) on {device}")
