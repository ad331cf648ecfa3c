"""KV cache layout and update for decoding.

One fixed-size buffer per batch, shared slot index for all rows: prefill writes slots ``[0, P)`` (prompts
left-padded/right-aligned, so every row's last prompt token sits at slot ``P - 1``), and decode step ``t`` writes slot
``P + t`` for every row. A per-slot ``valid`` mask marks real tokens, so left padding, forced tokens and rows that have
finished all fit the same layout and the decode step is one fixed-shape program (no recompilation per length).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from s1jax.model.config import ModelConfig

__all__ = ["KVCache", "init_cache", "cache_attention_mask", "write_layer"]


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


def cache_attention_mask(cache: KVCache, token_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mark the new tokens' slots and build the attention mask of the new queries over all slots.

    token_mask: [batch, new] bool, True for real tokens being written at slots ``index .. index+new-1``.
    Returns (valid [batch, max_len], mask [batch, 1, new, max_len]).
    """
    new = token_mask.shape[1]
    valid = jax.lax.dynamic_update_slice(cache.valid, token_mask.astype(jnp.bool_), (0, cache.index))
    query_slot = cache.index + jnp.arange(new)  # [new]
    key_slot = jnp.arange(cache.max_len)  # [max_len]
    causal = key_slot[None, :] <= query_slot[:, None]  # [new, max_len]
    mask = valid[:, None, None, :] & causal[None, None, :, :]
    return valid, mask


def write_layer(k_cache: jax.Array, v_cache: jax.Array, k: jax.Array, v: jax.Array, index: jax.Array):
    """Write one layer's new keys/values ([batch, new, kv_heads, head_dim]) at ``index``."""
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, index, 0, 0))
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, index, 0, 0))
    return k_cache, v_cache
