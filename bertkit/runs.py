"""Run directories: the artefact every training command produces.

Layout:

    runs/<name>-<timestamp>/
      recipe.yaml        the resolved recipe; `bertkit finetune --recipe` reruns it
      model/             a standard Hugging Face model folder (+ README.md model card)
      README.md          the model card
      metrics.json       final metrics per split
      log.jsonl          training log, one record per logging step / evaluation
      curves.png         loss and metric curves
      environment.json   versions, device, precision, seed, command line
      checkpoints/       Trainer checkpoints, for --resume
      eval/              reports written by `bertkit eval`
      run.json           written last: its presence marks the run complete

`runs/latest` points at the most recent complete run, never at one in progress.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.errors import ModelError, RunError
from bertkit.files import atomic_write_json

MARKER = "run.json"
LOCK = ".lock"  # held by the run writing the directory; removed when it ends
CHECKPOINT_MARKER = "bertkit.json"  # written into each checkpoint after the Trainer's files
LATEST = "latest"


@dataclass(frozen=True)
class RunDirectory:
    """One run's folder and the names of what goes in it."""

    path: Path

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def complete(self) -> bool:
        return (self.path / MARKER).is_file()

    def info(self) -> dict[str, Any]:
        """The contents of run.json (empty for an incomplete run)."""
        try:
            return json.loads((self.path / MARKER).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint, if any.

        A process killed while saving leaves a partial checkpoint folder behind. The
        Trainer writes trainer_state.json last and bertkit then adds bertkit.json,
        so a checkpoint counts only when those files are there.
        """
        found = [p for p in self.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
        found.sort(key=lambda p: int(p.name.split("-")[-1]), reverse=True)
        ours = any((p / CHECKPOINT_MARKER).is_file() for p in found)
        marker = CHECKPOINT_MARKER if ours else "trainer_state.json"
        return next((p for p in found if (p / marker).is_file()), None)

    def lock(self) -> None:
        """Take the directory for this process, or say who holds it.

        Two runs writing one directory interleave their logs and checkpoints and
        overwrite each other's model. A lock left by a run that died on this machine
        is taken over; one from another machine (a shared file system) is not.

        Raises:
            RunError: another live run holds the directory, or the lock cannot be written.
        """
        lock = self.path / LOCK
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        for _ in range(2):
            try:
                with open(lock, "x", encoding="utf-8") as handle:
                    json.dump(mine, handle)
                return
            except FileExistsError:
                holder = _read_lock(lock)
                if _alive(holder):
                    where = f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                    raise RunError(
                        f"{self.path}: another bertkit run is writing it ({where})",
                        hint="wait for it to finish or choose another output.dir; if no run is writing "
                        f"there, delete {lock}",
                    ) from None
                lock.unlink(missing_ok=True)  # its run died without removing it
            except OSError as exc:
                raise RunError(
                    f"{self.path}: cannot write the run directory: {exc.strerror or exc}",
                    hint="choose a writable output.dir (--set output.dir=...)",
                ) from None
        raise RunError(f"{lock}: could not take the run's lock", hint=f"delete {lock} and try again")

    def unlock(self) -> None:
        """Release the directory, if this process holds it."""
        lock = self.path / LOCK
        if _read_lock(lock).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)

    def mark_complete(self, info: dict[str, Any], root: Path) -> None:
        """Write run.json (the completion marker) and point `root/latest` here."""
        atomic_write_json(self.path / MARKER, {"status": "complete", **info})
        point_latest(root, self.path)


def new_run_path(root: Path, name: str) -> Path:
    """`root/<name>-<YYYYmmdd-HHMMSS>`, made unique if a run started the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{safe_name(name)}-{stamp}"
    counter = 2
    while path.exists():
        path = root / f"{safe_name(name)}-{stamp}-{counter}"
        counter += 1
    return path


def prepare_run_dir(path: Path, *, resume: bool, overwrite: bool) -> RunDirectory:
    """Check a run directory may be written, create it, and lock it for this run.

    Raises:
        RunError: another run is writing it; it holds a finished run or other files,
            and neither resume nor overwrite was asked for; or it cannot be created.
    """
    run = RunDirectory(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: exists and is not a folder", hint="choose another output.dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(
            f"{path}: cannot write the run directory: {exc.strerror or exc}",
            hint="choose a writable output.dir (--set output.dir=...)",
        ) from None
    run.lock()
    try:
        occupied = [p for p in path.iterdir() if p.name != LOCK]
        if occupied and not resume:
            if not overwrite:
                what = "a finished run" if run.complete else "files"
                raise RunError(
                    f"{path}: already holds {what}",
                    hint="pass --resume to continue it, --overwrite to replace it, "
                    "or choose another output.dir",
                )
            for item in occupied:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    except BaseException:
        run.unlock()
        raise
    return run


def point_latest(root: Path, target: Path) -> None:
    """Make `root/latest` a relative symlink to `target` (a text file where links fail)."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / LATEST
    try:
        relative = os.path.relpath(target.resolve(), root.resolve())
    except ValueError:  # different drives on Windows
        relative = str(target.resolve())
    tmp = root / f".{LATEST}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(relative, target_is_directory=True)
    except OSError:
        tmp.write_text(relative, encoding="utf-8")
    if link.is_dir() and not link.is_symlink():
        raise RunError(f"{link}: is a folder, not bertkit's latest-run pointer", hint="rename it")
    os.replace(tmp, link)


def latest_run(root: Path) -> RunDirectory:
    """The run `root/latest` points at.

    Raises:
        RunError: there is no latest run, or it is incomplete.
    """
    link = root / LATEST
    if link.is_symlink() or link.is_dir():
        target = link.resolve()
    elif link.is_file():
        target = (root / link.read_text(encoding="utf-8").strip()).resolve()
    else:
        raise RunError(
            f"no runs yet in {root}/",
            hint="train one first (bertkit finetune --recipe quickstart), or pass --model DIR",
        )
    return open_run(target)


def open_run(path: Path) -> RunDirectory:
    """A complete run directory at `path`.

    Raises:
        RunError: missing, or a run that never completed.
    """
    run = RunDirectory(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory", hint="check the path (see `ls runs/`)")
    if not run.complete:
        hint = f"resume it with `bertkit finetune --recipe {path}/recipe.yaml --resume {path}`"
        raise RunError(f"{path}: the run did not complete (no {MARKER})", hint=hint)
    return run


def is_run_dir(path: Path) -> bool:
    """Whether `path` looks like a bertkit run directory (complete or not)."""
    return (path / MARKER).is_file() or ((path / "recipe.yaml").is_file() and (path / "checkpoints").exists())


def safe_name(name: str) -> str:
    """`name` with anything but letters, digits, `-`, `_` and `.` replaced by `-`."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "run"


def eval_report_dir(run: RunDirectory | None, model_name: str, data_name: str, split: str) -> Path:
    """Where `bertkit eval` writes its report: the run's eval/<split-data>, else a stamped ./eval folder."""
    stem = Path(data_name).stem if "/" in data_name or "." in data_name else data_name
    label = safe_name(f"{split}-{stem}" if split not in stem else stem)
    if run is not None:
        return run.eval_dir / label
    return Path("eval") / safe_name(f"{model_name}-{label}-{time.strftime('%Y%m%d-%H%M%S')}")


def _read_lock(lock: Path) -> dict[str, Any]:
    try:
        value = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the lock's run may still be going (assumed so when it cannot be checked)."""
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return bool(holder)  # another machine's run, or an unreadable lock being written now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_model_dir(model: Path | None, root: Path = Path("runs")) -> tuple[Path, RunDirectory | None]:
    """The model folder to use: `model` (a run or model folder, an alias, a Hub id), else the latest run's.

    Raises:
        RunError: no model given and no latest run; or an incomplete run.
        ModelError: a folder that holds no model.
    """
    if model is None:
        run = latest_run(root)
        return run.model_dir, run
    if not model.exists():
        first = Path(model.parts[0]) if model.parts else model
        if model.is_absolute() or len(model.parts) > 2 or first.exists():
            raise ModelError(f"{model}: no such folder", hint="give a run directory or a model folder")
        from bertkit.models import named_model_dir

        model = named_model_dir(str(model))  # an alias (`minilm`) or a Hub id
    if is_run_dir(model):
        run = open_run(model)
        return run.model_dir, run
    if not (model / "config.json").is_file():
        raise ModelError(
            f"{model}: holds no model (no config.json)",
            hint="give a bertkit run directory or a Hugging Face model folder",
        )
    return model, None
