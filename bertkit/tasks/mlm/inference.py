"""Use and measure masked language models: fill-mask prediction and MLM evaluation.

Evaluation masks the held-out text once with a fixed seed, so the perplexity and
masked-token accuracy of a run, of its starting checkpoint (`--baseline`) and of
any other run on the same data are measured on the very same masked positions.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.errors import DataError, ModelError
from bertkit.files import atomic_write_json, atomic_write_text
from bertkit.recipe.base import DataSource
from bertkit.runs import RunDirectory, find_model_dir
from bertkit.tasks.mlm.recipe import MlmData as DataSection
from bertkit.tasks.mlm.recipe import MlmSection


@dataclass
class MaskedLM:
    """A masked language model ready for inference."""

    model: Any
    tokenizer: Any
    source: Path
    device: str
    run: RunDirectory | None


def load_masked_lm(model: Path | None, *, root: Path = Path("runs"), device: str | None = None) -> MaskedLM:
    """Load a masked-LM model from a run directory, a model folder, or the latest run.

    Raises:
        BertkitError: nothing to load, or weights that cannot be loaded safely.
    """
    from transformers import AutoModelForMaskedLM

    from bertkit.devices import detect_device
    from bertkit.models import ModelRef, load_model, load_tokenizer

    folder, run = find_model_dir(model, root)
    ref = ModelRef(str(folder), str(model or folder), True, run.path if run else None)
    loaded, _ = load_model(AutoModelForMaskedLM, ref)
    device = detect_device(device)
    loaded.to(device).eval()
    return MaskedLM(loaded, load_tokenizer(str(folder)), folder, device, run)


def fill_mask(mlm: MaskedLM, texts: list[str], top_k: int = 5) -> list[list[list[dict[str, Any]]]]:
    """The top_k tokens for every mask of every text: result[text][mask] = candidates.

    Raises:
        DataError: a text without the tokenizer's mask token.
    """
    import torch

    mask = mlm.tokenizer.mask_token
    for text in texts:
        if mask not in text:
            raise DataError(
                f"no {mask} in {text!r}: fill-mask predicts the token a {mask} stands for",
                hint=f'put {mask} where a word is missing, e.g. "Paris is the {mask} of France."',
            )
    batch = mlm.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(mlm.device)
    with torch.inference_mode():
        logits = mlm.model(**batch).logits
    results = []
    for row in range(len(texts)):
        positions = (batch["input_ids"][row] == mlm.tokenizer.mask_token_id).nonzero().flatten().tolist()
        per_mask = []
        for position in positions:
            probs = logits[row, position].float().softmax(dim=-1)
            scores, ids = probs.topk(top_k)
            per_mask.append(
                [
                    {"token": mlm.tokenizer.convert_ids_to_tokens(int(i)), "score": round(float(s), 6)}
                    for s, i in zip(scores, ids, strict=True)
                ]
            )
        results.append(per_mask)
    return results


@dataclass
class MlmEvaluation:
    """Masked-LM scores of a model (and a baseline) on the same masked text."""

    metrics: dict[str, float]
    baseline: dict[str, float] | None
    data: str
    sequences: int
    report_dir: Path


def evaluate_masked_lm(
    model: Path | None = None,
    *,
    data: Path | None = None,
    baseline: str | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    output: Path | None = None,
    root: Path = Path("runs"),
    device: str | None = None,
) -> MlmEvaluation:
    """Loss, perplexity and masked-token accuracy on held-out text, with a fixed mask.

    Args:
        model: run directory or model folder; default the latest run.
        data: a text file (or csv/jsonl with the recipe's text column); default the
            run recipe's validation data.
        baseline: another model (id, folder, run or alias) scored on the same masked
            text, e.g. the checkpoint the run started from.
        limit: only the first N documents.
        batch_size: sequences per forward pass.
        output: report folder; default `<run>/eval/<data>`.
        root: where runs live.
        device: cpu, cuda or mps.
    """
    from bertkit.files import check_writable_folder
    from bertkit.tasks.mlm.corpus import build_sequences, load_corpus
    from bertkit.tasks.mlm.masking import MlmCollator, premask
    from bertkit.tasks.mlm.recipe import read_run_recipe
    from bertkit.training.runner import quiet_libraries

    quiet_libraries()
    if output is not None:
        check_writable_folder(output, "--output")
    mlm = load_masked_lm(model, root=root, device=device)
    recipe = read_run_recipe(mlm.run.recipe_file) if mlm.run and mlm.run.recipe_file.is_file() else None
    settings = recipe.mlm if recipe else MlmSection()
    columns = recipe.data if recipe else DataSection()
    source = _source(recipe.data if recipe else None, data)
    corpus = load_corpus(source, columns, settings)
    if limit:
        corpus = corpus.select(range(min(limit, len(corpus))))
    plain = settings.model_copy(update={"objective": "mlm"})
    sequences, _ = build_sequences(corpus, mlm.tokenizer, plain, columns.max_length, seed=0)
    # A run trained with document attention is scored as it trained: document rows.
    documents = settings.attention == "document" and settings.sequences == "packing"
    collator = MlmCollator(mlm.tokenizer, settings.probability, settings.whole_word, rows=documents)
    masked = premask(sequences, collator)

    report_dir = output or _report_dir(mlm, source)
    check_writable_folder(report_dir, "--output")  # before the model runs over the data
    scores = _score(mlm.model, mlm.tokenizer, masked, collator, batch_size, mlm.device)
    base_scores = None
    if baseline is not None:
        base_scores = _score_baseline(baseline, mlm, masked, collator, batch_size)
    label = f"{source.describe()}"
    _write_report(report_dir, scores, base_scores, label, len(masked), baseline)
    return MlmEvaluation(scores, base_scores, label, len(masked), report_dir)


def _source(recipe_data: DataSection | None, data: Path | None) -> DataSource:
    if data is not None:
        return DataSource(path=str(data))
    if recipe_data is not None and recipe_data.validation is not None:
        return recipe_data.validation
    if recipe_data is not None and recipe_data.validation_split:
        raise DataError(
            "the run's held-out text was carved from its training corpus (data.validation_split); "
            "its scores are in the run's metrics.json",
            hint="evaluate on other text with --data FILE",
        )
    raise DataError(
        "no held-out text to evaluate on: the run's recipe names no validation data",
        hint="give a text file with --data FILE",
    )


def _score(
    model: Any, tokenizer: Any, masked: Any, collator: Any, batch_size: int, device: str
) -> dict[str, float]:
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from bertkit.tasks.mlm.train import masked_lm_metrics, predicted_tokens, with_perplexity

    if collator.rows:
        from bertkit.training.packing import packing_supported, use_packed_attention

        why_not = packing_supported(model)
        if why_not:
            raise ModelError(
                f"{type(model).__name__}: cannot be scored with document attention ({why_not})",
                hint="compare models of the same architecture",
            )
        use_packed_attention(model)
    with tempfile.TemporaryDirectory(prefix="bertkit-eval-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            disable_tqdm=True,
            use_cpu=device == "cpu",
            remove_unused_columns=False,
        )
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=collator,
            processing_class=tokenizer,
            compute_metrics=masked_lm_metrics,
            preprocess_logits_for_metrics=predicted_tokens,
        )
        trainer.remove_callback(PrinterCallback)
        result = trainer.evaluate(masked, metric_key_prefix="eval")
    scores = {k.removeprefix("eval_"): float(v) for k, v in result.items() if isinstance(v, int | float)}
    keep = ("loss", "masked_accuracy")
    return with_perplexity({k: v for k, v in scores.items() if k in keep})


def _score_baseline(
    name: str, mlm: MaskedLM, masked: Any, collator: Any, batch_size: int
) -> dict[str, float]:
    from transformers import AutoModelForMaskedLM

    from bertkit.models import load_model, load_tokenizer, resolve_model

    ref = resolve_model(name)
    tokenizer = load_tokenizer(name)
    if tokenizer.get_vocab() != mlm.tokenizer.get_vocab():
        raise ModelError(
            f"{name}: its vocabulary differs from the evaluated model's; scores would not compare",
            hint="compare models that share a tokenizer (e.g. a run and the checkpoint it started from)",
        )
    model, _ = load_model(AutoModelForMaskedLM, ref)
    model.to(mlm.device).eval()
    return _score(model, tokenizer, masked, collator, batch_size, mlm.device)


def _report_dir(mlm: MaskedLM, source: DataSource) -> Path:
    from bertkit.runs import safe_name

    name = safe_name(Path(str(source.path)).stem if source.path else source.describe())
    if mlm.run is not None:
        return mlm.run.eval_dir / f"mlm-{name}"
    return Path("eval") / safe_name(f"{mlm.source.name}-mlm-{name}")


def _write_report(
    folder: Path,
    scores: dict[str, float],
    baseline: dict[str, float] | None,
    data: str,
    sequences: int,
    baseline_name: str | None,
) -> None:
    lines = [
        "# Masked-LM evaluation",
        "",
        f"Data: `{data}`, {sequences:,} sequences, masked once with a fixed seed.",
        "",
        "| metric | model |" + (f" baseline (`{baseline_name}`) |" if baseline else ""),
        "|---|---:|" + ("---:|" if baseline else ""),
    ]
    for name, value in scores.items():
        row = f"| {name} | {value:.4f} |"
        if baseline and name in baseline:
            row += f" {baseline[name]:.4f} |"
        lines.append(row)
    atomic_write_text(folder / "report.md", "\n".join(lines) + "\n")
    atomic_write_json(
        folder / "metrics.json",
        {
            "data": data,
            "sequences": sequences,
            "metrics": scores,
            "baseline": baseline,
            "baseline_model": baseline_name,
        },
    )
