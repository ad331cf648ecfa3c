"""KV cache layout and update for decoding.

One fixed-size buffer of ``max_len`` slots per row. ``index`` is the next slot to write, either one scalar shared by
all rows (the batch layout of ``forward``-style prefill: prompts left-padded/right-aligned, step ``t`` writes slot
``P + t`` for every row) or one counter per row (the continuous-batching layout of ``s1jax.inference.engine``: each
row is its own sequence, prompts left-aligned at slot 0, a row advances only when it feeds a real token, and a row
can be refilled with a new prompt without touching the others).

New tokens attend to the cache read-only plus to themselves; their keys/values are written afterwards in one
in-place update, so no step rewrites the buffer. A per-slot ``valid`` mask marks real tokens, so padding, dropped
(budget-forcing) tokens and finished rows all fit the same layout and a decode step is one fixed-shape program.
Attention reads only slots ``[0, read_len)`` with ``read_len`` the longest written length among the rows that feed
a real token (``read_length``), so its cost follows what is written, not the capacity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from s1jax.model.config import ModelConfig

__all__ = ["KVCache", "init_cache", "old_slots_mask", "read_length", "append"]


@struct.dataclass
class KVCache:
    """Stacked over layers so the decoder's ``nn.scan`` consumes one slice per layer."""

    k: jax.Array  # [layers, batch, max_len, kv_heads, head_dim]
    v: jax.Array  # [layers, batch, max_len, kv_heads, head_dim]
    valid: jax.Array  # [batch, max_len] bool: the slot holds a real (non-pad) token
    index: jax.Array  # [] int32 shared, or [batch] int32 per row: next slot to write

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def per_row(self) -> bool:
        return self.index.ndim == 1


def init_cache(config: ModelConfig, batch_size: int, max_len: int, dtype: jnp.dtype = jnp.bfloat16,
               per_row: bool = False) -> KVCache:
    shape = (config.num_layers, batch_size, max_len, config.num_kv_heads, config.head_dim)
    return KVCache(
        k=jnp.zeros(shape, dtype),
        v=jnp.zeros(shape, dtype),
        valid=jnp.zeros((batch_size, max_len), jnp.bool_),
        index=jnp.zeros((batch_size,) if per_row else (), jnp.int32),
    )


def _row_index(cache: KVCache) -> jax.Array:
    """[batch] next slot of every row."""
    return jnp.broadcast_to(cache.index, (cache.batch_size,))


def old_slots_mask(cache: KVCache) -> jax.Array:
    """[batch, max_len] bool: slots written before this call that hold real tokens (all of them precede index)."""
    return cache.valid & (jnp.arange(cache.max_len)[None, :] < _row_index(cache)[:, None])


def read_length(cache: KVCache, token_mask: jax.Array) -> jax.Array:
    """[] int32: slots the attention of this call must read, the longest written length among rows feeding a real
    token (rows that feed only padding, e.g. finished ones, do not extend it; their outputs are discarded)."""
    feeding = jnp.any(token_mask, axis=-1)  # [batch]
    return jnp.max(jnp.where(feeding, _row_index(cache), 0)).astype(jnp.int32)


def append(cache: KVCache, k_new: jax.Array, v_new: jax.Array, token_mask: jax.Array) -> KVCache:
    """Write every layer's new keys/values at ``index`` with one in-place update, and advance the index.

    k_new, v_new: [layers, batch, new, kv_heads, head_dim]; token_mask: [batch, new] bool (False = padding).
    The layer scan returns only these new slots, so a decode step never copies the cache itself. With a per-row
    index, a row writes only if it feeds a real token, and advances by its number of real tokens (rows feed
    left-aligned tokens: padding only at the end); writes past ``max_len`` are dropped.
    """
    token_mask = token_mask.astype(jnp.bool_)
    if not cache.per_row:
        at = (0, 0, cache.index, 0, 0)
        return KVCache(
            k=jax.lax.dynamic_update_slice(cache.k, k_new.astype(cache.k.dtype), at),
            v=jax.lax.dynamic_update_slice(cache.v, v_new.astype(cache.v.dtype), at),
            valid=jax.lax.dynamic_update_slice(cache.valid, token_mask, (0, cache.index)),
            index=cache.index + token_mask.shape[1],
        )
    batch, new = token_mask.shape
    slots = cache.index[:, None] + jnp.arange(new)[None, :]  # [batch, new]
    slots = jnp.where(token_mask, slots, cache.max_len)  # out of range: dropped
    rows = jnp.broadcast_to(jnp.arange(batch)[:, None], slots.shape)
    return KVCache(
        k=cache.k.at[:, rows, slots].set(k_new.astype(cache.k.dtype), mode="drop"),
        v=cache.v.at[:, rows, slots].set(v_new.astype(cache.v.dtype), mode="drop"),
        valid=cache.valid.at[rows, slots].set(True, mode="drop"),
        index=cache.index + jnp.sum(token_mask, axis=1, dtype=jnp.int32),
    )
