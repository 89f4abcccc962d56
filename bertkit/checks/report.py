"""What a data check found: findings, per-split statistics, and the report that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bertkit.console import plural
from bertkit.errors import BertkitError

if TYPE_CHECKING:
    import numpy as np

# Token statistics (and duplicate checks of corpora) read at most this many rows per split.
SAMPLE_ROWS = 100_000
# Warn when the largest class has this many times the examples of the smallest.
IMBALANCE_RATIO = 10.0
# Warn when more than this share of examples is cut at data.max_length.
TRUNCATION_SHARE = 0.05
LISTED = 5  # malformed rows reported one by one before "and N more"
TOKEN_BATCH = 1000

Level = Literal["error", "warning"]
__all__ = ["CheckReport", "Finding", "SplitStats", "TokenStats", "iter_texts", "plural", "short"]


@dataclass
class Finding:
    """One problem: its level, a stable code, a message naming the file/line/key, a hint."""

    level: Level
    code: str
    message: str
    hint: str | None = None
    split: str | None = None
    exception: BertkitError | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "code": self.code,
            "split": self.split,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class TokenStats:
    """Token lengths (special tokens included) of the first `counted` examples of a split."""

    counted: int
    p50: int
    p90: int
    p99: int
    max: int
    mean: float
    truncated: int

    @property
    def truncated_share(self) -> float:
        return self.truncated / max(self.counted, 1)

    @classmethod
    def of(cls, lengths: np.ndarray, truncated: int) -> TokenStats:
        import numpy as np

        if len(lengths) == 0:
            return cls(0, 0, 0, 0, 0, 0.0, 0)
        p50, p90, p99 = (int(v) for v in np.percentile(lengths, [50, 90, 99], method="higher"))
        return cls(
            len(lengths), p50, p90, p99, int(lengths.max()), round(float(lengths.mean()), 1), truncated
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "counted": self.counted,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "max": self.max,
            "mean": self.mean,
            "truncated": self.truncated,
            "truncated_share": round(self.truncated_share, 4),
        }


@dataclass
class SplitStats:
    """What one split holds. For a corpus, rows are documents.

    Attributes:
        rows: rows read from the source.
        used: rows training would use (after a limit or a validation carve-out).
        empty_texts: rows whose text is empty or whitespace.
        duplicates: rows whose text repeats an earlier row of the split.
        in_train: rows whose text also appears in train (validation/test only: leakage).
        labels: rows per label (single/multi-label); label_range for regression.
        tokens: token-length summary (sequence lengths for a corpus).
        sequences: for a corpus, the tokens and sequences it yields.
        windowed: rows longer than data.max_length, read as overlapping windows (NER).
    """

    split: str
    source: str
    rows: int
    used: int
    empty_texts: int | None = None
    duplicates: int | None = None
    in_train: int | None = None
    labels: dict[str, int] | None = None
    label_range: dict[str, float] | None = None
    tokens: TokenStats | None = None
    sequences: dict[str, Any] | None = None
    windowed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "tokens"}
        if self.tokens is not None:
            out["tokens"] = self.tokens.to_dict()
        return out


@dataclass
class CheckReport:
    """Everything `check_recipe` found: per-split statistics, findings and notes."""

    task: str
    recipe: str
    max_length: int
    tokenizer: str | None
    splits: dict[str, SplitStats] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    length_limit: int | None = None  # the longest sequence the model can read, when known
    limit: int | None = None  # only the first N rows of each split are checked
    unit: str = "row"  # what one example of the data is called (rows, documents, ...)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(
        self,
        level: Level,
        code: str,
        problem: str | BertkitError,
        hint: str | None = None,
        split: str | None = None,
    ) -> None:
        """Record a finding; a BertkitError gives its message and hint (and is kept for re-raising)."""
        if isinstance(problem, BertkitError):
            self.findings.append(Finding(level, code, str(problem), hint or problem.hint, split, problem))
        else:
            self.findings.append(Finding(level, code, problem, hint, split))

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "task": self.task,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "max_length": self.max_length,
            "tokenizer": self.tokenizer,
            "splits": {name: stats.to_dict() for name, stats in self.splits.items()},
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def iter_texts(dataset: Any) -> Any:
    for batch in dataset.iter(batch_size=TOKEN_BATCH):
        yield from (text or "" for text in batch["text"])


# --------------------------------------------------------------------------- small helpers


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
