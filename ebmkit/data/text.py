"""An offline English text corpus (CPython's ``pydoc_data.topics``) and its vocabulary.

The corpus is the prose of Python's own ``help()`` topics, shipped with the standard library,
so it needs no download. It is split by topic, tokenised by character or by word, and cut
into fixed-length blocks of token ids for masked-language models.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import TensorData

__all__ = ["LEVELS", "SPECIAL_TOKENS", "Vocabulary", "build_vocabulary", "read_corpus", "text"]

SPECIAL_TOKENS = ("<pad>", "<unk>", "<mask>")
"""Special tokens, always ids 0, 1, 2."""
LEVELS = ("char", "word")
_SPLITS = ("train", "test", "all")
_WORD = re.compile(r"\w+|[^\w\s]")


class Vocabulary:
    """A fixed token ↔ id mapping, with ``<pad>`` = 0, ``<unk>`` = 1, ``<mask>`` = 2.

    Args:
        tokens: The ordinary tokens, in id order (ids start at 3); no duplicates, no
            special tokens.
        level: ``"char"`` (tokens are single characters) or ``"word"`` (lower-cased words
            and punctuation marks, as split by the regex ``\\w+|[^\\w\\s]``).

    Raises:
        ConfigError: bad level, or duplicate / special tokens in ``tokens``.

    Examples:
        >>> v = Vocabulary(["a", "b"], level="char")
        >>> v.encode("abc")
        [3, 4, 1]
        >>> v.decode([3, 4, 1])
        'ab<unk>'
    """

    def __init__(self, tokens: Iterable[str], level: str = "char") -> None:
        _check_level(level)
        tokens = list(tokens)
        clash = [t for t in tokens if t in SPECIAL_TOKENS]
        if clash or len(set(tokens)) != len(tokens):
            dup = clash or [t for t, c in Counter(tokens).items() if c > 1]
            raise ConfigError(
                f"vocabulary tokens must be unique and not special tokens; got {dup[:5]!r}."
            )
        self.level = level
        self.itos: list[str] = [*SPECIAL_TOKENS, *tokens]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    pad_id = 0
    unk_id = 1
    mask_id = 2

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.level == other.level and self.itos == other.itos

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside

    def __repr__(self) -> str:
        return f"Vocabulary(level={self.level!r}, size={len(self)})"

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into tokens: characters, or lower-cased words and punctuation."""
        return list(text) if self.level == "char" else _WORD.findall(text.lower())

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; tokens not in the vocabulary become ``<unk>``."""
        unk = self.unk_id
        return [self.stoi.get(t, unk) for t in self.tokenize(text)]

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Text of ``ids``: characters joined with ``""``, words with ``" "``.

        Raises:
            ConfigError: an id is outside ``[0, len(self))``.
        """
        if isinstance(ids, Tensor):
            ids = ids.reshape(-1).tolist()
        size = len(self.itos)
        bad = [i for i in ids if not 0 <= i < size]
        if bad:
            raise ConfigError(
                f"token id {bad[0]} is outside the vocabulary's range [0, {size})."
            )
        return ("" if self.level == "char" else " ").join(self.itos[i] for i in ids)

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict (no pickle) that ``from_json`` turns back into this."""
        return {"level": self.level, "tokens": self.itos[len(SPECIAL_TOKENS) :]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        """Rebuild a vocabulary from [`to_json`][ebmkit.data.text.Vocabulary.to_json]'s dict.

        Raises:
            ConfigError: the dict lacks ``level`` or ``tokens``, or they are malformed.
        """
        if not isinstance(data, dict) or not {"level", "tokens"} <= set(data):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"vocabulary JSON needs keys 'level' and 'tokens', got {keys}.")
        tokens = data["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ConfigError("vocabulary JSON 'tokens' must be a list of strings.")
        return cls(tokens, level=data["level"])


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ConfigError(f"text level must be 'char' or 'word'; got {level!r}.")


# --------------------------------------------------------------------------- corpus
@functools.lru_cache(maxsize=1)
def _topics() -> dict[str, tuple[str, ...]]:
    """Topic texts per split; sorted keys, every 10th (index % 10 == 0) held out."""
    from pydoc_data.topics import topics  # stdlib; deferred because it is ~0.5 MB of text

    keys = sorted(topics)
    test = tuple(topics[k] for i, k in enumerate(keys) if i % 10 == 0)
    train = tuple(topics[k] for i, k in enumerate(keys) if i % 10 != 0)
    return {"train": train, "test": test, "all": tuple(topics[k] for k in keys)}


def _corpus(split: str) -> str:
    return "\n\n".join(_topics()[split])


@functools.lru_cache(maxsize=8)
def _vocabulary(level: str, max_words: int) -> Vocabulary:
    """The vocabulary of the train topics (one object per level/size, shared by splits)."""
    return _from_corpus(_corpus("train"), level, max_words or None)


def _from_corpus(corpus: str, level: str, max_words: int | None) -> Vocabulary:
    if level == "char":
        return Vocabulary(sorted(set(corpus) - set(SPECIAL_TOKENS)), level="char")
    counts = Counter(_WORD.findall(corpus.lower()))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))  # ties: alphabetical
    return Vocabulary(ranked[:max_words] if max_words else ranked, level="word")


def build_vocabulary(source: str | os.PathLike[str] | Iterable[str], level: str = "char",
                     max_words: int | None = None) -> Vocabulary:
    """A vocabulary from a corpus file or from a list of tokens.

    From a file (read as UTF-8): every character it holds, sorted (``level="char"``), or its
    lower-cased words and punctuation marks by falling frequency, ties alphabetical, at most
    ``max_words`` of them (``level="word"``) — the rule the built-in ``text`` data set
    uses. From a list: its tokens in the order given, repeats dropped. Special tokens come
    first either way (``<pad>`` = 0, ``<unk>`` = 1, ``<mask>`` = 2). ``masked.lm`` keeps
    the tokens in its config (``vocab``), so the vocabulary is saved with the model.

    Args:
        source: A path to a text file, or an iterable of token strings.
        level: ``"char"`` or ``"word"``.
        max_words: For a file at word level, keep only the most frequent ones.

    Raises:
        ConfigError: bad level, a token that is not a string, or a file that is not text.
        FileNotFoundError: no such file.

    Examples:
        >>> build_vocabulary(["b", "a", "b"]).itos
        ['<pad>', '<unk>', '<mask>', 'b', 'a']
    """
    _check_level(level)
    if isinstance(source, (str, os.PathLike)):
        return _from_corpus(read_corpus(source), level, max_words)
    tokens = list(source)
    bad = [t for t in tokens if not isinstance(t, str)]
    if bad:
        raise ConfigError(f"build_vocabulary: expected a path or a list of token strings; "
                          f"got a list holding {type(bad[0]).__name__} {bad[0]!r}")
    return Vocabulary(dict.fromkeys(t for t in tokens if t not in SPECIAL_TOKENS), level=level)


def read_corpus(path: str | os.PathLike[str]) -> str:
    """A text file's contents (UTF-8), with a clear error for a file that is not text.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file is not UTF-8 text, or is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a UTF-8 text file, but there is no such file")
    try:
        corpus = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: expected UTF-8 text, got bytes that do not decode "
                          f"({exc.reason} at byte {exc.start})") from None
    if not corpus.strip():
        raise ConfigError(f"{path}: expected a text corpus, got an empty file")
    return corpus


@functools.lru_cache(maxsize=8)
def _ids(split: str, level: str, max_words: int) -> Tensor:
    vocab = _vocabulary(level, max_words)
    return torch.tensor(vocab.encode(_corpus(split)), dtype=torch.int64)


def text(
    split: str = "train", level: str = "char", block_size: int = 64, max_words: int = 5000
) -> TensorData:
    """English prose from CPython's ``pydoc_data.topics``, as blocks of token ids.

    The topics (keys sorted) are split once: every 10th topic (index % 10 == 0) is
    ``"test"``, the rest ``"train"``; ``"all"`` is every topic. Each split's topics are
    joined with ``"\\n\\n"``, tokenised, and cut into non-overlapping blocks of
    ``block_size`` ids (a trailing partial block is dropped). The vocabulary is built from
    the train topics only (so test text can hold ``<unk>``) and is the same object for
    every split: all characters seen, sorted, or the ``max_words`` most frequent lower-cased
    words and punctuation marks (ties broken alphabetically), after the special tokens.

    Sizes depend on the Python version's help topics. With CPython 3.11 (79 topics, 8 held
    out) and ``block_size=64``: ``level="char"`` gives 106 tokens (103 characters) and
    6,765 train / 502 test blocks; ``level="word"`` gives 3,459 tokens (every train word,
    fewer than the default ``max_words``) and 1,658 train / 122 test blocks.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        level: ``"char"`` or ``"word"``.
        block_size: Tokens per item.
        max_words: Vocabulary size cap for ``level="word"`` (special tokens not counted).

    Returns:
        TensorData with ``y`` int64 ``[n_blocks, block_size]``; the
        [`Vocabulary`][ebmkit.data.text.Vocabulary] is both ``meta["vocab"]`` and the
        attribute ``.vocab``.

    Raises:
        ConfigError: bad split, level, block_size or max_words, or a split shorter than
            one block.
    """
    if split not in _SPLITS:
        raise ConfigError(f"text split must be one of 'train', 'test', 'all'; got {split!r}.")
    _check_level(level)
    for arg, value in (("block_size", block_size), ("max_words", max_words)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"text {arg} must be a positive integer, got {value!r}.")
    if level == "char":
        max_words = 0  # unused: one cache entry for every char vocabulary
    vocab = _vocabulary(level, max_words)
    ids = _ids(split, level, max_words)
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        raise ConfigError(
            f"text split {split!r} holds {len(ids)} {level} tokens, fewer than one block of "
            f"block_size={block_size}; use a smaller block_size."
        )
    blocks = ids[: n_blocks * block_size].reshape(n_blocks, block_size).clone()
    data = TensorData(
        {"y": blocks},
        name="text",
        split=split,
        meta={"vocab": vocab, "level": level, "block_size": block_size},
    )
    data.vocab = vocab  # type: ignore[attr-defined]  # survives .to() via copy.copy
    return data
