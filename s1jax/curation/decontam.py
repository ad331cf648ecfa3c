"""Decontamination: drop pool questions that share any word 8-gram with an evaluation question.

s1 decontaminated its 59K pool against MATH500, GPQA Diamond and AIME24 with 8-grams (Section 2.1). A single shared
8-gram of normalised words is enough to drop a row: it catches copies with different LaTeX spacing, case or
punctuation and light paraphrases that keep one long span. All eval 8-grams go into one hash set, so checking a
pool row costs O(words in the row).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from s1jax.curation.quality import field_text
from s1jax.curation.text import normalize_words, word_ngrams
from s1jax.curation.types import Drop
from s1jax.data.files import read_rows

__all__ = ["read_eval_questions", "load_eval_questions", "build_ngram_index", "decontaminate"]

_QUESTION_KEYS = ("problem", "question", "Question", "prompt")


def _question_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in _QUESTION_KEYS:
            if item.get(key):
                return str(item[key])
        return None
    for key in _QUESTION_KEYS:
        value = getattr(item, key, None)
        if value:
            return str(value)
    return None


def read_eval_questions(path: str) -> list[str]:
    """Questions from a local ``.jsonl`` / ``.json`` / ``.parquet`` file (fields ``problem`` or ``question``)."""
    if not os.path.isfile(path):
        raise ValueError(f"decontamination eval file not found: {path!r}")
    try:
        items: list[Any] = read_rows(path)
    except ValueError as e:
        raise ValueError(f"decontamination eval file {path!r}: {e}") from e
    questions = [q for q in (_question_of(it) for it in items) if q]
    if not questions:
        raise ValueError(f"decontamination eval file {path!r} has no 'problem'/'question' field in any row")
    return questions


def load_eval_questions(
    eval_sets: Iterable[str],
    data_dir: str = "",
    skip_missing: bool = False,
    use_benchmarks: bool = True,
    benchmark_loader: Callable[[str], list[str] | None] | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Resolve each eval set (a file path, or a benchmark name like ``aime24``) to its questions.

    A name is looked up as ``{data_dir}/{name}.jsonl`` (or .parquet/.json) first, so offline runs never touch the
    hub, then (if ``use_benchmarks``) through ``benchmark_loader(name)`` (the pipeline passes
    :func:`s1jax.curation.solvers.benchmark_questions`, which may use the hub).
    Returns ({set: number of questions}, all questions). A set that cannot be found raises, unless ``skip_missing``
    (then it is reported with count -1), because silently skipping decontamination would inflate eval scores.
    """
    counts: dict[str, int] = {}
    questions: list[str] = []
    for spec in eval_sets:
        found: list[str] | None = None
        if os.path.isfile(spec):
            found = read_eval_questions(spec)
        else:
            for ext in (".jsonl", ".parquet", ".json"):
                candidate = os.path.join(data_dir, spec + ext) if data_dir else ""
                if candidate and os.path.isfile(candidate):
                    found = read_eval_questions(candidate)
                    break
            if found is None and use_benchmarks and benchmark_loader is not None:
                found = benchmark_loader(spec)
        if found is None:
            if skip_missing:
                counts[spec] = -1
                continue
            raise ValueError(
                f"decontamination eval set {spec!r} not found: not a file, not {data_dir or '<data_dir>'}/{spec}.jsonl, "
                "and s1jax.eval.benchmarks could not load it (set decontam.skip_missing=True to continue without it)"
            )
        counts[spec] = len(found)
        questions.extend(found)
    return counts, questions


def build_ngram_index(questions: Iterable[str], n: int = 8, min_words: int = 4) -> set[tuple[str, ...]]:
    """All normalised word n-grams of the eval questions.

    An eval question shorter than ``n`` words (MATH500 has a few, e.g. "Simplify $\\frac{3}{\\sqrt{27}}$.") enters
    whole, so a pool question that contains it verbatim is still caught; ones under ``min_words`` words are too
    generic to flag anything and are left out.
    """
    index: set[tuple[str, ...]] = set()
    for q in questions:
        words = normalize_words(q)
        if len(words) >= min_words:
            index.update(word_ngrams(words, n))
    return index


def decontaminate(
    rows: Sequence[dict[str, Any]], index: set[tuple[str, ...]], n: int = 8, fields: Sequence[str] = ("question",)
) -> tuple[list[dict[str, Any]], list[Drop]]:
    """Drop rows with any n-gram of ``fields`` in ``index`` (or containing a whole short eval question); the drop
    detail shows the first overlapping span."""
    lengths = sorted({len(g) for g in index}, reverse=True)
    kept: list[dict[str, Any]] = []
    drops: list[Drop] = []
    for row in rows:
        hit = None
        for field in fields:
            words = normalize_words(field_text(row, field))
            for size in lengths:
                if len(words) < size:
                    continue
                hit = next((g for g in word_ngrams(words, size) if g in index), None)
                if hit is not None:
                    break
            if hit is not None:
                drops.append(Drop(row["_row_id"], "decontamination", "eval_ngram_overlap", f"{field}: {' '.join(hit)!r}"))
                break
        if hit is None:
            kept.append(row)
    return kept, drops
