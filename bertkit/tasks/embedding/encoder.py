"""Sentence encoders: any BERT-family model as a sentence-transformers model, with its pooling stated.

A sentence-transformers folder (one with modules.json) keeps its own pooling and
normalisation. Any other model (a plain BERT, a bertkit run of another task) is read
with bertkit's documented default, mean pooling over the attention mask without
normalisation, which is also what sentence-transformers does with such a folder;
`pooling` and `normalize` override either. The encoding itself is
`SentenceTransformer.encode` (it sorts each call's texts by length and restores
their order), so bertkit's vectors are the library's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import ModelError, UsageError

POOLINGS = ("cls", "mean", "max")
DEFAULT_POOLING = "mean"


@dataclass
class Encoder:
    """A loaded sentence encoder and how it makes one vector of a text.

    Attributes:
        model: the SentenceTransformer.
        source: the folder (or Hub id) it came from.
        pooling: cls, mean or max.
        normalize: whether vectors are scaled to unit length.
        own_modules: whether pooling and normalisation come from the model's own
            sentence-transformers configuration (else bertkit's default or the options).
        device: where it runs.
        run: the bertkit run it belongs to, if any.
    """

    model: Any
    source: str
    pooling: str
    normalize: bool
    own_modules: bool
    device: str
    run: Any = None

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def describe(self) -> str:
        origin = (
            "the model's own"
            if self.own_modules
            else "bertkit's default"
            if self.pooling == "mean"
            else "set"
        )
        unit = ", normalised" if self.normalize else ""
        size = f"{self.dimension} dimensions, max {self.max_length} tokens"
        return f"{self.pooling} pooling ({origin}){unit}, {size}"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One float32 vector per text (rows in input order)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,  # a Normalize module does it when the model has one
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def token_vectors(
        self, texts: list[str], batch_size: int = 64
    ) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
        """Each text's contextual token vectors (special tokens included) with their character offsets."""
        if not texts:
            return []
        vectors = self.model.encode(
            texts, batch_size=batch_size, output_value="token_embeddings", show_progress_bar=False
        )
        encoded = self.tokenizer(
            texts, return_offsets_mapping=True, truncation=True, max_length=self.max_length, verbose=False
        )
        return [
            (v.float().cpu().numpy(), [tuple(o) for o in offsets])
            for v, offsets in zip(vectors, encoded["offset_mapping"], strict=True)
        ]


def is_sentence_transformers_folder(folder: Path) -> bool:
    return (folder / "modules.json").is_file()


def load_encoder(
    model: str | Path | None,
    *,
    root: Path = Path("runs"),
    pooling: str | None = None,
    normalize: bool | None = None,
    device: str | None = None,
    max_length: int | None = None,
) -> Encoder:
    """Load a sentence encoder from a run, a model folder, an alias (`minilm`) or a Hub id.

    Raises:
        UsageError: an unknown pooling.
        ModelError: nothing loadable there.
    """
    from bertkit.devices import detect_device
    from bertkit.models import resolve_model
    from bertkit.runs import find_model_dir

    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"--pooling {pooling}: unknown", hint=f"one of {', '.join(POOLINGS)}")
    run = None
    if model is None or Path(model).exists():
        folder, run = find_model_dir(Path(model) if model is not None else None, root)
        location = str(folder)
    else:  # an alias or a Hub id
        location = resolve_model(str(model)).location
    device = detect_device(device)
    own = _has_modules(location)
    st = _build(location, own, pooling, normalize, device)
    if max_length is not None:
        limit = getattr(st[0].auto_model.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:
            raise UsageError(
                f"--max-length {max_length}: the model reads at most {limit} tokens",
                hint=f"give at most {limit}",
            )
        st.max_seq_length = max_length
    modules = _modules(st)
    return Encoder(
        model=st,
        source=location,
        pooling=modules[0],
        normalize=modules[1],
        own_modules=own and pooling is None and normalize is None,
        device=device,
        run=run,
    )


def _has_modules(location: str) -> bool:
    """Whether a folder (or Hub model) is a sentence-transformers model: it has modules.json."""
    from sentence_transformers.util import load_file_path

    if Path(location).is_dir():
        return is_sentence_transformers_folder(Path(location))
    try:
        return load_file_path(location, "modules.json") is not None
    except Exception:  # noqa: BLE001 - offline, or no such model: loading it says what is wrong
        return False


def _build(location: str, own: bool, pooling: str | None, normalize: bool | None, device: str) -> Any:
    """The SentenceTransformer: as it loads (its own modules, or mean pooling), or with pooling and
    normalisation replaced."""
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        loaded = SentenceTransformer(location, device=device)
    except OSError as exc:
        raise ModelError(
            f"{location}: cannot load it as a sentence encoder ({str(exc).splitlines()[0]})",
            hint="give a model folder, a bertkit run, `minilm`, or a Hub id",
        ) from None
    if pooling is None and normalize is None:
        return loaded
    # Replace the pooling and the final normalisation only: other modules (a Dense projection) stay.
    wanted = normalize if normalize is not None else any(isinstance(m, Normalize) for m in loaded)
    modules = [m for m in loaded if not isinstance(m, Normalize)]
    if pooling is not None:
        dimension = loaded[0].get_embedding_dimension()
        replaced = [
            Pooling(dimension, pooling_mode=pooling) if isinstance(m, Pooling) else m for m in modules
        ]
        modules = (
            replaced
            if any(isinstance(m, Pooling) for m in modules)
            else [modules[0], Pooling(dimension, pooling_mode=pooling), *modules[1:]]
        )
    if wanted:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device=device)


def _modules(model: Any) -> tuple[str, bool]:
    """(pooling mode, normalises?) of a SentenceTransformer."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    pools = [m for m in model if isinstance(m, Pooling)]
    mode = pools[0].pooling_mode if pools else "none"
    return (mode if isinstance(mode, str) else "+".join(mode)), any(isinstance(m, Normalize) for m in model)
