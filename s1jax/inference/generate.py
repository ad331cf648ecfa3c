"""Public generation API: ``generate`` and ``generate_budget_sweep`` (see docs/contracts.md).

The host-side machinery both share lives in :mod:`s1jax.inference.host`; the sweep in :mod:`s1jax.inference.sweep`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from s1jax.inference import budget as bf
from s1jax.inference.budget import Budget
from s1jax.inference.engine import get_engine
from s1jax.inference.host import (
    GenerationResult,
    check_questions,
    chunks,
    host_rows,
    make_result,
    nl_table,
    prepare,
    progress_bar,
    render_prompts,
    run_batch,
)
from s1jax.inference.sampling import Sampling
from s1jax.inference.sweep import run_sweep

__all__ = ["GenerationResult", "generate", "generate_budget_sweep", "Budget", "Sampling"]


def _budgets(budget: Budget | Sequence[Budget], n: int) -> list[Budget]:
    if isinstance(budget, Budget):
        return [budget] * n
    budgets = list(budget)
    if len(budgets) != n:
        raise ValueError(f"got {len(budgets)} budgets for {n} questions (pass one Budget or one per question)")
    for b in budgets:
        if not isinstance(b, Budget):
            raise ValueError(f"budget entries must be s1jax.Budget, got {type(b).__name__}")
        if b.strings() != budgets[0].strings():
            raise ValueError("per-question budgets may differ only in their numeric fields (strings must agree)")
    return budgets


def generate(model: Any, tok: Any, questions: Sequence[str], budget: Budget | Sequence[Budget] = Budget(),
             sampling: Sampling = Sampling(), system: str | None = None, max_cache_len: int | None = None,
             batch_size: int | None = None, progress: bool = True, stream: bool | int | None = None,
             ) -> list[GenerationResult]:
    """Budget-forced generation for each question; see ``s1jax.inference.budget`` for the exact semantics.

    ``budget`` is one Budget or one per question (numeric fields may differ per row). ``system`` overrides the chat
    format's system message (``""``: none). ``stream=True`` (or a question index) prints that question's text as it
    is decoded. Batches larger than ``batch_size`` run in chunks, padded to one compiled shape. ``progress`` shows a
    bar over decode steps (the loop then runs in chunks of ``PROGRESS_CHUNK`` steps, same program, same results),
    plus one over questions when there are several chunks.
    """
    questions = check_questions(questions)
    budgets = _budgets(budget, len(questions))
    if not isinstance(sampling, Sampling):
        raise ValueError(f"sampling must be an s1jax.Sampling, got {type(sampling).__name__}")
    spec = bf.ForcingSpec.build(budgets[0], tok)
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl, spec, sampling)
    nl = nl_table(tok, model.config.vocab_size)
    texts = render_prompts(tok, questions, budgets[0], system)
    stream_q = None if stream is None or stream is False else (0 if stream is True else int(stream))
    rows, pieces = chunks(len(questions), batch_size)
    bar = progress_bar(len(questions), progress and len(pieces) > 1)
    results: list[GenerationResult] = []
    for lo, hi in pieces:
        batch = prepare(model, tok, texts[lo:hi], budgets[lo:hi], spec, sampling, lo, rows, max_cache_len)
        srow = stream_q - lo if stream_q is not None and lo <= stream_q < hi else None
        desc = "decode" if len(pieces) == 1 else f"decode {lo}-{hi}"
        state = run_batch(model, engine, batch, nl, stream_row=srow, tok=tok, progress=progress, desc=desc)
        out, r = host_rows(state)
        results += [make_result(tok, texts[lo + i], budgets[lo + i], out, r, i) for i in range(hi - lo)]
        if bar is not None:
            bar.update(hi - lo)
    if bar is not None:
        bar.close()
    return results


def generate_budget_sweep(model: Any, tok: Any, questions: Sequence[str], budgets: Sequence[int],
                          budget: Budget = Budget(), sampling: Sampling = Sampling(), system: str | None = None,
                          max_cache_len: int | None = None, batch_size: int | None = None, progress: bool = True,
                          ) -> dict[int, list[GenerationResult]]:
    """Think once up to ``max(budgets)`` and branch an answer at every smaller budget (``s1jax.inference.sweep``).

    For greedy decoding the result for each budget equals ``generate`` with ``max_thinking_tokens`` set to it.
    """
    return run_sweep(model, tok, check_questions(questions), budgets, budget, sampling, system, max_cache_len,
                     batch_size, progress)
