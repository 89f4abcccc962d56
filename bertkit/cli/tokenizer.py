"""`bertkit tokenizer`: train a BERT WordPiece tokenizer on your text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertkit.cli import app

tokenizer_app = typer.Typer(help="Train a BERT WordPiece tokenizer.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
def train(
    inputs: Annotated[
        list[Path], typer.Option("--input", "-i", help="Text files, one document per line (repeatable).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the tokenizer to.")],
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=100, help="Vocabulary size.")] = 30522,
    lowercase: Annotated[
        bool, typer.Option("--lowercase/--cased", help="Lowercase and strip accents, or keep case.")
    ] = True,
    min_frequency: Annotated[
        int, typer.Option("--min-frequency", min=1, help="Drop pieces seen fewer times.")
    ] = 2,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a tokenizer already in --output (never a model's).")
    ] = False,
) -> None:
    """Train a WordPiece tokenizer (BERT's) and save it as a Hugging Face tokenizer folder.

    Chinese characters are split into tokens of their own, as BERT does.

    \b
    Examples:
      bertkit tokenizer train --input corpus.txt --vocab-size 8000 --output my-tokenizer
      bertkit tokenizer train -i a.txt -i b.txt --cased --output cased-tokenizer
    """
    from bertkit.console import out
    from bertkit.tasks.mlm.wordpiece import check_tokenizer_output, read_text_files, train_wordpiece

    check_tokenizer_output(output, force=force)
    tokenizer = train_wordpiece(
        read_text_files(inputs),
        output,
        vocab_size=vocab_size,
        lowercase=lowercase,
        min_frequency=min_frequency,
    )
    out.print(f"wrote {output} ({len(tokenizer):,} tokens, {'uncased' if lowercase else 'cased'})")
    sample = next(read_text_files(inputs), "")[:200]  # a line of the user's own text, in its language
    out.print(f"example: {' '.join(tokenizer.tokenize(sample))}", markup=False)
