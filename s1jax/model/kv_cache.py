"""KV cache layout and update for decoding.

One fixed-size buffer per batch, shared slot index for all rows: prefill writes slots ``[0, P)`` (prompts
left-padded/right-aligned, so every row's last prompt token sits at slot ``P - 1``), and decode step ``t`` writes slot
``P + t`` for every row. New tokens attend to the cache read-only plus to themselves (two score blocks, one
softmax); their keys/values are written afterwards in one in-place update, so no step rewrites the buffer. A per-slot ``valid`` mask marks real tokens, so left padding, forced tokens and rows that have
finished all fit the same layout and the decode step is one fixed-shape program (no recompilation per length).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from s1jax.model.config import ModelConfig

__all__ = ["KVCache", "init_cache", "old_slots_mask", "append"]


@struct.dataclass
class KVCache:
    """Stacked over layers so the decoder's ``nn.scan`` consumes one slice per layer."""

    k: jax.Array  # [layers, batch, max_len, kv_heads, head_dim]
    v: jax.Array  # [layers, batch, max_len, kv_heads, head_dim]
    valid: jax.Array  # [batch, max_len] bool: the slot holds a real (non-pad) token
    index: jax.Array  # [] int32: next slot to write, the same for every row

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]


def init_cache(config: ModelConfig, batch_size: int, max_len: int, dtype: jnp.dtype = jnp.bfloat16) -> KVCache:
    shape = (config.num_layers, batch_size, max_len, config.num_kv_heads, config.head_dim)
    return KVCache(
        k=jnp.zeros(shape, dtype),
        v=jnp.zeros(shape, dtype),
        valid=jnp.zeros((batch_size, max_len), jnp.bool_),
        index=jnp.zeros((), jnp.int32),
    )


def old_slots_mask(cache: KVCache) -> jax.Array:
    """[batch, max_len] bool: slots written before this call that hold real tokens (all of them precede index)."""
    return cache.valid & (jnp.arange(cache.max_len) < cache.index)[None, :]


def append(cache: KVCache, k_new: jax.Array, v_new: jax.Array, token_mask: jax.Array) -> KVCache:
    """Write every layer's new keys/values at ``index`` with one in-place update, and advance the index.

    k_new, v_new: [layers, batch, new, kv_heads, head_dim]; token_mask: [batch, new] bool (False = padding).
    The layer scan returns only these new slots, so a decode step never copies the cache itself.
    """
    at = (0, 0, cache.index, 0, 0)
    return KVCache(
        k=jax.lax.dynamic_update_slice(cache.k, k_new.astype(cache.k.dtype), at),
        v=jax.lax.dynamic_update_slice(cache.v, v_new.astype(cache.v.dtype), at),
        valid=jax.lax.dynamic_update_slice(cache.valid, token_mask.astype(jnp.bool_), (0, cache.index)),
        index=cache.index + token_mask.shape[1],
    )
