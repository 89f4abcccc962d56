"""What a run ran on: versions, devices and settings, for `bertkit env` and run directories."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bertkit import __version__

PACKAGES = ("torch", "transformers", "datasets", "accelerate", "evaluate", "tokenizers")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUTHY = ("1", "true", "yes", "on")


def package_versions() -> dict[str, str | None]:
    """Installed versions of bertkit's main dependencies (None when missing), without imports."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hub_offline() -> bool:
    """Whether the Hugging Face Hub is switched off by environment variables."""
    return any(os.environ.get(var, "").lower() in _TRUTHY for var in _OFFLINE_VARS)


def accelerate_config_file() -> Path | None:
    """The Accelerate config file `accelerate launch` would use by default, if present.

    Mirrors Accelerate's own lookup (HF_HOME, else XDG_CACHE_HOME/huggingface) without
    importing it.
    """
    home = os.environ.get(
        "HF_HOME",
        os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache")), "huggingface"),
    )
    path = Path(home).expanduser() / "accelerate" / "default_config.yaml"
    return path if path.is_file() else None


def device_info() -> dict[str, Any]:
    """Devices torch can see. Imports torch (about a second); call only when needed."""
    try:
        import torch
    except ImportError:
        return {"device": "unknown (torch is not installed)", "gpus": [], "bf16": False}
    info: dict[str, Any] = {"threads": torch.get_num_threads(), "gpus": []}
    if torch.cuda.is_available():
        info["device"] = "cuda"
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["bf16"] = bool(torch.cuda.is_bf16_supported())
        info["cuda"] = torch.version.cuda
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["device"] = "mps"
        info["bf16"] = False
    else:
        info["device"] = "cpu"
        info["bf16"] = False  # CPU bf16 exists but is slower than fp32 on most CPUs
    return info


def distributed_info() -> dict[str, Any]:
    """Launcher variables set by `accelerate launch` or `torchrun`, when present."""
    keys = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    return {k.lower(): os.environ[k] for k in keys if k in os.environ}


def environment_report(with_devices: bool = True) -> dict[str, Any]:
    """Everything `bertkit env` shows and every run directory records."""
    config = accelerate_config_file()
    report: dict[str, Any] = {
        "bertkit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": package_versions(),
        "cpu_count": os.cpu_count(),
        "hub_offline": hub_offline(),
        "hf_home": os.environ.get("HF_HOME"),
        "accelerate_config": str(config) if config else None,
        "distributed": distributed_info(),
    }
    if with_devices:
        report["devices"] = device_info()
    return report
