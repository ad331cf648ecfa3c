"""Token sampling: greedy, temperature, top-k, top-p (nucleus), with the vocabulary-padding mask.

Everything here runs inside the jitted decode loop. The structural choices (greedy or not, ``top_k``, whether top-p
is on) are static, so a ``Sampling`` is part of the compile key; the seed is not (it only feeds the per-row keys).

Randomness is per row and per draw: row ``i`` of a call uses ``fold_in(PRNGKey(seed), i)`` and its ``n``-th draw
``fold_in(row_key, n)``. A row's tokens therefore depend only on the seed, its index in the call and its own history,
not on which other rows share its batch or how many decode steps have run (branches of a budget sweep draw exactly
what an independent run would).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Sampling", "mask_vocab", "row_keys", "draw_keys", "sample_logits"]

NEG_INF = -1e30  # finite so that softmax over a fully masked row stays NaN-free


@dataclasses.dataclass(frozen=True)
class Sampling:
    """``temperature=0`` is greedy (argmax); ``top_k=0`` and ``top_p=1`` disable those filters."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.temperature >= 0.0):
            raise ValueError(f"Sampling.temperature must be >= 0, got {self.temperature}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"Sampling.top_p must be in (0, 1], got {self.top_p}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ValueError(f"Sampling.top_k must be a non-negative int, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def static(self) -> "Sampling":
        """The part that shapes the compiled program (the seed only reaches it as data)."""
        return dataclasses.replace(self, seed=0)


def mask_vocab(logits: jax.Array, vocab_size: int) -> jax.Array:
    """Mask ids ``>= vocab_size`` (the embedding's padding rows). logits: [..., V]."""
    if vocab_size >= logits.shape[-1]:
        return logits
    ids = jnp.arange(logits.shape[-1])
    return jnp.where(ids < vocab_size, logits, NEG_INF)


def row_keys(seed: int, row_ids: np.ndarray) -> jax.Array:
    """Raw uint32 keys [B, 2]: one independent stream per (seed, global row index)."""
    base = jax.random.PRNGKey(int(seed))
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(row_ids, jnp.uint32))


def draw_keys(keys: jax.Array, counters: jax.Array) -> jax.Array:
    """The key of each row's next draw: ``fold_in(row_key, number of draws so far)``."""
    return jax.vmap(jax.random.fold_in)(keys, counters.astype(jnp.uint32))


def sample_logits(logits: jax.Array, keys: jax.Array, sampling: Sampling) -> jax.Array:
    """logits [B, V] fp32 (already masked) -> token ids [B] int32. ``keys``: [B, 2] raw keys."""
    if sampling.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / jnp.float32(sampling.temperature)
    vocab = logits.shape[-1]
    if sampling.top_k > 0 and sampling.top_k < vocab:
        vals, idx = jax.lax.top_k(logits, int(sampling.top_k))  # [B, k], descending
    elif sampling.top_p < 1.0:
        idx = jnp.argsort(-logits, axis=-1)
        vals = jnp.take_along_axis(logits, idx, axis=-1)
    else:
        choice = jax.vmap(jax.random.categorical)(keys, logits)
        return choice.astype(jnp.int32)
    if sampling.top_p < 1.0:
        probs = jax.nn.softmax(vals, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each candidate
        keep = before < sampling.top_p
        keep = keep.at[:, 0].set(True)
        vals = jnp.where(keep, vals, NEG_INF)
    # Masked ids keep NEG_INF through top_k/sort, so they are never drawn unless every id is masked.
    vals = jnp.where(vals <= NEG_INF / 2, -jnp.inf, vals)
    choice = jax.vmap(jax.random.categorical)(keys, vals)  # [B] index into the candidates
    return jnp.take_along_axis(idx, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)
