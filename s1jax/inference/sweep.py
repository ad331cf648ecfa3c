"""Shared-prefix budget sweep: think once up to the largest budget, branch an answer at every smaller one.

Design (no thinking token is computed twice, no cache is copied), on top of continuous batching:

1. A question runs with ``max_thinking_tokens = b_k``. Until its row keeps ``b_i`` thinking tokens, the ``b_i`` run
   and the ``b_k`` run are the same computation (the budget only enters through the cap check). At the first
   decision where the row has exactly ``b_i`` kept thinking tokens, the loop also computes the decision the ``b_i``
   run takes there (queue ``"\\n<|im_start|>answer\\nFinal Answer:"``) and stores that row state as a snapshot
   (``SweepRecorder``): a few scalars, the last ``K`` fed tokens with their cache slots, the last output tokens, and
   the row's slot count at that moment. Rows that stop by themselves before ``b_i`` never snapshot: their ``b_i``
   result is their ``b_k`` result.
2. A row's KV cache is append-only: the thinking run never rewrites a slot, it only invalidates the few most recent
   ones when it drops a stop sequence, and those are in the snapshot's tail. So when the row finishes, its cache
   *is* every branch's prefix. Before the slot is given to another question, the scheduler starts each taken
   branch in it (``Engine.branch``): the snapshot's row state, ``valid`` = the row's mask restricted to slots
   written before the snapshot + the snapshot's tail slots, answering into the free slots after the thinking run
   (every branch of the row reuses that region). Branch rows decode alongside other questions' rows.

Sampling draws are counted per row and keyed per question, so for sampled decoding too a branch draws what an
independent run would.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from s1jax.inference import budget as bf
from s1jax.inference import requests as rq
from s1jax.inference import hosts, scheduler
from s1jax.inference.engine import get_engine
from s1jax.inference.mesh import prepare
from s1jax.inference.results import GenerationResult, to_result

__all__ = ["Snapshots", "SweepRecorder", "run_sweep"]


@struct.dataclass
class Snapshots:
    budgets: jax.Array  # [k] the smaller budgets
    taken: jax.Array  # [k, B] bool
    rows: bf.RowState  # every leaf stacked [k, B, ...]
    out_win: jax.Array  # [k, B, W] output tokens [out_len - W, out_len) after the capped decision
    index: jax.Array  # [k, B] the row's cache slots written when the snapshot was taken


def empty_snapshots(budgets: list[int], rows: bf.RowState, window: int) -> Snapshots:
    k, b = len(budgets), rows.tok.shape[0]
    stack = jax.tree_util.tree_map(lambda x: jnp.zeros((k,) + x.shape, x.dtype), rows)
    return Snapshots(budgets=jnp.asarray(budgets, jnp.int32), taken=jnp.zeros((k, b), bool), rows=stack,
                     out_win=jnp.zeros((k, b, window), jnp.int32), index=jnp.zeros((k, b), jnp.int32))


def _window(spec: bf.ForcingSpec) -> int:
    return spec.tail_len + 1


class SweepRecorder:
    """The engine's per-decision hook for a sweep (a function of the static spec only; hashable by identity)."""

    def __init__(self, spec: bf.ForcingSpec):
        self.spec = spec

    def record(self, snaps: Snapshots, rows: bf.RowState, out: jax.Array, cand: jax.Array, slot_next: jax.Array,
               nl_table: jax.Array, mask: jax.Array) -> Snapshots:
        w = _window(self.spec)
        capped, fx = bf.decide(rows, cand, slot_next, self.spec, nl_table, force_cap=True)
        idx = fx.write_idx[:, None] - (w - 1) + jnp.arange(w)[None, :]  # [B, W] ending at the new token
        win = jnp.take_along_axis(out, jnp.clip(idx, 0, out.shape[1] - 1), axis=1)
        win = win.at[:, -1].set(fx.write_tok)
        hit = ((rows.phase == bf.THINKING)[None] & (rows.stats.out_len[None] == snaps.budgets[:, None])
               & ~snaps.taken & mask[None])  # [k, B]

        def put(stacked, new):
            h = hit.reshape(hit.shape + (1,) * (new.ndim - 1))
            return jnp.where(h, new[None], stacked)

        return Snapshots(
            budgets=snaps.budgets, taken=snaps.taken | hit,
            rows=jax.tree_util.tree_map(put, snaps.rows, capped),
            out_win=put(snaps.out_win, win),
            index=jnp.where(hit, jnp.broadcast_to(slot_next, hit.shape[1:])[None], snaps.index),
        )

    def reset(self, snaps: Snapshots, mask: jax.Array) -> Snapshots:
        return snaps.replace(taken=snaps.taken & ~mask[None])

    def gather(self, snaps: Snapshots, slot_ids: jax.Array) -> Snapshots:
        """The snapshots of row slots ``slot_ids`` (every per-row leaf has the row axis second: [k, B, ...])."""
        take = lambda x: jnp.take(x, slot_ids, axis=1)  # noqa: E731
        return Snapshots(budgets=snaps.budgets, taken=take(snaps.taken), rows=jax.tree_util.tree_map(take, snaps.rows),
                         out_win=take(snaps.out_win), index=take(snaps.index))


@functools.lru_cache(maxsize=16)
def make_recorder(spec: bf.ForcingSpec) -> SweepRecorder:
    return SweepRecorder(spec)


def run_sweep(model: Any, tok: Any, questions: list[str], budgets: Any, budget: bf.Budget, sampling: Any,
              system: str | None, max_cache_len: int | None, batch_size: int | None,
              progress: bool, mesh: Any = None) -> dict[int, list[GenerationResult]]:
    if not isinstance(budget, bf.Budget):
        raise ValueError("generate_budget_sweep takes one Budget (its max_thinking_tokens is replaced)")
    levels = sorted({int(b) for b in budgets})
    if not levels:
        raise ValueError("budgets is empty")
    if levels[0] < 0:
        raise ValueError(f"budgets must be >= 0, got {levels[0]}")
    top = dataclasses.replace(budget, max_thinking_tokens=levels[-1])
    spec = bf.ForcingSpec.build(top, tok)
    smaller = levels[:-1]
    recorder = make_recorder(spec) if smaller else None
    texts = rq.render_prompts(tok, questions, top, system)
    hosts.check_same_on_hosts([texts, levels, dataclasses.asdict(top), dataclasses.asdict(sampling)],
                              "questions and budgets")
    model, mesh = prepare(model, mesh)
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl, spec, sampling, recorder,
                        mesh=mesh)
    answer_slots = len(spec.newline) + len(spec.end_max) + top.max_answer_tokens + 1
    work = rq.build_workload(model, tok, texts, [top] * len(questions), spec, batch_size, max_cache_len,
                             extra_slots=answer_slots if smaller else 0, mesh=mesh)
    n = len(questions)
    out: dict[int, list[GenerationResult | None]] = {b: [None] * n for b in levels}
    # question -> (levels left, index0, the thinking run's output and valid mask)
    branches: dict[int, tuple[list[int], int, np.ndarray, np.ndarray]] = {}

    def next_branch(q: int) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        left, index0, top_out, top_valid = branches[q]
        if not left:
            del branches[q]
            return None
        return left.pop(0), index0, top_out, top_valid

    def on_finish(fin: scheduler.Finished) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        q = fin.question
        if fin.level < 0:
            res = to_result(tok, texts[q], top, fin.out, fin.stats)
            out[levels[-1]][q] = res
            taken = fin.taken if fin.taken is not None else np.zeros((len(smaller),), bool)
            for i, b in enumerate(smaller):
                if not taken[i]:
                    out[b][q] = res
            branches[q] = ([i for i in range(len(smaller)) if taken[i]], fin.index, fin.out.copy(), fin.valid.copy())
        else:
            sub = dataclasses.replace(top, max_thinking_tokens=smaller[fin.level])
            out[smaller[fin.level]][q] = to_result(tok, texts[q], sub, fin.out, fin.stats)
        return next_branch(q)

    extra = None
    if smaller:
        extra = empty_snapshots(smaller, scheduler.empty_rows(spec, work.slots), _window(spec))
    scheduler.run(model, engine, rq.nl_table(tok, model.config.vocab_size), work, sampling.seed, on_finish,
                  extra=extra, follow_ups=bool(smaller), progress=progress, desc="sweep")
    return out  # type: ignore[return-value]
