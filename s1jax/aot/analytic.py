"""Analytic FLOPs and bytes of the s1 programs, to report next to what the compiler says.

``compiled.cost_analysis()["flops"]`` counts the body of a ``scan`` once (64 layers look like one), so FLOPs come from
the model shape instead: training uses the MFU convention of ``s1jax.train.metrics.flops_per_token`` (forward +
backward, rematerialisation not counted); inference counts the forward pass (a third of it). Bytes per device are
exact sums over the shards of each array (``NamedSharding.shard_shape``), before any padding the compiler adds.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from s1jax.model.config import ModelConfig
from s1jax.train.metrics import flops_per_token

__all__ = ["per_device_bytes", "train_step_flops", "prefill_flops", "decode_step_flops", "decode_step_bytes",
           "kv_cache_bytes"]


def per_device_bytes(tree: Any) -> int:
    """Bytes one device holds of a pytree of ``jax.ShapeDtypeStruct`` (with ``.sharding``) or arrays.

    With a sharding the size is that of one shard (the largest device's share); without, the whole array."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        shape = tuple(leaf.shape)
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and shape:
            shape = tuple(sharding.shard_shape(shape))
        total += math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return total


def train_step_flops(config: ModelConfig, global_batch: int, seq_len: int) -> float:
    """Model FLOPs of one optimizer step over ``global_batch`` sequences of ``seq_len`` positions (padding counts)."""
    return flops_per_token(config, seq_len) * global_batch * seq_len


def prefill_flops(config: ModelConfig, batch: int, prompt_len: int) -> float:
    """Forward FLOPs of a prefill of ``batch`` x ``prompt_len`` tokens (causal attention)."""
    return flops_per_token(config, prompt_len) / 3.0 * batch * prompt_len


def decode_step_flops(config: ModelConfig, batch: int, cache_len: int) -> float:
    """Forward FLOPs of one decode step: every row's new token through the matmuls, and attention over all
    ``cache_len`` slots (the engine's cached attention scores the whole buffer, valid or not)."""
    n = config.num_params - (0 if config.tie_word_embeddings else config.vocab_size * config.hidden_size)
    attention = 4.0 * config.num_layers * cache_len * config.num_heads * config.head_dim
    return batch * (2.0 * n + attention)


def kv_cache_bytes(config: ModelConfig, batch: int, cache_len: int, itemsize: int) -> int:
    """Keys + values of every layer for ``batch`` rows of ``cache_len`` slots (whole cache, all devices)."""
    return 2 * config.num_layers * batch * cache_len * config.num_kv_heads * config.head_dim * itemsize


def decode_step_bytes(param_bytes_per_device: int, cache_bytes_per_device: int) -> int:
    """HBM bytes one device reads per decode step: its parameters and its share of the cache (memory-bound)."""
    return param_bytes_per_device + cache_bytes_per_device
