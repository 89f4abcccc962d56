"""Pick the device and numeric precision for a run, and say why.

The decision (`decide_placement`) is a pure function of what the hardware offers
(`Hardware`), so every branch is tested on a CPU; `resolve_placement` asks torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bertkit.errors import RecipeError, UsageError

DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Placement:
    """Where and how a run computes.

    Attributes:
        device: cuda, mps or cpu.
        precision: fp32, bf16 or fp16 as resolved from the recipe.
        tf32: TensorFloat-32 matmuls for the operations that run in fp32.
        reason: one line for the user.
    """

    device: str
    precision: str
    tf32: bool
    reason: str


@dataclass(frozen=True)
class Hardware:
    """What a device offers for training.

    Attributes:
        device: cuda, mps or cpu.
        name: the GPU's name, for messages.
        capability: the CUDA compute capability (major, minor); None off CUDA.
        rocm: an AMD GPU (bf16 everywhere, no TF32 setting).
    """

    device: str
    name: str = ""
    capability: tuple[int, int] | None = None
    rocm: bool = False

    @property
    def native_bf16(self) -> bool:
        """bf16 in hardware: Ampere (8.0) and newer, or ROCm. Older GPUs only emulate it, slowly."""
        return self.rocm or (self.capability is not None and self.capability[0] >= 8)

    @property
    def has_tf32(self) -> bool:
        return not self.rocm and self.capability is not None and self.capability[0] >= 8


def detect_device(requested: str | None = None) -> str:
    """cuda, mps or cpu: the requested one (checked), else the best available.

    Raises:
        UsageError: an unknown device, or one this machine (or this torch build) lacks.
    """
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if requested is None:
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if requested not in DEVICES:
        choices = ", ".join(DEVICES)
        raise UsageError(f"--device {requested}: expected one of {choices}", hint="use --device cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise UsageError(
            f"--device cuda: {why} (torch {torch.__version__})",
            hint="drop --device to use what this machine has, or install a CUDA build of torch",
        )
    if requested == "mps" and not has_mps:
        raise UsageError("--device mps: Apple's MPS is not available here", hint="drop --device, or use cpu")
    return requested


def hardware(device: str) -> Hardware:
    """Ask torch what `device` offers (the GPU of this process: LOCAL_RANK under a launcher).

    Reading device properties does not create a CUDA context, so no process touches
    another's GPU before it joins the process group.
    """
    import torch

    if device != "cuda":
        return Hardware(device)
    index = int(os.environ.get("LOCAL_RANK", "0")) % max(torch.cuda.device_count(), 1)
    properties = torch.cuda.get_device_properties(index)
    return Hardware(device, properties.name, (properties.major, properties.minor), bool(torch.version.hip))


def decide_placement(precision: str, hw: Hardware, tf32: bool | str = "auto") -> Placement:
    """Resolve `train.precision` (auto | fp32 | bf16 | fp16) and `train.tf32` for the hardware.

    precision auto: bf16 on GPUs with bf16 in hardware (no loss scaling needed), fp16
    with loss scaling on other CUDA GPUs (T4, V100), fp32 on CPU and MPS.
    tf32 auto: on for bf16 and fp16 runs, where it only speeds up what autocast leaves
    in fp32; off for fp32 runs, which stay IEEE fp32 unless `train.tf32: true`.

    Raises:
        RecipeError: a precision or TF32 the hardware cannot run.
    """
    cuda = hw.device == "cuda"
    gpu = f" ({hw.name})" if hw.name else ""
    if precision == "auto":
        if cuda and hw.native_bf16:
            precision, reason = "bf16", f"auto: bf16 (this GPU{gpu} has it in hardware)"
        elif cuda:
            precision = "fp16"
            reason = f"auto: fp16 with loss scaling (this GPU{gpu} has no bf16 in hardware)"
        else:
            precision, reason = "fp32", f"auto: fp32 on {hw.device}"
    else:
        reason = f"{precision} (set in the recipe) on {hw.device}{gpu}"
    if precision == "fp16" and not cuda:
        raise RecipeError(
            f"train.precision: fp16 needs a CUDA GPU; this run is on {hw.device}",
            hint="use --set train.precision=auto (fp32 on CPU) or bf16",
        )
    if precision == "bf16" and cuda and not hw.native_bf16:
        raise RecipeError(
            f"train.precision: this GPU{gpu} has no bf16 in hardware (only a slow emulation)",
            hint="use --set train.precision=fp16 or auto",
        )
    if tf32 is True and not hw.has_tf32:
        raise RecipeError(
            f"train.tf32: TF32 needs an NVIDIA GPU of the Ampere generation or newer; this run is on "
            f"{hw.device}{gpu}",
            hint="use --set train.tf32=auto",
        )
    use_tf32 = hw.has_tf32 and (tf32 is True or (tf32 == "auto" and precision != "fp32"))
    if use_tf32:
        reason += ", TF32 matmuls for fp32 operations"
    return Placement(hw.device, precision, use_tf32, reason)


def resolve_placement(precision: str, device: str | None = None, tf32: bool | str = "auto") -> Placement:
    """The placement of a run on this machine: `decide_placement` for the detected hardware.

    Raises:
        UsageError: a device this machine lacks, or one process that would see
            several GPUs (the Trainer would fall back to nn.DataParallel).
        RecipeError: a precision or TF32 setting the device cannot run.
    """
    hw = hardware(detect_device(device))
    if hw.device == "cuda":
        refuse_data_parallel()
    return decide_placement(precision, hw, tf32)


def refuse_data_parallel() -> None:
    """Refuse one process that sees several GPUs: the Trainer would wrap it in nn.DataParallel.

    `bertkit finetune` launches one process per GPU itself; this catches the other
    ways in (a one-process launcher, a Python call).

    Raises:
        UsageError: with the commands that run it properly.
    """
    import torch

    from bertkit.training.distributed import world_size

    gpus = torch.cuda.device_count()
    if world_size() == 1 and gpus > 1:
        raise UsageError(
            f"this process sees {gpus} GPUs and runs alone: the Trainer would split each batch "
            "over them with nn.DataParallel, which is slow and not what bertkit tests",
            hint=f"run one process per GPU (--num-processes {gpus}, or torchrun/accelerate launch), "
            "or use one GPU: CUDA_VISIBLE_DEVICES=0",
        )


INFERENCE_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Texts per forward pass when prediction is not told: CPU batches past 64 gain nothing,
# while a GPU stays busy only with larger ones.
DEFAULT_INFERENCE_BATCH = {"cpu": 64, "mps": 64, "cuda": 256}


def inference_precision(requested: str, hw: Hardware) -> str:
    """The dtype prediction runs in: `--precision` (auto | fp32 | bf16 | fp16) for the hardware.

    auto: bf16 on GPUs with bf16 in hardware, fp16 on other CUDA GPUs (both only
    after a parity check against fp32, see `bertkit.export.parity`), fp32 on CPU and MPS,
    where half precision is slower or not supported.

    Raises:
        UsageError: half precision asked for off CUDA, or bf16 on a GPU without it.
    """
    if requested not in INFERENCE_PRECISIONS:
        choices = ", ".join(INFERENCE_PRECISIONS)
        raise UsageError(f"--precision {requested}: expected one of {choices}", hint="use --precision fp32")
    cuda = hw.device == "cuda"
    if requested == "auto":
        return ("bf16" if hw.native_bf16 else "fp16") if cuda else "fp32"
    if requested != "fp32" and not cuda:
        raise UsageError(
            f"--precision {requested}: half-precision prediction runs on CUDA GPUs; this is {hw.device}",
            hint="drop --precision (fp32 here), or use --quantize int8 for speed on a CPU",
        )
    if requested == "bf16" and not hw.native_bf16:
        raise UsageError(
            f"--precision bf16: this GPU ({hw.name}) has no bf16 in hardware", hint="use --precision fp16"
        )
    return requested


def apply_tf32(enabled: bool) -> None:
    """Set TF32 for CUDA matmuls and convolutions, overriding whatever set it before.

    Accelerate turns TF32 on for every fp32 run compiled with torch.compile (with
    torch's legacy flag, which outranks the global setting TrainingArguments makes),
    so an fp32 run would not be IEEE fp32. Called once the Trainer is built.
    """
    import torch

    mode = "tf32" if enabled else "ieee"
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def tf32_in_effect() -> bool:
    """Whether CUDA matmuls run in TF32 now, read without tripping torch's legacy-flag check."""
    import torch

    matmul = torch.backends.cuda.matmul
    mode = getattr(matmul, "fp32_precision", None)
    if mode in ("tf32", "ieee"):
        return mode == "tf32"
    if mode == "none" and getattr(torch.backends, "fp32_precision", "none") in ("tf32", "ieee"):
        return torch.backends.fp32_precision == "tf32"
    try:
        return bool(matmul.allow_tf32)
    except RuntimeError:  # the legacy and the new API were both used: the new one decides
        return False


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    """A batch of arrays as torch tensors on `device`; to CUDA through pinned memory, without waiting."""
    import torch

    if device != "cuda":
        return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    return {k: torch.from_numpy(v).pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
