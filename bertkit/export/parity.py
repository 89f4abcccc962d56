"""Check an exported graph against the original model: same logits, same predictions.

An export is declared done only when its graphs pass (see `bertkit.export.onnx`):

- fp32: max |logit difference| <= 1e-3. ONNX Runtime and torch differ by float
  rounding (about 1e-7 on MiniLM, 1e-6 on larger BERTs); a wrong graph differs by
  1e-2 and more (the legacy TorchScript exporter, tracing the padding of its example
  into Transformers 5 attention masks, is off by 1e-2 to 1e-1).
- int8: the same predictions (labels, label sets, top-1 tokens) on >= 99% of the
  sample, or, for a classifier whose sample has labels (the run's validation data),
  at most 1 point of accuracy lost on them. Quantization moves logits by about 1e-2
  by design, so their difference is reported, not gated. 99% agreement alone bounds
  the change in accuracy to 1 point, the budget the benchmarks hold int8 to, but it
  fails healthy models: the predictions that change are near-ties, which are about
  as often wrong as right before quantization (MiniLM fine-tuned on SST-2: 98.05% of
  256 dev sentences agree, and accuracy falls 0.4 point). Where labels are at hand,
  accuracy is what is gated; a broken graph (an overflowing int8 kernel, say) loses
  far more than a point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bertkit.errors import ModelError

if TYPE_CHECKING:
    pass

FP32_MAX_DIFF = 1e-3
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_ACCURACY_DROP = 0.01
HALF_SAMPLE_TEXTS = 256  # GPU prediction in bf16/fp16 is checked on as many texts as an export

# Varied sentences for the parity check when a model has no validation data of its
# own: short and long, questions, negations, numbers, punctuation, accents, and one
# text long enough to be truncated.
BUILTIN_TEXTS = (
    "what a wonderful film",
    "the soup was cold and the waiter rude",
    "I loved every minute of it!",
    "Not bad at all, though the ending dragged.",
    "Terrible. Just terrible.",
    "ok",
    "The service was friendly, the food was tasty, and the prices were fair.",
    "Would I come back? Probably not.",
    "It's the best book I've read this year - by far.",
    "The plot makes no sense and the acting is wooden.",
    "Delivery took 3 weeks; the package arrived damaged.",
    "A quiet, thoughtful story about growing old.",
    "The hotel room was clean but very small.",
    "Five stars!!!",
    "I don't know what to think about this one.",
    "Stocks fell sharply on Monday after the central bank raised interest rates.",
    "The team won the championship in overtime, 3-2.",
    "Scientists discovered a new species of frog in the rainforest.",
    "Café au lait, crème brûlée and a croissant: un petit-déjeuner parfait.",
    "This is NOT what I ordered.",
    "The battery lasts about two days with normal use.",
    "Customer support never answered my emails.",
    "An instant classic.",
    "boring boring boring",
    "The first half is slow, but the second half more than makes up for it.",
    "I can't recommend it enough.",
    "Meh.",
    "The new update broke everything that used to work.",
    "Great value for money, would buy again.",
    "Why would anyone make a movie like this?",
    "the staff were lovely and the view from the terrace was stunning",
    " ".join(["It was a long day, and the meeting went on and on about budgets and plans."] * 40),
)


@dataclass
class Parity:
    """How closely one exported graph matches the original model on the sample.

    Attributes:
        variant: fp32 or int8.
        texts: how many sample texts were compared.
        compared: how many predictions were compared (texts, or tokens for masked-LM).
        max_abs_diff: the largest |logit difference| over every output.
        agreement: share of the sample with the same prediction.
        agreement_of: what `agreement` counts (labels, label sets, values, tokens).
        tolerance: the limits checked: {"max_abs_diff": x} for fp32; for int8
            {"min_agreement": y}, and "max_accuracy_drop" when the sample has labels.
        passed: whether the limit holds (for int8: either limit).
        labelled: how many sample texts had a label (0: none, so no accuracy).
        accuracy: the exported graph's accuracy on those texts.
        reference_accuracy: the original model's accuracy on the same texts.
        quality: what `accuracy` measures (accuracy; F1 for question answering).
    """

    variant: str
    texts: int
    compared: int
    max_abs_diff: float
    agreement: float
    agreement_of: str
    tolerance: dict[str, float]
    passed: bool
    labelled: int = 0
    accuracy: float | None = None
    reference_accuracy: float | None = None
    quality: str = "accuracy"


@dataclass
class Sample:
    """Texts to compare an export with its original on, and where they came from.

    `targets` are the texts' labels encoded as the model's label ids (multi-hot rows
    for multi-label) when the sample came from labelled data of a classifier, else None.
    """

    texts: list[str]
    pairs: list[str] | None
    where: str
    targets: list[Any] | None = None


@dataclass(frozen=True)
class Tolerances:
    """How far an export may stray from its original (see the module's docstring)."""

    max_diff: float = FP32_MAX_DIFF
    min_agreement: float = INT8_MIN_AGREEMENT
    max_accuracy_drop: float = INT8_MAX_ACCURACY_DROP


def judge(
    variant: str,
    texts: int,
    compared: int,
    diff: float,
    agreement: float,
    of: str,
    limits: Tolerances,
    accuracy: tuple[int, float, float] | None = None,
    quality: str = "accuracy",
) -> Parity:
    """Check one graph's numbers against its limits.

    Args:
        accuracy: (labelled texts, the graph's accuracy, the original's accuracy) when
            the sample has labels; int8 then also passes by losing at most
            `limits.max_accuracy_drop` of accuracy.
        quality: what `accuracy` measures, named in messages (a share, like accuracy).
    """
    labelled, ours, theirs = accuracy if accuracy is not None else (0, None, None)
    tolerance: dict[str, float]
    if variant == "fp32":
        tolerance, passed = {"max_abs_diff": limits.max_diff}, diff <= limits.max_diff
    else:
        tolerance, passed = {"min_agreement": limits.min_agreement}, agreement >= limits.min_agreement
        if ours is not None and theirs is not None:
            tolerance["max_accuracy_drop"] = limits.max_accuracy_drop
            # The drop is a multiple of 1/labelled; the epsilon keeps 1 point of 100 a pass.
            passed = passed or theirs - ours <= limits.max_accuracy_drop + 1e-9
    return Parity(
        variant, texts, compared, diff, agreement, of, tolerance, passed, labelled, ours, theirs, quality
    )


def raise_on_failure(checks: list[Parity]) -> None:
    """Raise a ModelError naming the numbers of the first check that failed, if any."""
    for check in checks:
        if check.passed:
            continue
        counted = f"{check.texts} texts" if check.compared == check.texts else f"{check.compared:,} tokens"
        numbers = (
            f"max |logit difference| {check.max_abs_diff:.2e}, {check.agreement_of} agree on "
            f"{check.agreement:.1%} of {counted}"
        )
        if check.variant == "fp32":
            raise ModelError(
                f"the ONNX graph does not match the model: {numbers}; "
                f"allowed at most {check.tolerance['max_abs_diff']:g}",
                hint="this is an exporter problem: report it with `bertkit env --json`, "
                "or accept the difference with --max-diff",
            )
        required = f"required at least {check.tolerance['min_agreement']:.0%}"
        if check.accuracy is not None and check.reference_accuracy is not None:
            numbers += (
                f", and {check.quality} falls from {check.reference_accuracy:.1%} to {check.accuracy:.1%} "
                f"on {check.labelled} labelled texts"
            )
            drop = check.tolerance["max_accuracy_drop"]
            required += f", or a drop in {check.quality} of at most {drop:.1%}"
        raise ModelError(
            f"the int8 graph changes too many predictions: {numbers}; {required}",
            hint="export without --quantize (fp32 keeps the predictions), "
            "or accept it with --min-agreement or --max-accuracy-drop",
        )
