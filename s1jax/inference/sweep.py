"""Shared-prefix budget sweep: think once up to the largest budget, branch an answer at every smaller one.

Design (no thinking token is computed twice, no cache is copied):

1. One run with ``max_thinking_tokens = b_k``. Until a row keeps ``b_i`` thinking tokens, the ``b_i`` run and the
   ``b_k`` run are the same computation (the budget only enters through the cap check). At the first decision where
   a row has exactly ``b_i`` kept thinking tokens, the loop also computes the decision the ``b_i`` run takes there
   (queue ``"\\n<|im_start|>answer\\nFinal Answer:"``) and stores that row state as a snapshot: a few scalars, the
   last ``K`` fed tokens with their cache slots, the last output tokens, and the slot count at that moment. Rows
   that stop by themselves before ``b_i`` never snapshot: their ``b_i`` result is their ``b_k`` result.
2. The KV cache is append-only: the thinking run never rewrites a slot, it only invalidates the few most recent ones
   when it drops a stop sequence, and those are in the snapshot's tail. So after the run, the cache *is* every
   branch's prefix: branch ``i`` is the snapshot row state, with ``valid`` = (the final valid mask restricted to
   slots written before the snapshot) + (the snapshot's tail slots). Each branch then decodes its answer into the
   free slots after the thinking run (every branch reuses the same free region; stale entries there are invalid
   until overwritten), one branch after another, all rows of a branch together.

Sampling draws are counted per row, so for sampled decoding too a branch draws what an independent run would.
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
from s1jax.inference.engine import DecodeState, get_engine
from s1jax.inference import host as g

__all__ = ["Snapshots", "record_snapshots", "run_sweep"]


@struct.dataclass
class Snapshots:
    budgets: jax.Array  # [k] the smaller budgets
    taken: jax.Array  # [k, B] bool
    rows: bf.RowState  # every leaf stacked [k, B, ...]
    out_win: jax.Array  # [k, B, W] output tokens [out_len - W, out_len) after the capped decision
    index: jax.Array  # [k, B] cache slots written when the snapshot was taken


def empty_snapshots(budgets: list[int], rows: bf.RowState, window: int) -> Snapshots:
    k, b = len(budgets), rows.tok.shape[0]
    stack = jax.tree_util.tree_map(lambda x: jnp.zeros((k,) + x.shape, x.dtype), rows)
    return Snapshots(budgets=jnp.asarray(budgets, jnp.int32), taken=jnp.zeros((k, b), bool), rows=stack,
                     out_win=jnp.zeros((k, b, window), jnp.int32), index=jnp.zeros((k, b), jnp.int32))


def _window(spec: bf.ForcingSpec) -> int:
    return spec.tail_len + 1


@functools.lru_cache(maxsize=16)
def make_record(spec: bf.ForcingSpec):
    """The per-step hook the engine calls before each decision (a function of the static spec only)."""
    w = _window(spec)

    def record(snaps: Snapshots, rows: bf.RowState, out: jax.Array, cand: jax.Array, slot_next: jax.Array,
               nl_table: jax.Array) -> Snapshots:
        capped, fx = bf.decide(rows, cand, slot_next, spec, nl_table, force_cap=True)
        idx = fx["write_idx"][:, None] - (w - 1) + jnp.arange(w)[None, :]  # [B, W] ending at the new token
        win = jnp.take_along_axis(out, jnp.clip(idx, 0, out.shape[1] - 1), axis=1)
        win = win.at[:, -1].set(fx["write_tok"])
        hit = ((rows.phase == bf.THINKING)[None] & (rows.out_len[None] == snaps.budgets[:, None])
               & ~snaps.taken)  # [k, B]

        def put(stacked, new):
            h = hit.reshape(hit.shape + (1,) * (new.ndim - 1))
            return jnp.where(h, new[None], stacked)

        return Snapshots(
            budgets=snaps.budgets, taken=snaps.taken | hit,
            rows=jax.tree_util.tree_map(put, snaps.rows, capped),
            out_win=put(snaps.out_win, win),
            index=jnp.where(hit, slot_next, snaps.index),
        )

    return record


def _branch_state(final: DecodeState, cache: Any, valid0: jax.Array, index0: jax.Array, i: int) -> DecodeState:
    """The state of branch ``i``: snapshot rows (others DONE) over the thinking run's cache (donated, not copied).

    ``final`` is the thinking run's end state without its cache; ``valid0``/``index0`` its cache's valid mask and
    slot count (the branches before this one may have changed both)."""
    snaps: Snapshots = final.extra
    take = snaps.taken[i]
    snap_rows = jax.tree_util.tree_map(lambda x: x[i], snaps.rows)
    rows = jax.tree_util.tree_map(
        lambda s, f: jnp.where(take.reshape(take.shape + (1,) * (s.ndim - 1)), s, f), snap_rows, final.rows)
    rows = rows.replace(
        phase=jnp.where(take, snap_rows.phase, bf.DONE),
        # the pending token is fed at the first free slot, not where the thinking run fed its own next token
        tail_slot=rows.tail_slot.at[:, -1].set(jnp.where(take, index0, rows.tail_slot[:, -1])),
    )
    slots = jnp.arange(valid0.shape[1])
    tail = snap_rows.tail_slot[:, :-1]  # [B, K-1] kept fed tokens at snapshot time
    in_tail = jnp.any((slots[None, None, :] == tail[:, :, None]) & (tail[:, :, None] >= 0), axis=1)
    valid = (valid0 & (slots[None, :] < snaps.index[i][:, None])) | in_tail
    valid = jnp.where(take[:, None], valid, valid0)
    n = final.out.shape[1]
    w = snaps.out_win.shape[2]
    pos = snap_rows.out_len[:, None] - w + jnp.arange(w)[None, :]  # [B, W]
    b_idx = jnp.broadcast_to(jnp.arange(take.shape[0])[:, None], pos.shape)
    ok = take[:, None] & (pos >= 0)
    out = final.out.at[b_idx, jnp.clip(pos, 0, n - 1)].set(
        jnp.where(ok, snaps.out_win[i], final.out[b_idx, jnp.clip(pos, 0, n - 1)]))
    cache = cache.replace(valid=valid, index=jnp.asarray(index0, jnp.int32) + 0)
    return DecodeState(cache=cache, rows=rows, out=out, steps=jnp.zeros((), jnp.int32), extra=None)


@functools.lru_cache(maxsize=None)
def _branch_fn():
    donate = (1,) if jax.default_backend() != "cpu" else ()  # CPU cannot donate (it would only warn)
    return jax.jit(_branch_state, static_argnames=("i",), donate_argnums=donate)


def run_sweep(model: Any, tok: Any, questions: list[str], budgets: Any, budget: bf.Budget, sampling: Any,
              system: str | None, max_cache_len: int | None, batch_size: int | None,
              progress: bool) -> dict[int, list[g.GenerationResult]]:
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
    record = make_record(spec) if smaller else None
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl, spec, sampling, record)
    nl = g.nl_table(tok, model.config.vocab_size)
    texts = g.render_prompts(tok, questions, top, system)
    answer_slots = len(spec.newline) + len(spec.end_max) + top.max_answer_tokens + 1
    rows, chunks = g.chunks(len(questions), batch_size)
    bar = g.progress_bar(len(questions), progress and len(chunks) > 1)
    out: dict[int, list[g.GenerationResult]] = {b: [] for b in levels}
    for lo, hi in chunks:
        batch = g.prepare(model, tok, texts[lo:hi], [top] * (hi - lo), spec, sampling, lo, rows, max_cache_len,
                          extra_slots=answer_slots if smaller else 0)
        extra = empty_snapshots(smaller, batch.rows, _window(spec)) if smaller else None
        tag = "" if len(chunks) == 1 else f" {lo}-{hi}"
        final = g.run_batch(model, engine, batch, nl, extra=extra, progress=progress, desc=f"think{tag}")
        host_out, host_rows = g.host_rows(final)
        top_results = [g.make_result(tok, texts[lo + j], top, host_out, host_rows, j) for j in range(hi - lo)]
        out[levels[-1]] += top_results
        if smaller:
            taken = np.asarray(final.extra.taken)
            valid0 = jnp.array(final.cache.valid)  # copies: the branches donate the cache
            index0 = jnp.array(final.cache.index)
            if int(index0) + answer_slots > batch.max_len:
                raise ValueError(f"no room for the answer branches in a cache of {batch.max_len} slots; "
                                 "raise max_cache_len")
            small = final.replace(cache=None)
            cache = final.cache
            for i, b in enumerate(smaller):
                state = _branch_fn()(small, cache, valid0, np.int32(index0), i)
                state = g.decode(model, engine, state, nl, batch.max_len, hi - lo, progress,
                                 desc=f"answer@{b}{tag}")
                cache = state.cache
                b_out, b_rows = g.host_rows(state)
                sub = dataclasses.replace(top, max_thinking_tokens=b)
                out[b] += [g.make_result(tok, texts[lo + j], sub, b_out, b_rows, j) if taken[i, j] else top_results[j]
                           for j in range(hi - lo)]
        if bar is not None:
            bar.update(hi - lo)
    if bar is not None:
        bar.close()
    return out
