"""Load a trained question-answering model and answer questions over contexts of any length.

Shared by `bertkit eval`, `bertkit predict` and the export check. Contexts are read
in windows (never cut), windows are batched by length with no autograd, and the
answers of all windows of a question are merged (see answers.py). A model folder
knows how it was trained: bertkit writes its window length, stride, answer limits,
whether questions may go unanswered and the no-answer threshold tuned on validation
data into config.json under `bertkit`, so any copy of the folder answers the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bertkit.errors import ModelError
from bertkit.runs import RunDirectory, find_model_dir
from bertkit.tasks.base import CONFIG_KEY
from bertkit.tasks.qa.answers import Ranked, rank_answers
from bertkit.tasks.qa.data import Questions
from bertkit.tasks.qa.features import Features, make_features

if TYPE_CHECKING:
    from bertkit.tasks.qa.recipe import QaRecipe

OUTPUTS = ("start_logits", "end_logits")
_DEFAULT_MAX_LENGTH = 384


@dataclass
class Reader:
    """A question-answering model ready for inference.

    Attributes:
        model: the transformers model, in eval mode on `device`.
        tokenizer: its (fast) tokenizer.
        max_length, doc_stride: the windows it reads contexts in.
        max_answer_length, n_best: the answer search (answers.py).
        unanswerable: whether it may leave a question unanswered (SQuAD 2.0).
        threshold: how much more "no answer" must score than the best answer to win.
    """

    model: Any
    tokenizer: Any
    max_length: int
    doc_stride: int
    max_answer_length: int
    n_best: int
    unanswerable: bool
    threshold: float
    source: Path
    device: str
    run: RunDirectory | None = None
    recipe: QaRecipe | None = None
    precision: str = "fp32"

    def logits(
        self, features: Features, batch_size: int = 64, on_batch: Callable[[int], None] | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits of every window (one array each, of the window's length)."""
        starts: list[np.ndarray] = [np.empty(0)] * len(features)
        ends: list[np.ndarray] = [np.empty(0)] * len(features)
        order = sorted(range(len(features)), key=lambda i: len(features.inputs[i]["input_ids"]))
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            batch = self.tokenizer.pad([features.inputs[i] for i in index], return_tensors="np")
            start, end = self.forward(dict(batch))
            for row, i in enumerate(index):
                length = len(features.inputs[i]["input_ids"])
                starts[i], ends[i] = start[row, :length], end[row, :length]
            if on_batch is not None:
                on_batch(len(index))
        return starts, ends

    def rank(self, questions: Questions, batch_size: int = 64) -> tuple[list[Ranked], Features]:
        """Every question's ranked answers, and the windows they were read in."""
        features = make_features(self.tokenizer, questions, self.max_length, self.doc_stride)
        starts, ends = self.logits(features, batch_size)
        ranked = rank_answers(
            features,
            starts,
            ends,
            questions.contexts,
            len(questions),
            n_best=self.n_best,
            max_answer_length=self.max_answer_length,
            unanswerable=self.unanswerable,
        )
        return ranked, features

    def answers(self, questions: Questions, batch_size: int = 64) -> list[str]:
        """Each question's answer text ("" when the model leaves it unanswered)."""
        ranked, _ = self.rank(questions, batch_size)
        return [r.answer(self.unanswerable, self.threshold) for r in ranked]

    def forward(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of one padded batch (float32); the step a backend changes."""
        import torch

        from bertkit.devices import to_device

        with torch.inference_mode():
            out = self.model(**to_device(batch, self.device))
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()


def load_reader(
    model: Path | None, *, root: Path = Path("runs"), device: str | None = None, precision: str = "auto"
) -> Reader:
    """Load a question-answering model from a run directory, a model folder, or the latest run.

    Raises:
        BertkitError: nothing to load, not a question-answering model, unsafe or broken weights,
            or a half precision (question answering predicts in fp32).
    """
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    from bertkit.errors import UsageError

    if precision not in ("auto", "fp32"):
        raise UsageError(
            f"--precision {precision}: question-answering models predict in fp32", hint="drop it"
        )

    from bertkit.devices import detect_device
    from bertkit.models import ModelRef, load_model, load_tokenizer
    from bertkit.tasks.qa.recipe import read_run_recipe

    folder, run = find_model_dir(model, root)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForQuestionAnswering") for a in architectures):
        raise ModelError(
            f"{folder}: a {architectures[0]} model, not a question-answering model",
            hint="fine-tune one with a `task: qa` recipe first",
        )
    ref = ModelRef(str(folder), str(model or folder), True, run.path if run else None)
    network, _ = load_model(AutoModelForQuestionAnswering, ref)
    tokenizer = load_tokenizer(str(folder))
    device = detect_device(device)
    network.to(device).eval()
    recipe = read_run_recipe(run.recipe_file) if run is not None and run.recipe_file.is_file() else None
    return Reader(
        network,
        tokenizer,
        source=folder,
        device=device,
        run=run,
        recipe=recipe,
        **settings(config, tokenizer),
    )


def settings(config: Any, tokenizer: Any) -> dict[str, Any]:
    """How a model reads contexts and picks answers, read back from its config."""
    saved = getattr(config, CONFIG_KEY, None) or {}
    limit = min(tokenizer.model_max_length or _DEFAULT_MAX_LENGTH, _DEFAULT_MAX_LENGTH)
    max_length = int(saved.get("max_length", limit))
    return {
        "max_length": max_length,
        "doc_stride": int(saved.get("doc_stride", min(128, max_length // 4))),
        "max_answer_length": int(saved.get("max_answer_length", 30)),
        "n_best": int(saved.get("n_best", 20)),
        "unanswerable": bool(saved.get("unanswerable", False)),
        "threshold": float(saved.get("null_threshold", 0.0)),
    }
