"""Safe by default: no code from a model repository runs, and no pickle weights load, unless asked."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from bertkit.errors import ModelError


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_model_dir):
    """Copies of the tiny model: remote code in its config, pickle-only weights, a booby-trapped pickle."""
    import torch
    from transformers import BertForMaskedLM

    root = tmp_path_factory.mktemp("safety")
    markers = root / "markers"
    markers.mkdir()

    remote = root / "remote-code"
    shutil.copytree(tiny_model_dir, remote)
    (remote / "custom.py").write_text(
        f"open({str(markers / 'remote-code-ran')!r}, 'w').close()\n"
        "from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast\n"
        "class CustomConfig(BertConfig):\n    model_type = 'bert'\n"
        "class CustomModel(BertForMaskedLM):\n    config_class = CustomConfig\n"
        "class CustomTokenizer(BertTokenizerFast):\n    pass\n",
        encoding="utf-8",
    )
    _edit_json(remote / "config.json", auto_map={"AutoConfig": "custom.CustomConfig",
                                                 "AutoModelForMaskedLM": "custom.CustomModel"})  # fmt: skip
    _edit_json(remote / "tokenizer_config.json", auto_map={"AutoTokenizer": [None, "custom.CustomTokenizer"]})

    model = BertForMaskedLM.from_pretrained(str(tiny_model_dir))
    pickled = root / "pickle-only"
    shutil.copytree(tiny_model_dir, pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")

    trap = _Trap(str(markers / "pickle-ran"))
    trapped_only = root / "trapped-pickle-only"
    shutil.copytree(tiny_model_dir, trapped_only, ignore=shutil.ignore_patterns("*.safetensors"))
    (trapped_only / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": trap}))
    both = root / "safetensors-and-trapped-pickle"
    shutil.copytree(tiny_model_dir, both)
    (both / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": trap}))
    return type("Folders", (), {"remote": remote, "pickled": pickled, "trapped_only": trapped_only,
                                "both": both, "markers": markers, "state": model.state_dict()})  # fmt: skip


class _Trap:
    """Unpickling this creates a file: the stand-in for a pickle that runs code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _edit_json(path: Path, **updates) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(updates)
    path.write_text(json.dumps(data), encoding="utf-8")


def _load(folder: Path, **kwargs):
    from transformers import AutoModelForMaskedLM

    from bertkit.models import load_model, resolve_model

    return load_model(AutoModelForMaskedLM, resolve_model(str(folder)), **kwargs)[0]


def _recipe(folder: Path, model: dict, corpus: Path) -> Path:
    path = folder / "recipe.yaml"
    recipe = {
        "task": "mlm",
        "model": model,
        "data": {"train": str(corpus), "max_length": 32},
        "train": {"max_steps": 1, "batch_size": 8},
        "output": {"root": str(folder / "runs")},
    }
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- remote code


def test_trust_remote_code_is_off_by_default():
    from bertkit.recipe.base import ModelSection

    assert ModelSection(name="x").trust_remote_code is False
    assert ModelSection(name="x").allow_pickle is False


def test_code_shipped_with_a_model_never_runs_by_default(folders):
    from bertkit.models import load_tokenizer

    (folders.markers / "remote-code-ran").unlink(missing_ok=True)
    tokenizer = load_tokenizer(str(folders.remote))
    model = _load(folders.remote)
    assert type(model).__name__ == "BertForMaskedLM"  # transformers' own class, not the folder's
    assert type(tokenizer).__module__.startswith("transformers.")
    assert not (folders.markers / "remote-code-ran").exists()


def test_trust_remote_code_warns_naming_the_repository(run_cli, tmp_path, folders, tiny_corpus_file):
    recipe = _recipe(tmp_path, {"name": str(folders.remote), "trust_remote_code": True}, tiny_corpus_file)
    result = run_cli("check", "--recipe", recipe)
    assert result.exit_code == 0, result.output
    expected = f"model.trust_remote_code is on: code from {folders.remote} will run on this machine"
    assert f"warning: {expected}" in result.stderr  # as it loads
    assert f"warning [trust_remote_code] {expected}" in result.stdout  # and in the report
    (folders.markers / "remote-code-ran").unlink(missing_ok=True)  # it did run: it was allowed to


def test_trust_remote_code_on_does_run_the_code(folders, capsys):
    # Proves the fixture would catch code running: with the switch on, it does run.
    model = _load(folders.remote, trust_remote_code=True)
    assert type(model).__name__ == "CustomModel"  # the folder's own class (its module ran on import)
    assert f"code from {folders.remote} will run" in capsys.readouterr().err


# --------------------------------------------------------------------------- pickle weights


def test_pickle_only_weights_are_refused_with_the_reason(folders):
    with pytest.raises(ModelError) as caught:
        _load(folders.pickled, allow_pickle=False)  # as training loads it, from a recipe
    assert "weights are only in pickle format (pytorch_model.bin)" in str(caught.value)
    assert "unpickling can run arbitrary code" in str(caught.value)
    assert "model.allow_pickle=true" in caught.value.hint


def test_without_a_recipe_the_pickle_hint_says_how_to_convert(folders):
    """eval, predict and export take no recipe: the hint must not point at a recipe key."""
    with pytest.raises(ModelError) as caught:
        _load(folders.pickled)
    assert "allow_pickle" not in caught.value.hint
    assert "safe_serialization=True" in caught.value.hint


def test_pickle_only_weights_load_when_allowed(folders):
    import torch

    model = _load(folders.pickled, allow_pickle=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, folders.state[name]), name


def test_commands_refuse_pickle_weights_without_allow_pickle(run_cli, tmp_path, folders, tiny_corpus_file):
    recipe = _recipe(tmp_path, {"name": str(folders.pickled)}, tiny_corpus_file)
    for command in ("check", "pretrain"):
        result = run_cli(command, "--recipe", recipe)
        assert result.exit_code == 1, result.output
        assert f"{folders.pickled}: weights are only in pickle format" in result.output
        assert "Traceback" not in result.output
    runs = tmp_path / "runs"
    assert not runs.exists() or list(runs.iterdir()) == [], list(runs.rglob("*"))

    allowed = run_cli("check", "--recipe", recipe, "--set", "model.allow_pickle=true")
    assert allowed.exit_code == 0, allowed.output

    fill = run_cli("predict", "--model", folders.pickled, "a [MASK] film")
    assert fill.exit_code == 1
    assert "weights are only in pickle format" in fill.stderr


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_booby_trapped_pickle_never_runs(folders):
    marker = folders.markers / "pickle-ran"
    model = _load(folders.both)  # safetensors beside it: the pickle is not even opened
    assert type(model).__name__ == "BertForMaskedLM"
    with pytest.raises(ModelError, match="pickle format"):
        _load(folders.trapped_only)
    # Even opted in, weights are unpickled without running code (torch's weights-only
    # loader), and the refusal is a clear error rather than a traceback.
    with pytest.raises(ModelError, match="cannot load the model"):
        _load(folders.trapped_only, allow_pickle=True)
    assert not marker.exists()
