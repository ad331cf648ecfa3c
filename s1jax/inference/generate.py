"""Public generation API: ``generate``, ``generate_sweep`` and ``generate_budget_sweep`` (see docs/contracts.md).

Host side only: check and render the request (``requests``), run it through the continuous-batching engine
(``scheduler`` driving ``engine``), and turn finished rows into ``GenerationResult``s (``results``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from jax.sharding import Mesh

from s1jax.inference import budget as bf
from s1jax.inference import hosts
from s1jax.inference import requests as rq
from s1jax.inference import scheduler
from s1jax.inference.budget import Budget
from s1jax.inference.engine import get_engine
from s1jax.inference.mesh import prepare
from s1jax.inference.results import GenerationResult, to_result
from s1jax.inference.sampling import Sampling
from s1jax.inference.sweep import run_sweep

__all__ = ["GenerationResult", "generate", "generate_with_stats", "generate_sweep", "generate_budget_sweep", "Budget",
           "Sampling"]


def generate(model: Any, tok: Any, questions: Sequence[str], budget: Budget | Sequence[Budget] = Budget(),
             sampling: Sampling = Sampling(), system: str | None = None, max_cache_len: int | None = None,
             batch_size: int | None = None, progress: bool = True, stream: bool | int | None = None,
             mesh: Mesh | None = None) -> list[GenerationResult]:
    """Budget-forced generation for each question; see ``s1jax.inference.budget`` for the exact semantics.

    ``budget`` is one Budget or one per question (numeric fields may differ per row). ``system`` overrides the chat
    format's system message (``""``: none). ``stream=True`` (or a question index) prints that question's text as it
    is decoded. ``batch_size`` is the number of row slots decoded together (default: all questions; rounded up to a
    power of two): when a row finishes, the next question is prefilled into its slot and decoding goes on
    (continuous batching, ``s1jax.inference.scheduler``), so results do not depend on it. ``progress`` shows a bar
    over questions with the token rate (the loop then syncs every ``PROGRESS_CHUNK`` steps; same tokens).

    ``mesh`` (default: ``model.mesh``; a (data, fsdp, tensor) ``s1jax.sharding.make_mesh``) runs the engine sharded
    (``s1jax.inference.mesh``): weights tensor-parallel, rows and the KV cache over data x fsdp; same tokens. Under
    ``jax.distributed`` every host must call this with the same questions (checked) and gets the same results.
    """
    return generate_with_stats(model, tok, questions, budget, sampling, system, max_cache_len, batch_size, progress,
                               stream, mesh=mesh)[0]


def generate_with_stats(model: Any, tok: Any, questions: Sequence[str], budget: Budget | Sequence[Budget] = Budget(),
                        sampling: Sampling = Sampling(), system: str | None = None, max_cache_len: int | None = None,
                        batch_size: int | None = None, progress: bool = True, stream: bool | int | None = None,
                        schedule: str = "continuous", shrink: bool = True, min_slots: int | None = None,
                        mesh: Mesh | None = None,
                        ) -> tuple[list[GenerationResult], scheduler.RunStats]:
    """``generate`` plus what the engine computed (decode steps, row-steps, kept tokens, wall time).

    ``schedule="static"`` refills slots only when all are free (a static batch; for benchmarks); ``shrink=False``
    keeps every slot in the batch to the end, ``min_slots`` is the fewest it shrinks to (default
    ``scheduler.shrink_floor()``; ``scheduler.run``)."""
    questions = rq.check_questions(questions)
    budgets = rq.check_budgets(budget, len(questions))
    if not isinstance(sampling, Sampling):
        raise ValueError(f"sampling must be an s1jax.Sampling, got {type(sampling).__name__}")
    if schedule not in scheduler.SCHEDULES:
        raise ValueError(f"schedule must be one of {scheduler.SCHEDULES}, got {schedule!r}")
    stream_q = None if stream is None or stream is False else (0 if stream is True else int(stream))
    if stream_q is not None and not 0 <= stream_q < len(questions):
        raise ValueError(f"stream={stream} is not a question index (0..{len(questions) - 1})")
    spec = bf.ForcingSpec.build(budgets[0], tok)
    texts = rq.render_prompts(tok, questions, budgets[0], system)
    hosts.check_same_on_hosts([texts, [dataclasses.asdict(b) for b in budgets], dataclasses.asdict(sampling)],
                              "questions and budgets")
    model, mesh = prepare(model, mesh)
    work = rq.build_workload(model, tok, texts, budgets, spec, batch_size, max_cache_len, mesh=mesh)
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl, spec, sampling, mesh=mesh)
    results: list[GenerationResult | None] = [None] * len(questions)

    def on_finish(fin: scheduler.Finished) -> None:
        results[fin.question] = to_result(tok, texts[fin.question], budgets[fin.question], fin.out, fin.stats)

    stats = scheduler.run(model, engine, rq.nl_table(tok, model.config.vocab_size), work, sampling.seed, on_finish,
                          progress=progress, stream=stream_q, tok=tok, schedule=schedule, shrink=shrink,
                          min_slots=min_slots)
    return results, stats  # type: ignore[return-value]


def generate_sweep(model: Any, tok: Any, questions: Sequence[str], levels: Sequence[tuple[int, int]],
                   budget: Budget = Budget(), sampling: Sampling = Sampling(), system: str | None = None,
                   max_cache_len: int | None = None, batch_size: int | None = None, progress: bool = True,
                   mesh: Mesh | None = None) -> dict[tuple[int, int], list[GenerationResult]]:
    """Every ``(max_thinking_tokens, num_ignore)`` level for every question, from one shared run per question.

    The run thinks with the largest cap and the most ignored stops of all levels; each other level branches an
    answer where it would have stopped thinking (its cap, or a stop it accepts and the run ignores;
    ``s1jax.inference.sweep``). So a budget sweep and the "Wait" extrapolation (``num_ignore`` 0..N at one cap)
    cost one run at ``num_ignore=N`` plus an answer per level. ``budget`` gives every other field. For greedy
    decoding ``sweep[(m, n)]`` equals ``generate`` with ``max_thinking_tokens=m, num_ignore=n``. ``mesh``: as in
    ``generate``.
    """
    return run_sweep(model, tok, rq.check_questions(questions), levels, budget, sampling, system, max_cache_len,
                     batch_size, progress, mesh=mesh)


def generate_budget_sweep(model: Any, tok: Any, questions: Sequence[str], budgets: Sequence[int],
                          budget: Budget = Budget(), sampling: Sampling = Sampling(), system: str | None = None,
                          max_cache_len: int | None = None, batch_size: int | None = None, progress: bool = True,
                          mesh: Mesh | None = None) -> dict[int, list[GenerationResult]]:
    """Think once up to ``max(budgets)`` and branch an answer at every smaller budget: ``generate_sweep`` over the
    levels ``(b, budget.num_ignore)``.

    For greedy decoding the result for each budget equals ``generate`` with ``max_thinking_tokens`` set to it.
    ``mesh``: as in ``generate``.
    """
    sweep = generate_sweep(model, tok, questions, [(b, budget.num_ignore) for b in budgets], budget, sampling, system,
                           max_cache_len, batch_size, progress, mesh)  # the levels are checked there
    return {cap: results for (cap, _), results in sweep.items()}
