"""Shared-prefix sweeps: think once with the loosest limits, branch an answer wherever a tighter level stops.

A *level* is a pair ``(max_thinking_tokens, num_ignore)``: the budget sweep's levels differ in the cap, the "Wait"
extrapolation's in the number of ignored stops, and one run can hold both. The *trunk* runs with the largest cap and
the most ignored stops of all levels. Design (no thinking token is computed twice, no cache is copied), on top of
continuous batching:

1. A level's run and the trunk are the same computation until the first decision where the level leaves thinking
   and the trunk does not: the level reaches its cap (the trunk's is larger), or a stop arrives that the trunk
   ignores and the level accepts (it has ignored its ``num_ignore`` already). Both limits only enter through those
   two checks, and a level is never looser than the trunk, so the trunk leaving thinking means the level leaves
   the same way at the same step. At every decision the loop also computes each level's decision (``bf.decide``
   with the level's limits, vmapped over levels) and, where the level diverges, stores that row state as a
   snapshot (``SweepRecorder``): a few scalars, the last ``K`` fed tokens with their cache slots, the last output
   tokens, and the row's slot count at that moment. A level that never diverges has the trunk's result.
2. A row's KV cache is append-only: the trunk never rewrites a slot, it only invalidates the few most recent ones
   when it drops a stop sequence (or, with an empty ``ignore_str``, re-feeds the token before it), and those are
   in the snapshot's tail. So when the row finishes, its cache *is* every branch's prefix. Before the slot is given
   to another question, the scheduler starts each taken branch in it (``Engine.branch``): the snapshot's row state,
   ``valid`` = the row's mask restricted to slots written before the snapshot + the snapshot's tail slots,
   answering into the free slots after the trunk (every branch of the row reuses that region). Branch rows decode
   alongside other questions' rows.

Sampling draws are counted per row and keyed per question, so for sampled decoding too a branch draws what an
independent run would. The s1 "Wait" sweep (num_ignore 0..6 at one cap) thus costs one run at num_ignore=6 plus
an answer per level, and shares it with the budget sweep's thinking.
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
from s1jax.inference.engine import bucket, get_engine
from s1jax.inference.mesh import prepare
from s1jax.inference.results import GenerationResult, to_result

__all__ = ["Level", "Snapshots", "SweepRecorder", "check_levels", "run_sweep"]


Level = tuple[int, int]  # (max_thinking_tokens, num_ignore)
# Snapshot slots are padded to a power of two >= this with copies of the trunk's level (a level equal to the trunk
# never leaves it, so never snapshots): sweeps with up to 8 branch levels (the demo's base and fine-tuned evals, a
# budget sweep with or without Wait points) share every compiled program.
MIN_SNAPSHOT_LEVELS = 8


@struct.dataclass
class Snapshots:
    max_think: jax.Array  # [k] each branch level's thinking cap
    num_ignore: jax.Array  # [k] and its ignored stops
    taken: jax.Array  # [k, B] bool
    rows: bf.RowState  # every leaf stacked [k, B, ...]
    out_win: jax.Array  # [k, B, W] output tokens [out_len - W, out_len) after the level's decision
    index: jax.Array  # [k, B] the row's cache slots written when the snapshot was taken


def empty_snapshots(levels: list[Level], rows: bf.RowState, window: int) -> Snapshots:
    k, b = len(levels), rows.tok.shape[0]
    stack = jax.tree_util.tree_map(lambda x: jnp.zeros((k,) + x.shape, x.dtype), rows)
    return Snapshots(max_think=jnp.asarray([m for m, _ in levels], jnp.int32),
                     num_ignore=jnp.asarray([n for _, n in levels], jnp.int32), taken=jnp.zeros((k, b), bool),
                     rows=stack, out_win=jnp.zeros((k, b, window), jnp.int32), index=jnp.zeros((k, b), jnp.int32))


def _window(spec: bf.ForcingSpec) -> int:
    return spec.tail_len + 1


class SweepRecorder:
    """The engine's per-decision hook for a sweep (a function of the static spec only; hashable by identity)."""

    def __init__(self, spec: bf.ForcingSpec):
        self.spec = spec

    def record(self, snaps: Snapshots, rows: bf.RowState, new_rows: bf.RowState, out: jax.Array, cand: jax.Array,
               slot_next: jax.Array, nl_table: jax.Array, mask: jax.Array) -> Snapshots:
        w = _window(self.spec)

        def level_decision(max_think: jax.Array, num_ignore: jax.Array) -> tuple[bf.RowState, bf.Effects]:
            limits = rows.limits.replace(max_think=jnp.broadcast_to(max_think, rows.limits.max_think.shape),
                                         num_ignore=jnp.broadcast_to(num_ignore, rows.limits.num_ignore.shape))
            return bf.decide(rows.replace(limits=limits), cand, slot_next, self.spec, nl_table)

        level_rows, fx = jax.vmap(level_decision)(snaps.max_think, snaps.num_ignore)  # leaves [k, B, ...]
        idx = fx.write_idx[:, :, None] - (w - 1) + jnp.arange(w)  # [k, B, W] ending at the level's new token
        win = jax.vmap(lambda i: jnp.take_along_axis(out, jnp.clip(i, 0, out.shape[1] - 1), axis=1))(idx)
        win = win.at[:, :, -1].set(fx.write_tok)
        thinking = (rows.phase == bf.THINKING) & (new_rows.phase == bf.THINKING) & mask  # [B] the trunk goes on
        hit = thinking[None] & (level_rows.phase != bf.THINKING) & ~snaps.taken  # [k, B] the level leaves here

        def put(stacked, new):
            h = hit.reshape(hit.shape + (1,) * (new.ndim - 2))
            return jnp.where(h, new, stacked)

        return Snapshots(
            max_think=snaps.max_think, num_ignore=snaps.num_ignore, taken=snaps.taken | hit,
            rows=jax.tree_util.tree_map(put, snaps.rows, level_rows),
            out_win=put(snaps.out_win, win),
            index=jnp.where(hit, jnp.broadcast_to(slot_next, hit.shape[1:])[None], snaps.index),
        )

    def reset(self, snaps: Snapshots, mask: jax.Array) -> Snapshots:
        return snaps.replace(taken=snaps.taken & ~mask[None])

    def gather(self, snaps: Snapshots, slot_ids: jax.Array) -> Snapshots:
        """The snapshots of row slots ``slot_ids`` (every per-row leaf has the row axis second: [k, B, ...])."""
        take = lambda x: jnp.take(x, slot_ids, axis=1)  # noqa: E731
        return snaps.replace(taken=take(snaps.taken), rows=jax.tree_util.tree_map(take, snaps.rows),
                             out_win=take(snaps.out_win), index=take(snaps.index))


@functools.lru_cache(maxsize=16)
def make_recorder(spec: bf.ForcingSpec) -> SweepRecorder:
    return SweepRecorder(spec)


def check_levels(levels: Any) -> list[Level]:
    """``levels`` as sorted unique ``(max_thinking_tokens, num_ignore)`` pairs of non-negative ints."""
    out = set()
    for level in levels:
        try:
            cap, ignore = level
        except (TypeError, ValueError):
            raise ValueError(f"a sweep level is (max_thinking_tokens, num_ignore), got {level!r}") from None
        for name, v in (("max_thinking_tokens", cap), ("num_ignore", ignore)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"sweep level {level!r}: {name} must be an int >= 0, got {v!r}")
        out.add((int(cap), int(ignore)))
    if not out:
        raise ValueError("the sweep has no levels")
    return sorted(out)


def run_sweep(model: Any, tok: Any, questions: list[str], levels: Any, budget: bf.Budget, sampling: Any,
              system: str | None, max_cache_len: int | None, batch_size: int | None,
              progress: bool, mesh: Any = None) -> dict[Level, list[GenerationResult]]:
    """Every ``(max_thinking_tokens, num_ignore)`` level of ``levels`` for every question, from one trunk per
    question; ``budget`` gives every other field. -> {level: [result per question]}."""
    if not isinstance(budget, bf.Budget):
        raise ValueError("a sweep takes one Budget (its max_thinking_tokens and num_ignore are replaced)")
    levels = check_levels(levels)
    trunk_level = (max(m for m, _ in levels), max(n for _, n in levels))
    trunk = dataclasses.replace(budget, max_thinking_tokens=trunk_level[0], num_ignore=trunk_level[1])
    spec = bf.ForcingSpec.build(trunk, tok)
    branch_levels = [lv for lv in levels if lv != trunk_level]
    recorder = make_recorder(spec) if branch_levels else None
    texts = rq.render_prompts(tok, questions, trunk, system)
    hosts.check_same_on_hosts([texts, levels, dataclasses.asdict(trunk), dataclasses.asdict(sampling)],
                              "questions and budgets")
    model, mesh = prepare(model, mesh)
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl, spec, sampling, recorder,
                        mesh=mesh)
    answer_slots = len(spec.newline) + len(spec.end_max) + trunk.max_answer_tokens + 1
    work = rq.build_workload(model, tok, texts, [trunk] * len(questions), spec, batch_size, max_cache_len,
                             extra_slots=answer_slots if branch_levels else 0, mesh=mesh)
    n = len(questions)
    out: dict[Level, list[GenerationResult | None]] = {lv: [None] * n for lv in levels}
    # question -> (branch levels left, index0, the trunk's output and valid mask)
    branches: dict[int, tuple[list[int], int, np.ndarray, np.ndarray]] = {}

    def level_budget(level: Level) -> bf.Budget:
        return dataclasses.replace(trunk, max_thinking_tokens=level[0], num_ignore=level[1])

    def next_branch(q: int) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        left, index0, trunk_out, trunk_valid = branches[q]
        if not left:
            del branches[q]
            return None
        return left.pop(0), index0, trunk_out, trunk_valid

    def on_finish(fin: scheduler.Finished) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        q = fin.question
        if fin.level < 0:
            res = to_result(tok, texts[q], trunk, fin.out, fin.stats)
            if trunk_level in out:
                out[trunk_level][q] = res
            taken = fin.taken[:len(branch_levels)] if fin.taken is not None else np.zeros((len(branch_levels),), bool)
            for i, lv in enumerate(branch_levels):
                if not taken[i]:
                    out[lv][q] = res  # the level never left the trunk: the same run
            branches[q] = ([i for i in range(len(branch_levels)) if taken[i]], fin.index, fin.out.copy(),
                           fin.valid.copy())
        else:
            lv = branch_levels[fin.level]
            out[lv][q] = to_result(tok, texts[q], level_budget(lv), fin.out, fin.stats)
        return next_branch(q)

    extra = None
    if branch_levels:
        padded = branch_levels + [trunk_level] * (bucket(len(branch_levels), MIN_SNAPSHOT_LEVELS) - len(branch_levels))
        extra = empty_snapshots(padded, scheduler.empty_rows(spec, work.slots), _window(spec))
    scheduler.run(model, engine, rq.nl_table(tok, model.config.vocab_size), work, sampling.seed, on_finish,
                  extra=extra, follow_ups=bool(branch_levels), progress=progress, desc="sweep")
    return out  # type: ignore[return-value]
