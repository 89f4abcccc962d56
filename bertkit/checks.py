"""Check a recipe's data before any compute is spent (`bertkit check`, and the start of training).

The data the recipe points to is read once, with the readers training uses, and every
problem is collected rather than raised, so a user sees them all in one go. Problems
that make training fail or meaningless (unreadable rows, missing columns, empty or
unseen labels, a single class, no text) are errors; problems that make it worse than
it should be (empty texts, duplicates, leakage between splits, heavy imbalance, many
truncated texts) are warnings. `raise_for_errors` turns the errors into one exception
for the training commands. Nothing here prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bertkit.data.classification import SPLITS, column_problems, read_source, split_validation, table_texts
from bertkit.data.labels import LabelSpec, detect_labels, is_missing_label, label_names_of
from bertkit.data.reading import Table
from bertkit.errors import BertkitError, DataError, ModelError, RecipeError
from bertkit.recipe.schema import Recipe

if TYPE_CHECKING:
    import numpy as np

# Token statistics (and duplicate checks of corpora) read at most this many rows per split.
SAMPLE_ROWS = 100_000
# Warn when the largest class has this many times the examples of the smallest.
IMBALANCE_RATIO = 10.0
# Warn when more than this share of examples is cut at data.max_length.
TRUNCATION_SHARE = 0.05
_LISTED = 5  # malformed rows reported one by one before "and N more"
_TOKEN_BATCH = 1000

Level = Literal["error", "warning"]


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


def check_recipe(recipe: Recipe, *, limit: int | None = None, tokenizer: Any = None) -> CheckReport:
    """Read the data a recipe points to and report every problem found, without raising.

    Args:
        recipe: a validated recipe.
        limit: check only the first N rows of each split (default: data.limit).
        tokenizer: the tokenizer to measure token lengths with; default the recipe's
            (`model.tokenizer` or `model.name`), loaded here.

    Returns:
        A CheckReport; `report.ok` is False when training would fail or be meaningless.
    """
    name = None if recipe.tokenizer.train else (recipe.model.tokenizer or recipe.model.name)
    report = CheckReport(
        task=recipe.task,
        recipe=str(recipe.source) if recipe.source else recipe.run_name,
        max_length=recipe.data.max_length,
        tokenizer=name,
    )
    loaded = _check_model(recipe, tokenizer, report)
    limit = limit or recipe.data.limit
    if recipe.task == "classification":
        _check_classification(recipe, limit, loaded, report)
    else:
        _check_corpus(recipe, limit, loaded, report)
    return report


def raise_for_errors(report: CheckReport) -> None:
    """Raise if the report holds errors: the error itself when there is one, else a summary.

    Raises:
        BertkitError: the single error found (its own class, message and hint), or a
            DataError listing every error.
    """
    errors = report.errors
    if not errors:
        return
    if len(errors) == 1 and errors[0].exception is not None:
        raise errors[0].exception
    listed = "\n".join(f"  {f.message}" for f in errors)
    raise DataError(
        f"{report.recipe}: {len(errors)} problems make training fail or meaningless:\n{listed}",
        hint=f"fix them; `bertkit check --recipe {report.recipe}` shows the full report",
    )


# --------------------------------------------------------------------------- model and tokenizer


def _check_model(recipe: Recipe, given: Any, report: CheckReport) -> Any:
    """Check the model reference, its weights' format and the tokenizer; return the tokenizer."""
    from bertkit.models import check_weights_safe, load_tokenizer, resolve_model

    model = recipe.model
    source = model.tokenizer or model.name
    if model.trust_remote_code:
        repositories = " and ".join(dict.fromkeys(str(n) for n in (model.name, model.tokenizer) if n))
        report.add(
            "warning",
            "trust_remote_code",
            f"model.trust_remote_code is on: code from {repositories} will run on this machine",
            hint="turn it off unless you have read that repository's code",
        )
    if model.init == "pretrained" and model.name:
        try:
            check_weights_safe(resolve_model(model.name), model.allow_pickle)
        except BertkitError as exc:
            report.add("error", "model", exc)
    if given is not None:
        tokenizer = given
    elif recipe.tokenizer.train or source is None:
        report.notes.append(
            "tokenizer.train is on: the tokenizer is trained first, so token counts are skipped"
        )
        return None
    else:
        try:
            tokenizer = load_tokenizer(
                source, revision=model.revision, trust_remote_code=model.trust_remote_code
            )
        except BertkitError as exc:
            if not any(f.message == str(exc) for f in report.findings):  # the model check said it
                report.add("error", "model", exc)
            return None
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 100_000 and recipe.data.max_length > limit:
        report.add(
            "error",
            "max_length",
            RecipeError(
                f"data.max_length: {recipe.data.max_length} is above the model's limit of {limit} tokens",
                hint=f"use --set data.max_length={limit} or less",
            ),
        )
    if recipe.task == "mlm" and tokenizer.mask_token is None:
        report.add(
            "error",
            "no_mask_token",
            ModelError(
                f"{source}: the tokenizer has no mask token, so it cannot be used for masked-LM training",
                hint="use a BERT tokenizer (it has [MASK]) or train one with tokenizer.train: true",
            ),
        )
    return tokenizer


# --------------------------------------------------------------------------- classification


def _check_classification(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    data = recipe.data
    tables: dict[str, Table] = {}
    for split in SPLITS:
        source = getattr(data, split)
        if source is None:
            continue
        table = _read_split(split, source, data.text_columns[0], report)
        if table is None:
            continue
        report.splits[split] = SplitStats(split, table.name, len(table), len(table))
        missing = column_problems(table, data, need_label=True)
        for problem in missing:
            report.add("error", "missing_column", problem, split=split)
        if not missing:
            tables[split] = table.head(limit)
            report.splits[split].used = len(tables[split])
    if "train" not in tables:
        return
    tables, spec = _check_labels(recipe, tables, report)
    for split, table in tables.items():
        _check_texts(split, table, recipe, spec, report)
    _check_leakage(tables, recipe, report)
    if tokenizer is not None:
        for split, table in tables.items():
            texts, pairs = table_texts(table.head(SAMPLE_ROWS), data)
            if len(table) > SAMPLE_ROWS:
                report.notes.append(
                    f"{split}: token lengths from the first {SAMPLE_ROWS:,} of {len(table):,} rows"
                )
            _token_stats(split, table.name, texts, pairs, tokenizer, recipe, report)


def _read_split(split: str, source: Any, text_column: str, report: CheckReport) -> Table | None:
    """Read a split, reporting every malformed row (up to a few, then a count) and read errors."""
    bad: list[DataError] = []
    table = None
    try:
        table = read_source(source, text_column, on_error=bad.append)
    except DataError as exc:
        if not bad:  # with malformed rows, "no data rows" only repeats them
            report.add("error", "unreadable", exc, split=split)
    for error in bad[:_LISTED]:
        report.add("error", "malformed_row", error, split=split)
    if len(bad) > _LISTED:
        report.add(
            "error",
            "malformed_row",
            f"{source.describe()}: {len(bad) - _LISTED} more malformed rows ({len(bad)} in all)",
            hint=bad[0].hint,
            split=split,
        )
    return table


def _check_labels(
    recipe: Recipe, tables: dict[str, Table], report: CheckReport
) -> tuple[dict[str, Table], LabelSpec | None]:
    """Empty, mixed, unseen labels and the label distribution; returns the labelled rows."""
    column, settings = recipe.data.label, recipe.labels
    labelled: dict[str, Table] = {}
    for split, table in tables.items():
        values = table.columns[column]
        empty = [i for i, v in enumerate(values) if is_missing_label(v)]
        if empty:
            report.add(
                "error",
                "empty_label",
                f"{table.where(empty[0])}: empty label in column {column!r} "
                f"({_plural(len(empty), 'row')}: {_positions(table, empty)})",
                hint="give every row a label, or drop unlabelled rows",
                split=split,
            )
        labelled[split] = _subset(table, [i for i, v in enumerate(values) if not is_missing_label(v)])
    if len(labelled["train"]) == 0:
        return labelled, None
    try:
        spec = detect_labels(
            labelled["train"],
            column,
            declared=settings.type,
            separator=settings.separator,
            names=settings.names,
        )
    except DataError as exc:
        report.add(
            "error", "single_class" if "single label value" in exc.message else "labels", exc, split="train"
        )
        return labelled, None
    report.notes.append(spec.reason)

    if recipe.data.validation_split and "validation" not in labelled:
        try:
            train, held, note = split_validation(
                labelled["train"], spec, column, recipe.data.validation_split, recipe.train.seed
            )
        except DataError as exc:
            report.add("error", "validation_split", exc)
        else:
            labelled["train"], labelled["validation"] = train, held
            report.notes.append(note)
            report.splits["train"].used = len(train)
            source = f"{train.name} ({recipe.data.validation_split:.0%} carved from train)"
            report.splits["validation"] = SplitStats("validation", source, len(held), len(held))

    for split, table in labelled.items():
        try:
            targets = spec.encode(table, column)
        except DataError as exc:
            code = "unseen_labels" if "not seen in training" in exc.message else "labels"
            report.add("error", code, exc, split=split)
            targets = None
        _label_distribution(split, table, spec, recipe, report)
        if split == "train" and targets is not None:
            _check_training_settings(recipe, labelled, spec, targets, report)
    return labelled, spec


def _label_distribution(
    split: str, table: Table, spec: LabelSpec, recipe: Recipe, report: CheckReport
) -> None:
    import numpy as np

    stats = report.splits[split]
    values = table.columns[recipe.data.label]
    if spec.problem == "regression":
        numbers = np.array([float(v) for v in values if _is_number(v)], dtype=np.float64)
        if len(numbers):
            stats.label_range = {
                "min": float(numbers.min()),
                "mean": round(float(numbers.mean()), 4),
                "max": float(numbers.max()),
            }
        return
    counts = Counter(
        _display(n, spec) for v in values for n in label_names_of(v, spec.problem, spec.separator)
    )
    ordered = {name: counts.get(name, 0) for name in spec.names}
    ordered.update({name: n for name, n in counts.items() if name not in ordered})
    stats.labels = ordered
    if split != "train" or spec.problem != "single":
        return
    absent = [name for name, n in ordered.items() if n == 0]
    if absent:
        report.add(
            "warning",
            "label_without_examples",
            f"{table.name}: labels {absent} (from labels.names) have no training examples",
            hint="add examples of them, or remove them from labels.names",
            split=split,
        )
    present = {name: n for name, n in ordered.items() if n > 0}
    if len(present) >= 2:
        most, least = max(present, key=present.__getitem__), min(present, key=present.__getitem__)
        ratio = present[most] / present[least]
        if ratio > IMBALANCE_RATIO:
            weighted = recipe.train.class_weights != "none"
            report.add(
                "warning",
                "imbalance",
                f"{table.name}: labels are heavily imbalanced: {most!r} has {present[most]:,} rows, "
                f"{least!r} only {present[least]:,} ({ratio:.0f}:1)",
                hint="train.class_weights is set, so the loss is weighted; read the per-class scores"
                if weighted
                else "set train.class_weights: auto to weight the loss by inverse class frequency, "
                "or add examples of the rare labels",
                split=split,
            )


def _check_training_settings(
    recipe: Recipe, tables: dict[str, Table], spec: LabelSpec, targets: list[Any], report: CheckReport
) -> None:
    """train.metric and train.class_weights against the labels (training checks them the same way)."""
    from bertkit.data.classification import ClassificationData
    from bertkit.training.finetune import resolve_class_weights, select_metric

    try:
        select_metric(recipe, spec)
    except BertkitError as exc:
        report.add("error", "recipe", exc)
    try:
        resolve_class_weights(recipe, ClassificationData(tables, spec, {"train": targets}))
    except BertkitError as exc:
        report.add("error", "recipe", exc)


def _check_texts(
    split: str, table: Table, recipe: Recipe, spec: LabelSpec | None, report: CheckReport
) -> None:
    """Empty texts, duplicates and texts that appear with different labels."""
    stats = report.splits[split]
    keys = _text_keys(table, recipe)
    empty = [i for i, key in enumerate(keys) if not key]
    stats.empty_texts = len(empty)
    if empty and len(empty) == len(keys):
        report.add(
            "error",
            "empty_texts",
            f"{table.name}: all {len(keys):,} texts are empty (column {recipe.data.text!r})",
            hint="point data.text at the column that holds the text",
            split=split,
        )
        return
    if empty:
        report.add(
            "warning",
            "empty_texts",
            f"{table.where(empty[0])}: {_plural(len(empty), 'empty or whitespace-only text')} "
            f"({_positions(table, empty)})",
            hint="drop those rows: a model learns nothing from them",
            split=split,
        )
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # (row, first row with the same text)
    for row, key in enumerate(keys):
        if key:
            if key in first:
                repeats.append((row, first[key]))
            else:
                first[key] = row
    stats.duplicates = len(repeats)
    if repeats:
        row, earlier = repeats[0]
        report.add(
            "warning",
            "duplicates",
            f"{table.name}: {_plural(len(repeats), 'row')} ({len(repeats) / len(keys):.1%}) "
            f"repeat{'s' if len(repeats) == 1 else ''} an earlier text, "
            f"e.g. {_short(keys[row])!r} at {table.where(row)} (first at line {_line(table, earlier)})",
            hint="remove exact duplicates: they weigh some examples more than others",
            split=split,
        )
    if spec is not None and spec.problem != "regression" and repeats:
        _check_conflicts(split, table, keys, repeats, recipe, spec, report)


def _check_conflicts(
    split: str,
    table: Table,
    keys: list[str],
    repeats: list[tuple[int, int]],
    recipe: Recipe,
    spec: LabelSpec,
    report: CheckReport,
) -> None:
    values = table.columns[recipe.data.label]

    def label(row: int) -> tuple[str, ...]:
        return tuple(sorted(label_names_of(values[row], spec.problem, spec.separator)))

    conflicts = [(row, earlier) for row, earlier in repeats if label(row) != label(earlier)]
    if conflicts:
        row, earlier = conflicts[0]
        report.add(
            "warning",
            "conflicting_labels",
            f"{table.name}: {len(conflicts):,} repeated texts carry a different label than before, "
            f"e.g. {_short(keys[row])!r}: {'|'.join(label(earlier))} at line {_line(table, earlier)}, "
            f"{'|'.join(label(row))} at line {_line(table, row)}",
            hint="decide on one label for each text",
            split=split,
        )


def _check_leakage(tables: dict[str, Table], recipe: Recipe, report: CheckReport) -> None:
    train: dict[str, int] = {}
    for row, key in enumerate(_text_keys(tables["train"], recipe)):
        if key:
            train.setdefault(key, row)
    for split, table in tables.items():
        if split == "train":
            continue
        keys = _text_keys(table, recipe)
        leaked = [i for i, key in enumerate(keys) if key and key in train]
        report.splits[split].in_train = len(leaked)
        if leaked:
            report.add(
                "warning",
                "leakage",
                f"{table.name}: {len(leaked):,} of {len(keys):,} rows ({len(leaked) / len(keys):.1%}) "
                f"also appear in train, e.g. {_short(keys[leaked[0]])!r} at {table.where(leaked[0])} "
                f"(train line {_line(tables['train'], train[keys[leaked[0]]])})",
                hint=f"remove them from {split} or from train: seen texts make {split} scores look better "
                "than they are",
                split=split,
            )


def _text_keys(table: Table, recipe: Recipe) -> list[str]:
    """Each row's text (and pair) with surrounding space removed; empty when any part is empty."""
    texts, pairs = table_texts(table, recipe.data)
    if pairs is None:
        return [t.strip() for t in texts]
    return [
        f"{a.strip()}\t{b.strip()}" if a.strip() and b.strip() else ""
        for a, b in zip(texts, pairs, strict=True)
    ]


def _token_stats(
    split: str,
    name: str,
    texts: list[str],
    pairs: list[str] | None,
    tokenizer: Any,
    recipe: Recipe,
    report: CheckReport,
) -> None:
    import numpy as np

    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), _TOKEN_BATCH):
        part = texts[start : start + _TOKEN_BATCH]
        second = pairs[start : start + _TOKEN_BATCH] if pairs is not None else None
        encoded = tokenizer(
            part,
            second,
            add_special_tokens=True,
            truncation=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        lengths[start : start + len(part)] = [len(ids) for ids in encoded["input_ids"]]
    max_length = recipe.data.max_length
    stats = TokenStats.of(lengths, int((lengths > max_length).sum()))
    report.splits[split].tokens = stats
    if stats.truncated_share > TRUNCATION_SHARE:
        limit = getattr(tokenizer, "model_max_length", None) or 100_000
        suggested = min(-(-stats.p99 // 8) * 8, limit if limit < 100_000 else 8192)
        report.add(
            "warning",
            "truncation",
            f"{name}: {stats.truncated:,} of {stats.counted:,} examples ({stats.truncated_share:.1%}) "
            f"are longer than data.max_length={max_length} tokens and will be cut "
            f"(p99 {stats.p99}, longest {stats.max})",
            hint=f"raise data.max_length (e.g. --set data.max_length={suggested})"
            if suggested > max_length
            else "the model cannot read longer texts: split long texts into parts",
            split=split,
        )


# --------------------------------------------------------------------------- masked-LM corpora


def _check_corpus(recipe: Recipe, limit: int | None, tokenizer: Any, report: CheckReport) -> None:
    from bertkit.data.corpus import load_corpus

    data = recipe.data
    corpora: dict[str, Any] = {}
    for split in ("train", "validation"):
        source = getattr(data, split)
        if source is None:
            continue
        try:
            corpus = load_corpus(source, data, recipe.mlm)
        except DataError as exc:
            report.add("error", "unreadable", exc, split=split)
            continue
        corpora[split] = corpus.select(range(min(limit, len(corpus)))) if limit else corpus
        report.splits[split] = SplitStats(split, source.describe(), len(corpus), len(corpora[split]))
    if data.test is not None:
        report.add(
            "warning",
            "unused_split",
            "data.test: pretraining does not use test data",
            hint="remove it, or score it later with `bertkit eval --data FILE`",
        )
    if "train" in corpora and "validation" not in corpora and data.validation_split:
        parts = corpora["train"].train_test_split(test_size=data.validation_split, seed=recipe.train.seed)
        corpora["train"], corpora["validation"] = parts["train"], parts["test"]
        report.splits["train"].used = len(parts["train"])
        source = f"{report.splits['train'].source} ({data.validation_split:.0%} held out from train)"
        report.splits["validation"] = SplitStats("validation", source, len(parts["test"]), len(parts["test"]))

    samples = {}
    for split, corpus in corpora.items():
        sample = corpus.select(range(SAMPLE_ROWS)) if len(corpus) > SAMPLE_ROWS else corpus
        if len(sample) < len(corpus):
            report.notes.append(
                f"{split}: duplicates and tokens counted in the first {SAMPLE_ROWS:,} "
                f"of {len(corpus):,} documents"
            )
        samples[split] = sample
        _corpus_duplicates(split, sample, report)
    if "train" in samples and "validation" in samples:
        _corpus_leakage(samples["train"], samples["validation"], report)
    if tokenizer is not None:
        for split, sample in samples.items():
            _corpus_sequences(split, sample, len(corpora[split]), tokenizer, recipe, report)


def _corpus_duplicates(split: str, sample: Any, report: CheckReport) -> None:
    seen: set[int] = set()
    repeats = 0
    example = None
    for text in _iter_texts(sample):
        key = hash(text.strip())
        if key in seen:
            repeats += 1
            example = example or text
        seen.add(key)
    report.splits[split].duplicates = repeats
    if repeats:
        report.add(
            "warning",
            "duplicates",
            f"{report.splits[split].source}: {repeats:,} documents "
            f"({repeats / max(len(sample), 1):.1%}) repeat an earlier one, e.g. {_short(example or '')!r}",
            hint="deduplicate the corpus: repeated text is memorised rather than learned from",
            split=split,
        )


def _corpus_leakage(train: Any, validation: Any, report: CheckReport) -> None:
    seen = {hash(text.strip()) for text in _iter_texts(train)}
    leaked = [text for text in _iter_texts(validation) if hash(text.strip()) in seen]
    report.splits["validation"].in_train = len(leaked)
    if leaked:
        report.add(
            "warning",
            "leakage",
            f"{report.splits['validation'].source}: {len(leaked):,} of {len(validation):,} documents "
            f"also appear in train, e.g. {_short(leaked[0])!r}",
            hint="remove them from one side: validation loss on seen text is too optimistic",
            split="validation",
        )


def _corpus_sequences(
    split: str, sample: Any, total: int, tokenizer: Any, recipe: Recipe, report: CheckReport
) -> None:
    import numpy as np

    from bertkit.data.corpus import build_sequences

    built, seq = build_sequences(
        sample, tokenizer, recipe.mlm, recipe.data.max_length, seed=recipe.train.seed
    )
    stats = report.splits[split]
    lengths = np.asarray(built["length"], dtype=np.int64) if len(built) else np.zeros(0, dtype=np.int64)
    stats.tokens = TokenStats.of(lengths, seq.truncated_documents)
    stats.tokens.counted = seq.documents
    scale = total / max(len(sample), 1)
    stats.sequences = {
        "documents": seq.documents,
        "corpus_tokens": seq.corpus_tokens,
        "sequences": seq.sequences,
        "used_tokens": seq.used_tokens,
        "dropped_tokens": seq.dropped_tokens,
        "truncated_documents": seq.truncated_documents,
    }
    if scale > 1:
        stats.sequences["estimated_corpus_tokens"] = round(seq.corpus_tokens * scale)
        stats.sequences["estimated_sequences"] = round(seq.sequences * scale)
    if len(built) == 0:
        report.add(
            "error",
            "no_sequences",
            f"{stats.source}: no sequences can be built from the text",
            hint="check the corpus has text the tokenizer can read",
            split=split,
        )
    elif seq.documents and seq.truncated_documents / seq.documents > TRUNCATION_SHARE:
        report.add(
            "warning",
            "truncation",
            f"{stats.source}: {seq.truncated_documents:,} of {seq.documents:,} documents are longer than "
            f"data.max_length={recipe.data.max_length} and lose {seq.dropped_tokens:,} tokens",
            hint="use mlm.sequences: packing (no token is dropped), or raise data.max_length",
            split=split,
        )


def _iter_texts(dataset: Any) -> Any:
    for batch in dataset.iter(batch_size=_TOKEN_BATCH):
        yield from (text or "" for text in batch["text"])


# --------------------------------------------------------------------------- small helpers


def _subset(table: Table, rows: list[int]) -> Table:
    if len(rows) == len(table):
        return table
    lines = [table.lines[i] for i in rows] if table.lines is not None else None
    return Table(table.name, {k: [v[i] for i in rows] for k, v in table.columns.items()}, lines, table.notes)


def _line(table: Table, row: int) -> str:
    return str(table.lines[row]) if table.lines is not None else f"row {row + 1}"


def _positions(table: Table, rows: list[int]) -> str:
    """`lines 4, 9, 12, ...` (or `rows ...` for sources without lines)."""
    shown = [table.lines[i] if table.lines is not None else i + 1 for i in rows[:_LISTED]]
    more = ", ..." if len(rows) > _LISTED else ""
    word = "line" if table.lines is not None else "row"
    return f"{word}{'s' if len(rows) > 1 else ''} {', '.join(map(str, shown))}{more}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _display(name: str, spec: LabelSpec) -> str:
    """The label name as the model will call it (integer ids map to labels.names)."""
    if name in spec.names or not name.isdigit():
        return name
    numeric = any(n.lstrip("-").isdigit() for n in spec.names)
    return spec.names[int(name)] if not numeric and int(name) < len(spec.names) else name


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
