"""KV-cache decoding equals full recompute; sharded forward equals unsharded and parameters are sharded as the rules
say; the mesh helper rejects impossible shapes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import s1jax
import numerics as tolerances
from s1jax.model.kv_cache import init_cache
from s1jax.model.api import forward, load_model, positions_from_mask
from s1jax.model.presets import PRESETS
from s1jax.sharding import logical_to_spec, make_mesh

CONFIG = dataclasses.replace(PRESETS["tiny"], vocab_size=128, tie_word_embeddings=False)
# float32 reductions a logit passes through (tests/numerics.py): per layer the hidden size (norm, q/k/v and o
# projections), the MLP width, up to 16 positions (softmax, weighted sum) and head_dim; then the final norm and
# the output projection over the hidden size.
LOGIT_K = CONFIG.num_layers * (CONFIG.hidden_size, CONFIG.hidden_size, CONFIG.intermediate_size, 16, 16,
                               CONFIG.head_dim) + (CONFIG.hidden_size, CONFIG.hidden_size)


def _left_padded(lengths, seq, vocab, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), seq), np.int32)
    mask = np.zeros((len(lengths), seq), np.int32)
    for i, n in enumerate(lengths):
        ids[i, seq - n :] = rng.integers(1, vocab, size=n)
        mask[i, seq - n :] = 1
    return ids, mask


@pytest.fixture(scope="module")
def model():
    return load_model(CONFIG, dtype="float32", seed=3)


@pytest.mark.parametrize("mesh_shape", [None, (2, 2, 2)])
def test_prefill_then_cached_steps_equal_full_forward(model, mesh_shape):
    m = model
    if mesh_shape is not None:
        m = load_model(CONFIG, dtype="float32", seed=3, mesh=make_mesh(*mesh_shape))
    lengths, prompt_len, steps = [5, 8, 2, 7], 8, 5
    prompt, prompt_mask = _left_padded(lengths, prompt_len, CONFIG.vocab_size)
    new = np.random.default_rng(1).integers(1, CONFIG.vocab_size, size=(len(lengths), steps)).astype(np.int32)
    full_ids = np.concatenate([prompt, new], axis=1)
    full_mask = np.concatenate([prompt_mask, np.ones_like(new)], axis=1)
    full = np.asarray(forward(m, full_ids, full_mask))  # [batch, prompt+steps, vocab]

    module = m.module()
    apply = jax.jit(lambda p, ids, pos, mask, cache: module.apply({"params": p}, ids, pos, attention_mask=mask, cache=cache))
    cache = init_cache(CONFIG, len(lengths), prompt_len + steps, jnp.float32)
    logits, cache = apply(m.params, prompt, positions_from_mask(prompt_mask), prompt_mask, cache)
    real = prompt_mask.astype(bool)
    tolerances.assert_close(np.asarray(logits)[real], full[:, :prompt_len][real], *LOGIT_K)
    for t in range(steps):
        pos = (np.asarray(lengths) + t)[:, None].astype(np.int32)  # real tokens before this one
        logits, cache = apply(m.params, new[:, t : t + 1], pos, np.ones((len(lengths), 1), np.int32), cache)
        tolerances.assert_close(np.asarray(logits)[:, 0], full[:, prompt_len + t], *LOGIT_K)
    assert int(cache.index) == prompt_len + steps
    np.testing.assert_array_equal(np.asarray(cache.valid), full_mask.astype(bool))


def test_sharded_forward_equals_unsharded_and_params_follow_rules(model):
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    sharded = load_model(CONFIG, dtype="float32", seed=3, mesh=mesh)
    for a, b in zip(jax.tree_util.tree_leaves(model.params), jax.tree_util.tree_leaves(sharded.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    p = sharded.params
    expected = {
        ("layers", "self_attn", "q_proj", "kernel"): P(None, "fsdp", "tensor", None),
        ("layers", "self_attn", "q_proj", "bias"): P(None, "tensor", None),
        ("layers", "self_attn", "k_proj", "kernel"): P(None, "fsdp", "tensor", None),
        ("layers", "self_attn", "o_proj", "kernel"): P(None, "tensor", None, "fsdp"),
        ("layers", "mlp", "gate_proj", "kernel"): P(None, "fsdp", "tensor"),
        ("layers", "mlp", "down_proj", "kernel"): P(None, "tensor", "fsdp"),
        ("layers", "input_layernorm", "scale"): P(None, "fsdp"),
        ("embed_tokens", "embedding"): P("tensor", "fsdp"),
        ("lm_head", "kernel"): P("fsdp", "tensor"),
        ("norm", "scale"): P("fsdp"),
    }
    for path, spec in expected.items():
        leaf = p
        for k in path:
            leaf = leaf[k]
        assert leaf.sharding.spec == spec, path
    q = p["layers"]["self_attn"]["q_proj"]["kernel"]  # [2, 64, 4, 16] -> per device [2, 32, 2, 16]
    assert {s.data.shape for s in q.addressable_shards} == {(2, 32, 2, 16)}
    assert len(q.addressable_shards) == 8

    ids, mask = _left_padded([6, 3, 9, 1], 9, CONFIG.vocab_size, seed=5)
    ref = np.asarray(forward(model, ids, mask))
    out = forward(sharded, ids, mask)
    real = mask.astype(bool)
    tolerances.assert_close(np.asarray(out)[real], ref[real], *LOGIT_K)


def test_indivisible_dims_are_replicated():
    mesh = make_mesh(data=1, fsdp=2, tensor=4)  # 2 KV heads cannot split over tensor=4
    m = load_model(CONFIG, dtype="float32", mesh=mesh)
    assert m.params["layers"]["self_attn"]["k_proj"]["kernel"].sharding.spec == P(None, "fsdp", None, None)
    assert m.params["layers"]["self_attn"]["q_proj"]["kernel"].sharding.spec == P(None, "fsdp", "tensor", None)
    assert logical_to_spec(("vocab", "embed"), (6, 64), mesh) == P(None, "fsdp")


def test_make_mesh_errors():
    assert dict(make_mesh(2, 2, 2).shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert dict(make_mesh(2, -1, 1).shape) == {"data": 2, "fsdp": 4, "tensor": 1}
    with pytest.raises(ValueError, match="needs 12 devices, but 8"):
        make_mesh(2, 2, 3)
    with pytest.raises(ValueError, match="not divisible by 3"):
        make_mesh(3, -1, 1)
    with pytest.raises(ValueError, match="at most one"):
        make_mesh(-1, -1, 1)
    with pytest.raises(ValueError, match="positive"):
        make_mesh(0, 2, 2)
    with pytest.raises(ValueError, match="needs 8 devices, but 4"):
        make_mesh(2, 2, 2, devices=jax.devices()[:4])


def test_public_api_names():
    assert s1jax.load_model is load_model and s1jax.forward is forward
