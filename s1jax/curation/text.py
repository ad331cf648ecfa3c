"""Text helpers shared by the curation stages: one normalisation, so dedup and decontamination agree.

Decontamination and near-duplicate detection must see "the same words" the same way whatever the LaTeX spacing,
case or punctuation, otherwise a reformatted copy of an AIME problem slips through. Every stage that compares text
goes through :func:`normalize_words`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["normalize_words", "normalize_text", "word_ngrams", "stable_hash", "trace_text", "as_trajectories"]

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_words(text: str) -> list[str]:
    """Lower-case alphanumeric word tokens; punctuation, LaTeX markup characters and whitespace are separators.

    ``$x^2+1$`` and ``x^{2} + 1`` both become ``["x", "2", "1"]``, which is what an n-gram overlap check wants.
    """
    return [w for w in _NON_WORD.split(text.lower()) if w]


def normalize_text(text: str) -> str:
    """The normalised words joined by single spaces: the key for exact-duplicate detection."""
    return " ".join(normalize_words(text))


def word_ngrams(words: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    """Consecutive word n-grams; a text shorter than ``n`` words yields itself as one gram (so it is still comparable)."""
    if n <= 0:
        raise ValueError(f"n-gram size must be positive, got {n}")
    if len(words) < n:
        if words:
            yield tuple(words)
        return
    for i in range(len(words) - n + 1):
        yield tuple(words[i : i + n])


def stable_hash(gram: tuple[str, ...]) -> int:
    """A 32-bit hash that is the same in every process (Python's ``hash`` of a str is salted per process).

    Used for MinHash so near-duplicate decisions do not change between runs.
    """
    return zlib.crc32("\x1f".join(gram).encode("utf-8"))


def as_trajectories(value: Any) -> list[str]:
    """Coerce a ``thinking_trajectories`` cell to ``list[str]`` (pools store a list, a numpy array or a bare string)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [("" if v is None else str(v)) for v in list(value)]
    except TypeError:
        return [str(value)]


def trace_text(row: dict[str, Any]) -> str:
    """The full reasoning trace of a row: its trajectories joined by newlines (s1K rows hold one trajectory)."""
    return "\n".join(as_trajectories(row.get("thinking_trajectories")))
