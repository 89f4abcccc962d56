"""CoNLL-style column files: one token per line with its tags, a blank line between sentences.

Files in the wild differ in small ways that silently merge or split sentences if a
reader assumes one of them: fields separated by tabs or by spaces, sentence breaks
that are empty lines or lines of whitespace (WNUT-17 mixes both), `-DOCSTART-`
lines between documents (CoNLL-2003). This reader accepts all of them and names the
file and line of anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bertkit.errors import DataError
from bertkit.io.text import OnError, raise_error, text_lines

DOCSTART = "-DOCSTART-"


@dataclass
class ConllSentence:
    """One sentence: its tokens, their tags, and the file line of each token."""

    tokens: list[str]
    tags: list[str]
    lines: list[int]


def read_conll(
    path: Path, token_field: int = 0, tag_field: int = -1, on_error: OnError | None = None
) -> Iterator[ConllSentence]:
    """Stream the sentences of a CoNLL file.

    Each line's fields split on tabs when it holds one (so a token may hold spaces),
    else on runs of whitespace. A line that is empty after stripping whitespace ends
    a sentence; `-DOCSTART-` lines do too and are skipped.

    Args:
        path: the file (.gz, .bz2 and .xz are read compressed).
        token_field, tag_field: which field holds the token and which the tag.
        on_error: receives the DataError of a malformed line (then skipped); by default it is raised.

    Raises:
        DataError: a line with too few fields (without on_error).
    """
    report = on_error or raise_error
    sentence = ConllSentence([], [], [])
    for number, raw in text_lines(path, report):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith(DOCSTART):
            if sentence.tokens:
                yield sentence
            sentence = ConllSentence([], [], [])
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            token, tag = fields[token_field].strip(), fields[tag_field].strip()
        except IndexError:
            token = tag = ""
        if len(fields) < 2 or not token or not tag:
            shown = (
                f"{len(fields)} field{'s' if len(fields) != 1 else ''}"
                if len(fields) < 2
                else "an empty field"
            )
            report(
                DataError(
                    f"{path}:{number}: expected a token and its tag, found {shown}: {line.strip()[:60]!r}",
                    hint="each line holds a token and its tag separated by a tab or spaces "
                    "(data.conll_columns picks the fields); sentences end at a blank line",
                )
            )
            continue
        sentence.tokens.append(token)
        sentence.tags.append(tag)
        sentence.lines.append(number)
    if sentence.tokens:
        yield sentence
