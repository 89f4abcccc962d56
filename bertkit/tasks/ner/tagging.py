"""Decide a corpus's tag scheme and entity types, and turn every split's tags into IOB2.

The decision is made on the training split (or taken from the recipe), printed, and
recorded in the model's config.json; validation and test are read the same way, so
an entity type they hold that training lacks is an error, not a silent zero score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from bertkit.console import plural
from bertkit.errors import DataError
from bertkit.tasks.ner.data import Sentences
from bertkit.tasks.ner.recipe import TagsSection
from bertkit.tasks.ner.schemes import Chunk, detect_scheme, iob2_labels, read_chunks, split_tag, to_iob2

LISTED = 5  # tag errors shown one by one before "and N more"


@dataclass(frozen=True)
class TagSpec:
    """How a corpus writes its entities and what the model predicts.

    Attributes:
        scheme: the scheme the data is written in (converted to IOB2 for the model).
        types: entity types in the model's order.
        reason: why (detected from the training tags, or set in the recipe).
    """

    scheme: str
    types: tuple[str, ...]
    reason: str

    @property
    def labels(self) -> list[str]:
        """The model's labels: O, then B- and I- of each type."""
        return iob2_labels(self.types)

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))


def decide_tags(train: Sentences, section: TagsSection) -> TagSpec:
    """The scheme (detected unless set) and entity types (sorted unless set) of the training data.

    Raises:
        DataError: a malformed tag (naming its line), or prefixes of no single scheme.
    """
    for index, tags in enumerate(train.tags):
        for position, tag in enumerate(tags):
            try:
                split_tag(tag)
            except ValueError as exc:
                raise DataError(
                    f"{train.where(index, position)}: {exc}",
                    hint="tags are O or a prefix and a type joined by a dash: B-PER, I-LOC, S-ORG, ...",
                ) from None
    if section.scheme == "auto":
        try:
            scheme, why = detect_scheme(train.tags)
        except ValueError as exc:
            raise DataError(
                f"{train.name}: {exc}", hint="set tags.scheme to the scheme the data uses"
            ) from None
        reason = f"tag scheme {scheme.upper()} (detected: {why}; set tags.scheme to override)"
    else:
        scheme, reason = section.scheme, f"tag scheme {section.scheme.upper()} (tags.scheme)"
    found = sorted({split_tag(tag)[1] for tags in train.tags for tag in tags} - {""})
    if section.types is not None:
        missing = [t for t in found if t not in section.types]
        if missing:
            raise DataError(
                f"{train.name}: entity types {', '.join(missing)} are not in tags.types",
                hint=f"list every type the data holds in tags.types (found: {', '.join(found)}), or drop it",
            )
        types = tuple(section.types)
    else:
        types = tuple(found)
    return TagSpec(scheme, types, f"{plural(len(types), 'entity type')} ({', '.join(types)}); {reason}")


def convert(sentences: Sentences, spec: TagSpec, repair: bool) -> tuple[Sentences, list[DataError], int]:
    """The sentences with IOB2 tags, every scheme error (with file:line), and how many tags were repaired.

    Types the model does not know are errors too (the model could never predict them).
    """
    errors: list[DataError] = []
    repaired = 0
    known = set(spec.types)
    converted = []
    for index, tags in enumerate(sentences.tags):
        try:
            chunks, problems = read_chunks(tags, spec.scheme)
        except ValueError as exc:
            errors.append(DataError(f"{sentences.where(index)}: {exc}", hint=_scheme_hint(spec)))
            converted.append(["O"] * len(tags))
            continue
        if problems and repair:
            chunks, _ = read_chunks(tags, spec.scheme, repair=True)
            repaired += len(problems)
        else:
            errors.extend(
                DataError(f"{sentences.where(index, p.position)}: {p.message}", hint=_repair_hint(spec))
                for p in problems
            )
        unknown = [c for c in chunks if c.type not in known]
        errors.extend(
            DataError(
                f"{sentences.where(index, c.start)}: entity type {c.type!r} is not in the training data",
                hint="add training examples of it, or list it in tags.types (the model has it, untrained)",
            )
            for c in unknown
        )
        converted.append(to_iob2([c for c in chunks if c.type in known], len(tags)))
    return replace(sentences, tags=converted), errors, repaired


def raise_first(errors: list[DataError], name: str) -> None:
    """Raise the first error, saying how many there are in all."""
    if not errors:
        return
    first = errors[0]
    more = f" ({len(errors) - 1} more tag errors in {name})" if len(errors) > 1 else ""
    raise DataError(f"{first.message}{more}", hint=first.hint)


def entity_counts(sentences: Sentences) -> Counter[str]:
    """Entities per type in IOB2-tagged sentences."""
    counts: Counter[str] = Counter()
    for tags in sentences.tags:
        counts.update(c.type for c in chunks_of(tags))
    return counts


def chunks_of(tags: list[str]) -> list[Chunk]:
    """The entities of IOB2 tags, read as conlleval does (an I-X after O starts an entity)."""
    return read_chunks(tags, "iob2", repair=True)[0]


def _repair_hint(spec: TagSpec) -> str:
    if spec.scheme == "iob2":
        return (
            "fix the tag, set tags.repair: true to start the entity there (as conlleval does), "
            "or set tags.scheme: iob1 if the data is IOB1"
        )
    return "fix the tag, or set tags.repair: true to read it as conlleval does"


def _scheme_hint(spec: TagSpec) -> str:
    return f"the data is read as {spec.scheme.upper()}; set tags.scheme to the scheme it uses"
