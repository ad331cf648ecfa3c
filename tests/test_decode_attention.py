"""Cached (decode) attention read in key blocks up to a dynamic length equals dense masked attention, and never
reads past that length; the per-row cache layout appends where each row stands."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s1jax.model.config import ModelConfig
from s1jax.model.decoder import cached_attention
from s1jax.model.kv_cache import KVCache, append, init_cache, old_slots_mask, read_length


def _dense(q, k_old, v_old, old_valid, k_new, v_new, new_valid):
    k = jnp.concatenate([k_old, k_new], axis=1)
    v = jnp.concatenate([v_old, v_new], axis=1)
    new = q.shape[1]
    causal = jnp.tril(jnp.ones((new, new), bool))
    mask = jnp.concatenate([jnp.broadcast_to(old_valid[:, None, :], (q.shape[0], new, old_valid.shape[1])),
                            causal[None] & new_valid[:, None, :]], axis=-1)  # [batch, new, keys]
    return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None])


@pytest.mark.parametrize("max_len,block,new", [(40, 16, 1), (64, 16, 3), (24, 32, 1)])
def test_blocked_equals_dense_and_stops_at_read_len(max_len, block, new):
    rng = np.random.default_rng(max_len + block + new)
    b, heads, kv_heads, d = 3, 4, 2, 8
    written = np.array([5, max_len - 3, 17])  # per-row written lengths
    read_len = int(written.max())
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    q, k_new, v_new = f(b, new, heads, d), f(b, new, kv_heads, d), f(b, new, kv_heads, d)
    k_old, v_old = f(b, max_len, kv_heads, d), f(b, max_len, kv_heads, d)
    old_valid = (np.arange(max_len)[None] < written[:, None]) & (rng.random((b, max_len)) > 0.2)
    new_valid = np.ones((b, new), bool)
    if new > 1:
        new_valid[0, -1] = False  # a padding query in row 0
    # garbage (NaN) beyond read_len must never be read
    poison = np.arange(max_len)[None, :, None, None] >= read_len
    k_bad, v_bad = jnp.where(poison, jnp.nan, k_old), jnp.where(poison, jnp.nan, v_old)

    @jax.jit  # both paths in one program (run op by op, each op is a compilation of its own); read_len stays dynamic
    def both(q, k_old, v_old, k_bad, v_bad, old_valid, k_new, v_new, new_valid, read_len):
        return (_dense(q, k_old, v_old, old_valid, k_new, v_new, new_valid),
                cached_attention(q, k_bad, v_bad, old_valid, k_new, v_new, new_valid, read_len, block=block))

    want, got = both(q, k_old, v_old, k_bad, v_bad, jnp.asarray(old_valid), k_new, v_new, jnp.asarray(new_valid),
                     jnp.int32(read_len))
    # fp32, softmax over <= max_len + new keys: a few ulps of the largest term
    tol = 8 * np.finfo(np.float32).eps * (max_len + new)
    real = new_valid.astype(bool)
    np.testing.assert_allclose(np.asarray(got)[real], np.asarray(want)[real], atol=tol, rtol=tol)
    assert np.isfinite(np.asarray(got)).all()


def test_per_row_append_and_read_length():
    cfg = ModelConfig(architecture="qwen2", vocab_size=32, hidden_size=16, intermediate_size=32, num_layers=2,
                      num_heads=2, num_kv_heads=1, head_dim=8)
    cache = init_cache(cfg, 3, 8, jnp.float32, per_row=True)
    cache = cache.replace(index=jnp.asarray([2, 5, 7], jnp.int32),
                          valid=jnp.asarray(np.arange(8)[None] < np.array([2, 5, 7])[:, None]))
    mask = jnp.asarray([[True], [False], [True]])
    assert int(read_length(cache, mask)) == 7  # row 1 feeds nothing: does not count
    k_new = jnp.ones((2, 3, 1, 1, 8), jnp.float32)
    out: KVCache = append(cache, k_new, 2 * k_new, mask)
    np.testing.assert_array_equal(np.asarray(out.index), [3, 5, 8])
    assert float(out.k[0, 0, 2, 0, 0]) == 1.0 and float(out.v[1, 2, 7, 0, 0]) == 2.0
    assert float(out.k[0, 1, 5, 0, 0]) == 0.0  # not written: the row fed padding
    np.testing.assert_array_equal(np.asarray(old_slots_mask(out)).sum(1), [3, 5, 8])
    full = append(out, k_new, k_new, jnp.ones((3, 1), bool))  # row 2 is full: its write is dropped
    assert int(full.index[2]) == 9 and bool(full.valid[2].all())
