"""Shared fixtures: a tiny BERT, tiny datasets and a CLI runner, all built offline.

The environment below is set when pytest imports this file, before any test (or
library) module is imported, so nothing in the suite can reach a model hub.
"""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

# A private Hugging Face home: tests never read the user's cache or write to it.
_HF_HOME = Path(tempfile.mkdtemp(prefix="bertkit-tests-hf-"))
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)

os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HOME": str(_HF_HOME),
        "HF_DATASETS_CACHE": str(_HF_HOME / "datasets"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        # rich reads these when bertkit.console is imported: a wide, colourless
        # "terminal" keeps table cells on one line and output free of escape codes.
        "COLUMNS": "200",
    }
)
for _var in ("FORCE_COLOR", "TTY_COMPATIBLE", "BERTKIT_DEBUG"):
    os.environ.pop(_var, None)


# --------------------------------------------------------------------------- vocabulary

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = [".", ",", "!", "?", "'", "-", ":", ";", "(", ")"]
POSITIVE_WORDS = ["good", "great", "excellent", "wonderful", "lovely", "fun", "nice", "tasty", "friendly"]
NEGATIVE_WORDS = ["bad", "terrible", "awful", "boring", "dull", "poor", "rude", "cold", "slow"]
NOUNS = [
    "film", "movie", "food", "service", "book", "show", "meal", "place", "staff", "story", "plot", "music",
]  # fmt: skip
OTHER_WORDS = [
    "the", "a", "an", "and", "but", "or", "so", "this", "that", "it", "is", "was", "were",
    "are", "be", "i", "you", "we", "they", "my", "our", "not", "very", "really", "quite",
    "too", "loved", "hated", "liked", "enjoyed", "love", "hate", "like", "best", "worst",
    "again", "never", "always", "will", "would", "do", "did", "to", "of", "in", "on", "at",
    "for", "with", "all", "time", "day", "night", "people", "there", "what", "here", "back",
    "come", "watch", "eat", "read", "recommend", "waste", "money", "worth", "every",
    "minute", "one", "ever", "much", "more", "less",
]  # fmt: skip
CONTINUATIONS = ["##s", "##ed", "##ing", "##ly", "##er", "##est", "##y"]

VOCAB: list[str] = [
    *SPECIAL_TOKENS,
    *PUNCTUATION,
    *POSITIVE_WORDS,
    *NEGATIVE_WORDS,
    *NOUNS,
    *OTHER_WORDS,
    *CONTINUATIONS,
]


def _sentences(adjectives: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every template filled with every (noun, adjective) pair, in a fixed interleaved order."""
    out = []
    for i, template in enumerate(templates):
        for j, noun in enumerate(NOUNS):
            adjective = adjectives[(i + j) % len(adjectives)]
            out.append(template.format(noun=noun, adj=adjective))
    return out


_POSITIVE = _sentences(
    POSITIVE_WORDS,
    [
        "the {noun} was {adj} .",
        "i loved the {noun} , it was very {adj} !",
        "a really {adj} {noun} , i would recommend it .",
        "what a {adj} {noun} , we will come back again .",
    ],
)
_NEGATIVE = _sentences(
    NEGATIVE_WORDS,
    [
        "the {noun} was {adj} .",
        "i hated the {noun} , it was very {adj} !",
        "a really {adj} {noun} , not worth the money .",
        "what a {adj} {noun} , we will never come back .",
    ],
)


def _check_in_vocab(lines: Sequence[str]) -> None:
    known = set(VOCAB)
    unknown = sorted({word for line in lines for word in line.split() if word not in known})
    if unknown:
        raise RuntimeError(f"tiny dataset words missing from the tiny vocab: {unknown}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_vocab() -> list[str]:
    """The tiny WordPiece vocabulary, in id order ([PAD]=0 ... [MASK]=4)."""
    return list(VOCAB)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertForMaskedLM with its WordPiece tokenizer, saved as a model directory."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(
        vocab={token: i for i, token in enumerate(VOCAB)},
        do_lower_case=True,
        model_max_length=128,
    )
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=VOCAB.index("[PAD]"),
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def _write_csv(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


@pytest.fixture(scope="session")
def tiny_sentiment_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train.csv (40 rows), validation.csv (12) and test.csv (12): text,label.

    Labels are `positive`/`negative`, balanced in every split, and every word is in
    the tiny vocabulary.
    """
    _check_in_vocab(_POSITIVE + _NEGATIVE)
    path = tmp_path_factory.mktemp("tiny-sentiment")
    sizes = {"train": 20, "validation": 6, "test": 6}  # per label
    start = 0
    for split, n in sizes.items():
        positive = [(text, "positive") for text in _POSITIVE[start : start + n]]
        negative = [(text, "negative") for text in _NEGATIVE[start : start + n]]
        # Alternate labels so the first rows of a file (data.limit) are still balanced.
        rows = [row for pair in zip(positive, negative, strict=True) for row in pair]
        _write_csv(path / f"{split}.csv", rows)
        start += n
    return path


@pytest.fixture(scope="session")
def sentiment_96_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.csv with all 96 tiny sentences (48 per label) and validation.csv with 24 others.

    96 divides into global batches of 48 = 1 x 48 = 2 x 24 = 3 x 16, so runs on one, two
    and three processes train on the very same batches.
    """
    path = tmp_path_factory.mktemp("sentiment-96")
    positive = [(text, "positive") for text in _POSITIVE]
    negative = [(text, "negative") for text in _NEGATIVE]
    _write_csv(path / "train.csv", [row for pair in zip(positive, negative, strict=True) for row in pair])
    held_out = []
    for j, noun in enumerate(NOUNS):
        held_out.append((f"this {noun} is {POSITIVE_WORDS[j % len(POSITIVE_WORDS)]} .", "positive"))
        held_out.append((f"our {noun} was really {NEGATIVE_WORDS[j % len(NEGATIVE_WORDS)]} .", "negative"))
    _check_in_vocab([text for text, _ in held_out])
    _write_csv(path / "validation.csv", held_out)
    return path


@pytest.fixture(scope="session")
def tiny_corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain-text corpus of 60 short sentences, one per line, for masked-LM tests."""
    lines = [line for pair in zip(_POSITIVE, _NEGATIVE, strict=True) for line in pair][:60]
    _check_in_vocab(lines)
    path = tmp_path_factory.mktemp("tiny-corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run_cli():
    """Invoke the `bertkit` Typer app in-process and return the click Result.

    Use as `run_cli("recipes", "list")`; `result.stdout` and `result.stderr` are
    separate (`result.output` has both). Keyword `env` adds environment variables for
    the call only; `BERTKIT_DEBUG` is unset (and restored) unless given, because
    `--debug` sets it in the process environment.
    """
    from typer.testing import CliRunner

    from bertkit.cli import app

    runner = CliRunner()

    def invoke(*args: str | os.PathLike[str], env: Mapping[str, str | None] | None = None, input=None):
        call_env: dict[str, str | None] = {"BERTKIT_DEBUG": None}
        call_env.update(env or {})
        return runner.invoke(app, [str(a) for a in args], env=call_env, input=input)

    return invoke


@pytest.fixture
def make_recipe(tmp_path, tiny_model_dir, tiny_sentiment_files):
    """Write a tiny classification recipe (2 steps on the tiny data) with sections merged over it."""
    import yaml

    def merge(base: dict, extra: dict) -> dict:
        out = dict(base)
        for key, value in extra.items():
            out[key] = (
                merge(out[key], value)
                if isinstance(value, dict) and isinstance(out.get(key), dict)
                else value
            )
        return out

    def make(name: str = "recipe", **sections: dict) -> Path:
        recipe = {
            "task": "classification",
            "model": {"name": str(tiny_model_dir)},
            "data": {
                "train": str(tiny_sentiment_files / "train.csv"),
                "validation": str(tiny_sentiment_files / "validation.csv"),
            },
            "train": {"max_steps": 2, "batch_size": 8, "seed": 42, "logging_steps": 1},
            "output": {"root": str(tmp_path / "runs")},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merge(recipe, sections), sort_keys=False), encoding="utf-8")
        return path

    return make
