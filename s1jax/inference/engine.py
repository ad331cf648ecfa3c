"""The jitted generation engine: prefill of a left-padded batch, then a ``lax.while_loop`` of decode steps.

Cache layout (``s1jax.model.kv_cache``): one buffer of ``S`` slots shared by all rows. Prefill writes the
right-aligned prompts into slots ``[0, P)``; decode step ``t`` feeds every live row's next token at slot ``P + t``.
Rows that are done, and tokens the budget machine drops (a stop sequence, or the token re-fed after an empty
``ignore_str``), leave invalid slots behind; RoPE positions are per row, so a dropped token is simply rewound.

Each loop iteration: one decoder call on ``[B, 1]`` tokens, one draw per row, one ``budget.decide`` (no host round
trip). The loop ends when every row is DONE, the cache is full, or a step limit is reached (streaming and progress
bars run the loop in chunks, carrying the state between calls; the step limit is traced, so that is the same
program). Programs are cached per (model, spec, sampling) and compiled once per (batch, prompt length, cache length)
bucket; the decode state (cache included) is donated.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from s1jax.inference import budget as bf
from s1jax.inference.sampling import Sampling, draw_keys, mask_vocab, sample_logits
from s1jax.model.api import positions_from_mask
from s1jax.model.kv_cache import KVCache, init_cache
from s1jax.model.params import build_decoder

__all__ = ["DecodeState", "Engine", "bucket", "initial_rows"]


@struct.dataclass
class DecodeState:
    cache: KVCache
    rows: bf.RowState
    out: jax.Array  # [B, N] recorded tokens after the prompt
    steps: jax.Array  # [] decode steps run
    extra: Any = None  # e.g. budget-sweep snapshots


def bucket(n: int, minimum: int = 1) -> int:
    """Next power of two >= n (>= minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def initial_rows(prompts: np.ndarray, mask: np.ndarray, spec: bf.ForcingSpec, keys: jax.Array, live: np.ndarray,
                 max_think: np.ndarray, min_think: np.ndarray, num_ignore: np.ndarray,
                 max_answer: np.ndarray) -> bf.RowState:
    """Row state before the first decision: the 'fed' tokens are the prompt (right-aligned in ``prompts``)."""
    b, p = prompts.shape
    k, q = spec.tail_len, spec.queue_len
    lengths = mask.sum(axis=1)
    tail_tok = np.full((b, k), -1, np.int32)
    tail_slot = np.full((b, k), -1, np.int32)
    for j in range(k):
        slot = p - k + j
        if slot >= 0:
            real = mask[:, slot].astype(bool)
            tail_tok[:, j] = np.where(real, prompts[:, slot], -1)
            tail_slot[:, j] = np.where(real, slot, -1)
    i32 = lambda a: jnp.asarray(a, jnp.int32)  # noqa: E731
    zeros = np.zeros((b,), np.int32)
    return bf.RowState(
        tok=i32(prompts[:, -1]), pos=i32(np.maximum(lengths - 1, 0)),
        phase=i32(np.where(live, bf.THINKING, bf.DONE)),
        queue=jnp.zeros((b, q), jnp.int32), q_len=i32(zeros), q_ptr=i32(zeros),
        out_len=i32(zeros), think_len=i32(np.full((b,), -1)), answer_count=i32(zeros), n_ignored=i32(zeros),
        hit_max=jnp.zeros((b,), bool), suppress=jnp.zeros((b,), bool), since_forced=i32(zeros),
        tail_tok=i32(tail_tok), tail_slot=i32(tail_slot), n_sampled=i32(zeros), finish=i32(zeros),
        stop_len=i32(zeros), key=keys, max_think=i32(max_think), min_think=i32(min_think),
        num_ignore=i32(num_ignore), max_answer=i32(max_answer),
    )


def apply_effects(state_cache: KVCache, out: jax.Array, fx: dict[str, jax.Array]) -> tuple[KVCache, jax.Array]:
    """Record decided tokens and invalidate dropped slots."""
    b, n = out.shape
    rows = jnp.arange(b)
    idx = jnp.clip(fx["write_idx"], 0, n - 1)
    out = out.at[rows, idx].set(jnp.where(fx["record"], fx["write_tok"], out[rows, idx]))
    inval = fx["invalid_slots"]  # [B, K]
    hit = jnp.any(jnp.arange(state_cache.max_len)[None, None, :] == inval[:, :, None], axis=1)  # [B, S]
    return state_cache.replace(valid=state_cache.valid & ~hit), out


RecordFn = Callable[[Any, bf.RowState, jax.Array, jax.Array, jax.Array], Any]


class Engine:
    """Compiled prefill/decode programs for one (model config, dtype, forcing spec, sampling)."""

    def __init__(self, config: Any, dtype: Any, attention_impl: str | None, spec: bf.ForcingSpec,
                 sampling: Sampling, record: RecordFn | None = None):
        self.config, self.spec, self.sampling, self.record = config, spec, sampling.static(), record
        self.attention_impl = attention_impl
        self.cache_dtype = jnp.dtype(dtype)
        # CPU cannot donate (it would only warn); elsewhere the state, cache included, is updated in place.
        on_cpu = jax.default_backend() == "cpu"
        self._prefill_jit = jax.jit(self._prefill, donate_argnames=() if on_cpu else ("cache",))
        self.decode = jax.jit(self._decode, donate_argnums=() if on_cpu else (1,))

    # -- pieces ----------------------------------------------------------------------------------------------------
    def _apply(self, params, ids, positions, mask, cache):
        module = build_decoder(self.config, dtype=self.cache_dtype, param_dtype=jax.tree_util.tree_leaves(params)[0].dtype,
                               attention_impl=self.attention_impl)
        return module.apply({"params": params}, ids, positions, attention_mask=mask, cache=cache)

    def _draw(self, rows: bf.RowState, logits: jax.Array) -> jax.Array:
        logits = mask_vocab(logits, self.spec.vocab_size)
        sup = bf.suppress_mask(rows, self.spec, logits.shape[-1])
        if sup is not None:
            logits = jnp.where(sup, -1e30, logits)
        return sample_logits(logits, draw_keys(rows.key, rows.n_sampled), self.sampling)

    def _step_decide(self, cache, rows, out, extra, logits, nl_table):
        cand = self._draw(rows, logits)
        if self.record is not None and extra is not None:
            extra = self.record(extra, rows, out, cand, cache.index, nl_table)
        new_rows, fx = bf.decide(rows, cand, cache.index, self.spec, nl_table)
        cache, out = apply_effects(cache, out, fx)
        return cache, new_rows, out, extra

    # -- programs --------------------------------------------------------------------------------------------------
    def prefill(self, params, prompts, mask, rows: bf.RowState, nl_table, extra, *, max_len: int) -> DecodeState:
        """Prefill a fresh cache of ``max_len`` slots.

        The empty cache is made here, outside the jitted program, and passed in: built inside, its all-invalid
        mask would be a compile-time constant and XLA would constant-fold the masked attention scores over it
        (seconds of compile time and a 'Constant folding' warning for every bucket)."""
        cache = init_cache(self.config, prompts.shape[0], max_len, self.cache_dtype)
        return self._prefill_jit(params, prompts, mask, rows, nl_table, extra, cache)

    def _prefill(self, params, prompts, mask, rows: bf.RowState, nl_table, extra, cache: KVCache) -> DecodeState:
        b, p = prompts.shape
        max_len = cache.max_len
        positions = positions_from_mask(mask)
        logits, cache = self._apply(params, prompts, positions, mask, cache)
        out = jnp.zeros((b, max_len - p + 1), jnp.int32)
        cache, rows, out, extra = self._step_decide(cache, rows, out, extra, logits[:, -1], nl_table)
        return DecodeState(cache=cache, rows=rows, out=out, steps=jnp.zeros((), jnp.int32), extra=extra)

    def _decode(self, params, state: DecodeState, nl_table, max_steps) -> DecodeState:
        max_len = state.cache.max_len

        def cond(s: DecodeState):
            return jnp.any(s.rows.phase != bf.DONE) & (s.cache.index < max_len) & (s.steps < max_steps)

        def body(s: DecodeState):
            r = s.rows
            live = r.phase != bf.DONE
            logits, cache = self._apply(params, r.tok[:, None], r.pos[:, None], live[:, None].astype(jnp.int32),
                                        s.cache)
            cache, rows, out, extra = self._step_decide(cache, r, s.out, s.extra, logits[:, 0], nl_table)
            return DecodeState(cache=cache, rows=rows, out=out, steps=s.steps + 1, extra=extra)

        return jax.lax.while_loop(cond, body, state)


def get_engine(config: Any, dtype: str, attention_impl: str | None, spec: bf.ForcingSpec, sampling: Sampling,
               record: RecordFn | None = None) -> Engine:
    """The cached engine (and so the compiled programs) for this key; the sampling seed is not part of it."""
    return _cached_engine(config, dtype, attention_impl, spec, sampling.static(), record)


@functools.lru_cache(maxsize=16)
def _cached_engine(config, dtype, attention_impl, spec, sampling, record) -> Engine:
    return Engine(config, dtype, attention_impl, spec, sampling, record)
