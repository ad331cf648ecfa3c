"""Memory-efficient (query-chunked) attention equals the plain XLA path: values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics as tolerances
from s1jax.model.config import ModelConfig
from s1jax.model.decoder import Decoder, SegmentMask, chunked_attention
from s1jax.model.params import init_params

CFG = ModelConfig(architecture="qwen2", vocab_size=96, hidden_size=32, intermediate_size=64, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=8, rope_theta=10000.0, tie_word_embeddings=False)


def _reference(q, k, v, mask):
    full = None if mask is None else mask.full()
    return jax.nn.dot_product_attention(q, k, v, mask=full, is_causal=full is None)


@pytest.mark.parametrize("seq,block", [(24, 8), (21, 8), (16, 32)])
@pytest.mark.parametrize("segmented", [False, True])
def test_chunked_attention_matches_xla(seq, block, segmented):
    rng = np.random.default_rng(seq + block)
    q = jnp.asarray(rng.normal(size=(2, seq, 4, 8)), jnp.float32)  # [batch, seq, heads, head_dim]
    k = jnp.asarray(rng.normal(size=(2, seq, 2, 8)), jnp.float32)  # [batch, seq, kv_heads, head_dim]
    v = jnp.asarray(rng.normal(size=(2, seq, 2, 8)), jnp.float32)
    mask = None
    if segmented:  # two packed examples in row 0, right padding in row 1
        seg = np.ones((2, seq), np.int32)
        seg[0, seq // 2:] = 2
        seg[1, seq - 5:] = 0
        mask = SegmentMask(jnp.asarray(seg))
    valid = np.ones((2, seq), bool) if mask is None else np.asarray(mask.segment_ids) > 0

    def loss(fn, q, k, v):
        return jnp.sum(jnp.where(valid[:, :, None, None], fn(q, k, v), 0.0) ** 2)

    def chunked(q, k, v):
        return chunked_attention(q, k, v, mask, block=block)

    def reference(q, k, v):
        return _reference(q, k, v, mask)

    @jax.jit  # one program for both paths and their gradients (run op by op, each op is a compilation of its own)
    def both(q, k, v):
        grads = [jax.grad(lambda *a, fn=fn: loss(fn, *a), (0, 1, 2))(q, k, v) for fn in (chunked, reference)]
        return chunked(q, k, v), reference(q, k, v), grads[0], grads[1]

    got, want, g_got, g_want = both(q, k, v)
    # scores: 8-term dots, then exp amplifies their absolute error by the score size (|s| <= |q||k|/sqrt(8));
    # softmax and the weighted sum reduce over the sequence
    smax = float(jnp.max(jnp.linalg.norm(q, axis=-1)) * jnp.max(jnp.linalg.norm(k, axis=-1))) / np.sqrt(8)
    reductions = (int(np.ceil(8 * max(smax, 1.0))), seq, seq)
    tolerances.assert_close(np.asarray(got)[valid], np.asarray(want)[valid], *reductions)
    for a, b in zip(g_got, g_want):  # the backward pass repeats the forward's reductions once more
        tolerances.assert_close(a, b, *(reductions * 2))


def test_decoder_chunked_impl_matches_default():
    params = init_params(CFG, seed=1)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 96, (2, 40)), jnp.int32)
    pos = jnp.broadcast_to(jnp.arange(40), (2, 40))
    mask = jnp.ones((2, 40), jnp.int32).at[1, 30:].set(0)

    @jax.jit  # one program for the four forward passes (op by op, every op would be a compilation of its own)
    def forwards(params, ids, pos, mask):
        default, chunked = Decoder(CFG), Decoder(CFG, attention_impl="chunked")
        return [m.apply({"params": params}, ids, pos, **kw)[0] for kw in ({"attention_mask": mask}, {})
                for m in (default, chunked)]

    base, chunked, causal_base, causal_chunked = forwards(params, ids, pos, mask)
    # per layer: hidden (norm, projections), MLP width, the 40-token sequence (softmax, weighted sum), head_dim
    k = CFG.num_layers * (CFG.hidden_size, CFG.hidden_size, CFG.intermediate_size, 40, 40, CFG.head_dim)
    tolerances.assert_close(np.asarray(chunked)[:, :30], np.asarray(base)[:, :30], *k)
    tolerances.assert_close(causal_chunked, causal_base, *k)
