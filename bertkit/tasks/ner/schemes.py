"""Entity tag schemes: detect which one a corpus uses, validate it, convert it to IOB2.

Corpora tag entities in several ways; bertkit reads them all and trains on one:

- IOB2 (BIO): `B-X` starts every entity, `I-X` continues it.
- IOB1: `I-X` starts an entity; `B-X` only starts one right after another X entity.
- BIOES (BILOU): `B-X` begin, `I-X` inside, `E-X` end, `S-X` a one-token entity
  (BILOU writes `L-X` for end and `U-X` for unit).
- BMES: as BIOES with `M-X` inside, common in Chinese corpora.

Every scheme is read into entity spans ("chunks"), checking that each tag may follow
the one before; then the spans are written back as IOB2, the tags the model learns.
A tag that breaks its scheme (an `I-X` after `O` in IOB2) is a `SchemeError` naming
the token, unless the recipe asks to repair it, which reads it as conlleval does (the
tag starts an entity of its type).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SCHEMES = ("iob2", "iob1", "bioes", "bilou", "bmes")
OUTSIDE = "O"
# For each scheme: the prefix that begins, continues, ends an entity, and marks a one-token one.
_ROLES = {
    "iob2": {"B": "begin", "I": "inside"},
    "iob1": {"B": "begin", "I": "inside"},
    "bioes": {"B": "begin", "I": "inside", "E": "end", "S": "single"},
    "bilou": {"B": "begin", "I": "inside", "L": "end", "U": "single"},
    "bmes": {"B": "begin", "M": "inside", "E": "end", "S": "single"},
}


@dataclass(frozen=True)
class Chunk:
    """One entity: its type and the tokens it covers, `start` to `end` exclusive."""

    type: str
    start: int
    end: int


@dataclass(frozen=True)
class SchemeError:
    """A tag that its scheme does not allow where it stands."""

    position: int  # the token's index in its sentence
    message: str


def split_tag(tag: str) -> tuple[str, str]:
    """`B-PER` -> (`B`, `PER`); `O` -> (`O`, ``). Types may hold dashes (`B-creative-work`).

    Raises:
        ValueError: a tag that is neither `O` nor PREFIX-TYPE.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if not dash or not kind or len(prefix) != 1:
        raise ValueError(f"tag {tag!r} is neither O nor PREFIX-TYPE (e.g. B-PER)")
    return prefix.upper(), kind


def detect_scheme(sentences: Iterable[Sequence[str]]) -> tuple[str, str]:
    """The scheme the tags are written in, and a sentence saying why.

    Prefixes decide between the families (E/S -> BIOES, L/U -> BILOU, M -> BMES); a
    B/I corpus is IOB1 when entities start with `I-` and `B-` only ever follows an
    entity of its own type, else IOB2 (where entities starting with `I-` are errors).

    Raises:
        ValueError: a malformed tag, or prefixes of no single scheme (e.g. M and L).
    """
    prefixes: Counter[str] = Counter()
    i_starts = b_after_other = 0
    for tags in sentences:
        previous = OUTSIDE
        for tag in tags:
            prefix, kind = split_tag(tag)
            prefixes[prefix] += 1
            _, before = split_tag(previous)
            if prefix == "I" and before != kind:
                i_starts += 1
            elif prefix == "B" and before != kind:
                b_after_other += 1
            previous = tag
    used = set(prefixes) - {OUTSIDE}
    for scheme, marks in (("bmes", {"M"}), ("bilou", {"L", "U"}), ("bioes", {"E", "S"})):
        if used & marks:
            if not used <= set(_ROLES[scheme]):
                raise ValueError(f"tag prefixes {', '.join(sorted(used))} belong to no one scheme")
            return scheme, f"{'/'.join(sorted(used))} prefixes"
    if not used <= {"B", "I"}:
        raise ValueError(f"tag prefixes {', '.join(sorted(used))} belong to no one scheme")
    if i_starts and not b_after_other:
        return "iob1", "entities start with I- and B- only separates two entities of one type"
    if not used:
        return "iob2", "no entity tags"
    return "iob2", "entities start with B-"


def read_chunks(
    tags: Sequence[str], scheme: str, repair: bool = False
) -> tuple[list[Chunk], list[SchemeError]]:
    """The entities a tag sequence marks, and every tag that breaks the scheme.

    With `repair`, a broken tag is read as conlleval reads it (an entity that starts
    without its begin tag starts there; one left open ends at its last token) and no
    error is returned for it.
    """
    if scheme not in _ROLES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    roles = _ROLES[scheme]
    chunks: list[Chunk] = []
    errors: list[SchemeError] = []
    open_type, open_start = "", -1  # the entity being read, if any

    def close(end: int) -> None:
        nonlocal open_type
        if open_type:
            chunks.append(Chunk(open_type, open_start, end))
        open_type = ""

    for position, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == OUTSIDE:
            if open_type and scheme in ("bioes", "bilou", "bmes"):
                _complain(errors, repair, position, f"{tag} ends an entity that has no end tag")
            close(position)
            continue
        role = roles.get(prefix)
        if role is None:
            raise ValueError(f"tag {tag!r} has no place in {scheme.upper()} (prefixes {', '.join(roles)})")
        continues = open_type == kind
        if role == "begin":
            if open_type and scheme in ("bioes", "bilou", "bmes"):
                _complain(errors, repair, position, f"{tag} starts an entity before the last one ended")
            close(position)
            open_type, open_start = kind, position
        elif role == "single":
            if open_type:
                _complain(errors, repair, position, f"{tag} comes inside an entity that has no end tag")
            close(position)
            chunks.append(Chunk(kind, position, position + 1))
        else:  # inside or end
            if not continues:
                if scheme != "iob1":
                    what = f"an entity must start with B-{kind}"
                    after = tags[position - 1] if position else "the sentence start"
                    _complain(errors, repair, position, f"{tag} follows {after}: {what}")
                close(position)
                open_type, open_start = kind, position
            if role == "end":
                close(position + 1)
    if open_type and scheme in ("bioes", "bilou", "bmes"):
        _complain(errors, repair, len(tags) - 1, f"the entity ending at {tags[-1]} has no end tag")
    close(len(tags))
    return chunks, errors


def _complain(errors: list[SchemeError], repair: bool, position: int, message: str) -> None:
    if not repair:
        errors.append(SchemeError(position, message))


def to_iob2(chunks: Iterable[Chunk], length: int) -> list[str]:
    """The IOB2 tags of `length` tokens holding `chunks`."""
    tags = [OUTSIDE] * length
    for chunk in chunks:
        tags[chunk.start] = f"B-{chunk.type}"
        for position in range(chunk.start + 1, chunk.end):
            tags[position] = f"I-{chunk.type}"
    return tags


def iob2_labels(types: Iterable[str]) -> list[str]:
    """The model's labels for these entity types: O, then B- and I- of each type in order."""
    labels = [OUTSIDE]
    for kind in types:
        labels += [f"B-{kind}", f"I-{kind}"]
    return labels


def types_of(labels: Iterable[str]) -> list[str]:
    """The entity types of a label list, in first-seen order (B-PER, I-PER, B-LOC -> PER, LOC)."""
    seen: dict[str, None] = {}
    for label in labels:
        prefix, kind = split_tag(label)
        if prefix != OUTSIDE:
            seen.setdefault(kind, None)
    return list(seen)
