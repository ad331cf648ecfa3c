"""Difficulty stage of s1K curation: keep questions that no reference model solves; measure trace length.

s1 (Section 2) evaluated Qwen2.5-7B-Instruct and Qwen2.5-32B-Instruct on every question, graded with Claude, and
kept only questions both models got wrong (51,581 -> 24,496); the reasoning-trace length (Qwen tokens) is the second
difficulty signal, used by Algorithm 1. Here:

- solve information per reference model comes from a precomputed column when the pool has one (bool, 0/1, solve
  rate > 0, "Yes"/"No"), otherwise from an injected ``solver(questions) -> responses`` graded by an injected
  ``grade_fn(response, reference) -> bool``;
- trace length comes from an injected ``count_tokens(text) -> int``.

Everything model-shaped is injected so the stage is testable without a model; :mod:`s1jax.curation.solvers` holds
the adapters onto s1jax.generate and s1jax.eval.grading, and :func:`make_token_counter` the one onto
s1jax.load_tokenizer (loaded on first use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import s1jax
from s1jax.curation.text import trace_text
from s1jax.curation.types import Drop

__all__ = [
    "Solver",
    "GradeFn",
    "CountTokens",
    "ReferenceModel",
    "solved_value",
    "whitespace_token_count",
    "make_token_counter",
    "apply_difficulty",
]

Solver = Callable[[list[str]], list[str]]
GradeFn = Callable[[str, str], bool]
CountTokens = Callable[[str], int]


@dataclasses.dataclass
class ReferenceModel:
    """One model whose success makes a question "too easy": a precomputed column and/or a solver."""

    name: str
    column: str = ""
    solver: Solver | None = None


def solved_value(value: Any) -> bool | None:
    """Interpret a precomputed grade cell: True/False, or None when unknown (missing, NaN, unparseable).

    Accepts bools, numbers (a solve *rate* counts as solved when > 0: the model solved it at least sometimes) and the
    strings s1K-1.1 and similar pools use ("Yes"/"No", "True"/"False", "correct"/"incorrect").
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if value != value:  # NaN
            return None
        return value > 0
    text = str(value).strip().lower()
    if text in ("yes", "true", "correct", "1", "y", "solved"):
        return True
    if text in ("no", "false", "incorrect", "0", "n", "unsolved", "wrong"):
        return False
    try:
        return float(text) > 0
    except ValueError:
        return None


def whitespace_token_count(text: str) -> int:
    """Fallback trace length: whitespace-separated words. Roughly 0.75x the Qwen BPE count on English+LaTeX traces,
    so thresholds such as s1's 5,600-token MATH cut must be rescaled when no tokenizer is configured."""
    return len(text.split())


def make_token_counter(tokenizer_path: str | None) -> CountTokens:
    """``count_tokens`` for a tokenizer (``s1jax.load_tokenizer(path).encode``), or whitespace words if no path.

    The tokenizer is loaded on the first call so building a pipeline never pays for it unless it runs.
    """
    if not tokenizer_path:
        return whitespace_token_count
    state: dict[str, Any] = {}

    def count_tokens(text: str) -> int:
        if "tok" not in state:
            state["tok"] = s1jax.load_tokenizer(tokenizer_path)
        return len(state["tok"].encode(text))

    return count_tokens


def apply_difficulty(
    rows: Sequence[dict[str, Any]],
    models: Sequence[ReferenceModel],
    grade_fn: GradeFn | None,
    count_tokens: CountTokens,
    *,
    short_circuit: bool = True,
    reference_field: str = "solution",
) -> tuple[list[dict[str, Any]], list[Drop], dict[str, dict[str, Any]]]:
    """Annotate every row with ``trace_tokens`` and ``solved_by``; keep rows no reference model solves.

    Per model: rows with a known value in its column use it; rows without one go to its solver (one batched call),
    graded against ``reference_field``. With ``short_circuit`` a later model only sees rows earlier models failed,
    which is what matters for "hard" and saves most of the 32B compute. A row that needs a solver when the model has
    none raises ValueError naming the model and column, rather than silently counting it as hard.
    Returns (hard rows, drops, per-model stats).
    """
    for row in rows:
        row["trace_tokens"] = int(count_tokens(trace_text(row)))
        row["solved_by"] = []
    stats: dict[str, dict[str, Any]] = {}
    for model in models:
        todo = [r for r in rows if not (short_circuit and r["solved_by"])]
        known: list[tuple[dict[str, Any], bool]] = []
        unknown: list[dict[str, Any]] = []
        for r in todo:
            v = solved_value(r.get(model.column)) if model.column else None
            (unknown.append(r) if v is None else known.append((r, v)))
        if unknown:
            if model.solver is None:
                where = f"column {model.column!r} is missing or empty for" if model.column else "no column given for"
                raise ValueError(
                    f"difficulty: reference model {model.name!r}: {where} {len(unknown)} rows and no solver/model_path "
                    "is configured to solve them"
                )
            if grade_fn is None:
                raise ValueError(f"difficulty: reference model {model.name!r} needs a grade_fn to grade its responses")
            responses = model.solver([str(r["question"]) for r in unknown])
            if len(responses) != len(unknown):
                raise ValueError(
                    f"difficulty: solver of {model.name!r} returned {len(responses)} responses for {len(unknown)} questions"
                )
            known.extend((r, bool(grade_fn(resp, str(r.get(reference_field) or "")))) for r, resp in zip(unknown, responses))
        for r, solved in known:
            if solved:
                r["solved_by"].append(model.name)
        stats[model.name] = {
            "checked": len(todo),
            "from_column": len(todo) - len(unknown),
            "from_solver": len(unknown),
            "solved": sum(solved for _, solved in known),
        }
    kept = [r for r in rows if not r["solved_by"]]
    drops = [
        Drop(r["_row_id"], "difficulty", "solved_by_reference", "solved by " + ", ".join(r["solved_by"]))
        for r in rows
        if r["solved_by"]
    ]
    return kept, drops, stats
