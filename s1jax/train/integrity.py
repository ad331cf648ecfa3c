"""Checksums that make a checkpoint verifiable: computed from the train state when it is saved, recomputed from the
restored state, compared before the state is trusted.

Per array, two 32-bit sums over the array's bits read as unsigned words ``w[i]`` (``i`` = row-major flat index):
``s1 = sum_i w[i]`` and ``s2 = sum_i w[i] * (2 i + 1)``, both modulo 2**32. Modular integer sums are exact and
order-free, so the result does not depend on the sharding, the device count or the reduction order (a checkpoint
saved on 16 devices verifies on 8). Any single flipped bit changes ``w[i]`` by ``+-2**k`` and so ``s1`` by a non-zero
amount mod 2**32 (and ``s2`` by ``+-2**k`` times an odd number, also non-zero); the position weights of ``s2`` also
catch swapped or shifted elements. The sums run on the devices as one jitted reduction over the sharded arrays:
no host copy, no gather, one read of the state.

The JSON metadata item is covered by a SHA-256 of its canonical form (``meta_digest``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["tree_checksums", "meta_digest", "mismatches", "INTEGRITY_KEY", "ALGORITHM"]

INTEGRITY_KEY = "integrity"  # key of the checksums inside the checkpoint's meta item
ALGORITHM = "u32-sum+weighted-sum/v1"


def _words(x: jax.Array) -> jax.Array:
    """The bits of ``x`` as uint32 words, same shape (a trailing axis of 2 for 64-bit types)."""
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    bits = jnp.dtype(x.dtype).itemsize * 8
    if bits == 32:
        return jax.lax.bitcast_convert_type(x, jnp.uint32)
    if bits == 16:
        return jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32)
    if bits == 8:
        return jax.lax.bitcast_convert_type(x, jnp.uint8).astype(jnp.uint32)
    if bits == 64:
        return jax.lax.bitcast_convert_type(x, jnp.uint32)  # [..., 2]
    raise TypeError(f"no checksum for dtype {x.dtype}")


def _sums(x: jax.Array) -> jax.Array:
    """uint32 [2]: (s1, s2) of the module docstring. No reshape, so a sharded array is reduced in place."""
    w = _words(x)
    if w.ndim == 0:
        w = w[None]
    index = jnp.zeros(w.shape, jnp.uint32)
    stride = 1
    for axis in range(w.ndim - 1, -1, -1):  # row-major flat index, built from iotas (wraps mod 2**32)
        index = index + jax.lax.broadcasted_iota(jnp.uint32, w.shape, axis) * jnp.uint32(stride % 2**32)
        stride *= w.shape[axis]
    s1 = jnp.sum(w, dtype=jnp.uint32)
    s2 = jnp.sum(w * (index * jnp.uint32(2) + jnp.uint32(1)), dtype=jnp.uint32)
    return jnp.stack([s1, s2])


def _replicated(tree: Any) -> Any:
    """A replicated output sharding on the mesh of the first leaf (so every process can read the sums), or None."""
    for leaf in jax.tree_util.tree_leaves(tree):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding):
            return NamedSharding(sharding.mesh, PartitionSpec())
    return None


_JITTED: dict[Any, Any] = {}


def _sums_fn(out_sharding: Any) -> Any:
    """One jitted ``list of arrays -> list of uint32 [2]`` per output sharding (jit caches per shapes inside)."""
    if out_sharding not in _JITTED:
        _JITTED[out_sharding] = jax.jit(
            lambda xs: [_sums(x) for x in xs],
            out_shardings=None if out_sharding is None else out_sharding,  # a single sharding applies to every output
        )
    return _JITTED[out_sharding]


def tree_checksums(tree: Any) -> dict[str, list[int]]:
    """``{"<path of the leaf>": [s1, s2]}`` for every array leaf of ``tree`` (see the module docstring)."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        return {}
    paths = [jax.tree_util.keystr(path) for path, _ in leaves]
    arrays = [leaf for _, leaf in leaves]
    sums = jax.device_get(_sums_fn(_replicated(arrays))(arrays))
    return {p: [int(v) for v in np.asarray(s)] for p, s in zip(paths, sums)}


def meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``meta`` without its integrity record."""
    body = {k: v for k, v in meta.items() if k != INTEGRITY_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def mismatches(expected: dict[str, list[int]], actual: dict[str, list[int]]) -> list[str]:
    """Leaf paths whose checksums differ, or that are missing on one side."""
    bad = [p for p in expected if list(expected[p]) != list(actual.get(p, []))]
    bad += [p for p in actual if p not in expected]
    return bad
