"""The jitted train step: loss masking, chunked cross-entropy, gradient accumulation, sharding, NaN handling, the
s1 schedule."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import numerics as tolerances
from s1jax.model.decoder import Decoder
from s1jax.model.params import init_params, param_shapes, param_shardings
from s1jax.model.presets import preset_config
from s1jax.sharding import make_mesh
from s1jax.train.optimizer import make_optimizer, make_schedule, warmup_steps_for
from s1jax.train.step import (
    batch_shardings,
    chunked_cross_entropy,
    loss_and_grads,
    make_train_step,
    shift_targets,
    state_shardings,
)

CONFIG = preset_config("tiny")
SEQ = 40


def opt_cfg(**kw):
    base = dict(lr=1e-3, warmup_ratio=0.0, lr_schedule="constant", b1=0.9, b2=0.95, eps=1e-8, weight_decay=1e-4,
                grad_clip=1.0, decay_bias_and_norm=False)
    base.update(kw)
    return ml_collections.ConfigDict(base)


def make_batch(rows: int = 16, seq: int = SEQ, seed: int = 0) -> dict[str, np.ndarray]:
    """Right-padded rows of varying length; the loss covers the second half of each row's real tokens."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((rows, seq), np.int32)
    loss = np.zeros((rows, seq), np.int32)
    attn = np.zeros((rows, seq), np.int32)
    for r in range(rows):
        n = int(rng.integers(seq // 2, seq + 1))
        ids[r, :n] = rng.integers(3, CONFIG.vocab_size, n)
        attn[r, :n] = 1
        loss[r, n // 2 : n] = 1
    pos = np.broadcast_to(np.arange(seq, dtype=np.int32), (rows, seq)).copy()
    return {"input_ids": ids, "positions": pos, "loss_mask": loss, "attention_mask": attn}


def as_accum(batch: dict[str, np.ndarray], accum: int) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v.reshape(accum, v.shape[0] // accum, v.shape[1])) for k, v in batch.items()}


def run_steps(mesh, batch, accum: int = 1, steps: int = 1, loss_chunk: int = 16, nan_policy: str = "stop", params=None,
              trajectory: list | None = None):
    """``steps`` train steps; with ``trajectory`` (a list) the host params before each step are appended to it."""
    tx, schedule = make_optimizer(opt_cfg(), 10)
    shard = state_shardings(param_shardings(CONFIG, mesh), tx, param_shapes(CONFIG), mesh)
    if params is None:
        params = init_params(CONFIG, seed=0, mesh=mesh)
    else:
        params = jax.device_put(params, shard["params"])
    state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=shard["opt_state"])(params),
             "step": jax.device_put(jnp.zeros((), jnp.int32), shard["step"])}
    module = Decoder(CONFIG, dtype=jnp.float32, param_dtype=jnp.float32)
    b_shard = batch_shardings(mesh)
    fn = make_train_step(module, tx, schedule, shard, b_shard, loss_chunk=loss_chunk, nan_policy=nan_policy)
    history = []
    for _ in range(steps):
        if trajectory is not None:
            trajectory.append(host(state["params"]))
        state, metrics = fn(state, {k: jax.device_put(v, b_shard[k]) for k, v in as_accum(batch, accum).items()})
        history.append(jax.device_get(metrics))
    return state, history


def host(tree):
    return jax.tree_util.tree_map(lambda x: np.array(jax.device_get(x)), tree)


MODULE = Decoder(CONFIG, dtype=jnp.float32, param_dtype=jnp.float32)
# One compiled loss-and-gradient program (16 rows x SEQ, loss_chunk 16: chunks of a sequence that is not a multiple
# of the chunk) for every test here that needs one, instead of one per test and batch shape.
loss_grads = jax.jit(lambda p, b: loss_and_grads(MODULE, p, b, loss_chunk=16))


# float32 reductions a gradient element of the tiny preset passes through (tests/numerics.py): the batch's 16 x 40
# tokens, the vocabulary (softmax), and per layer the hidden size (norms, projections), the MLP width, the sequence
# and head_dim (attention).
GRAD_REDUCTIONS = (16 * SEQ, CONFIG.vocab_size) + CONFIG.num_layers * (
    CONFIG.hidden_size, CONFIG.hidden_size, CONFIG.intermediate_size, CONFIG.hidden_size, SEQ, CONFIG.head_dim)


def assert_trees_close(a, b, bound):
    """Every element within its derived bound (``bound``: a tree like ``a`` of per-element tolerances)."""
    for (path, x), y, t in zip(jax.tree_util.tree_flatten_with_path(host(a))[0], jax.tree_util.tree_leaves(host(b)),
                               jax.tree_util.tree_leaves(bound)):
        worst = tolerances.exceedance(x, y, t)
        assert worst <= 1.0, f"{jax.tree_util.keystr(path)}: {worst:.2f} x the derived bound"


@pytest.fixture(scope="module")
def single_mesh():
    return make_mesh(1, 1, 1, devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def reference(single_mesh):
    """Two steps of one 16-row batch on one device, and the per-element bound (tests/numerics.py) within which any
    float32 run of the same two AdamW steps must land: computed from the reference's own gradients at each step."""
    trajectory: list = []
    state, hist = run_steps(single_mesh, make_batch(), accum=1, steps=2, trajectory=trajectory)
    batch = as_accum(make_batch(), 1)
    grads = []
    for params, h in zip(trajectory, hist):
        scale = min(1.0, opt_cfg().grad_clip / float(h["grad_norm"]))  # optax.clip_by_global_norm
        grads.append([np.asarray(g, np.float64) * scale
                      for g in jax.tree_util.tree_leaves(host(loss_grads(params, batch)[1]))])
    cfg = opt_cfg()
    final = jax.tree_util.tree_leaves(host(state["params"]))
    flat_bound = tolerances.adam_param_tolerance(final, grads, [cfg.lr] * len(hist), b1=cfg.b1, b2=cfg.b2,
                                                 eps=cfg.eps, grad_rel_err=tolerances.rel_tol(*GRAD_REDUCTIONS))
    bound = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(host(state["params"])), flat_bound)
    return state, hist, bound


# ------------------------------------------------------------------------------------------------ loss masking


def test_loss_is_token_weighted_ce_over_targets_only(single_mesh):
    """The step loss == sum over positions t with loss_mask[t] of -log p(ids[t] | ids[<t]) / #targets, computed
    from full logits; prompt tokens (mask 0) carry exactly zero weight."""
    batch = make_batch()
    params = init_params(CONFIG, seed=1)
    logits, _ = jax.jit(MODULE.apply)({"params": params}, jnp.asarray(batch["input_ids"]), jnp.asarray(batch["positions"]))
    logp = np.asarray(jax.nn.log_softmax(logits, -1))
    total, count = 0.0, 0
    for r in range(len(batch["input_ids"])):
        for t in range(1, SEQ):
            if batch["loss_mask"][r, t]:
                total -= logp[r, t - 1, batch["input_ids"][r, t]]
                count += 1
    loss, _, n = loss_grads(params, as_accum(batch, 1))
    assert int(n) == count == int(batch["loss_mask"][:, 1:].sum())
    # float32 model + CE (GRAD_REDUCTIONS' forward stages) against a float64 sum over the same float32 logits
    np.testing.assert_allclose(float(loss), total / count, rtol=2 * tolerances.rel_tol(*GRAD_REDUCTIONS))


def test_masked_targets_do_not_affect_loss_or_gradient():
    """Perturbing the *target* of every zero-weight position leaves loss and gradient unchanged.

    Changing a prompt token in ``input_ids`` legitimately changes the loss (it is context for the completion), so
    the property is tested where it holds: on the labels. (1) the CE kernel with the targets at weight-0 positions
    replaced; (2) the whole step with the ids changed in the trailing padding, which is never a target and, being
    after every target, never context under causal attention."""
    rng = np.random.default_rng(0)
    hidden = jnp.asarray(rng.normal(size=(2, 24, 8)), jnp.float32)
    w_out = jnp.asarray(rng.normal(size=(8, 50)), jnp.float32)
    targets = rng.integers(0, 50, (2, 24))
    weights = (rng.random((2, 24)) < 0.5).astype(np.float32)
    perturbed = np.where(weights > 0, targets, (targets + 17) % 50)
    assert (perturbed != targets).any()

    def loss(h, t, chunk):
        return chunked_cross_entropy(lambda x: x @ w_out, h, jnp.asarray(t), jnp.asarray(weights), chunk)

    for chunk in (0, 5):
        value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=2)  # one program per chunk, both targets
        l1, g1 = value_and_grad(hidden, targets, chunk)
        l2, g2 = value_and_grad(hidden, perturbed, chunk)
        assert float(l1) == float(l2)
        np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))

    batch = make_batch()
    other = {k: v.copy() for k, v in batch.items()}
    pad = batch["attention_mask"] == 0
    assert pad.any()
    other["input_ids"][pad] = 7
    params = init_params(CONFIG, seed=2)
    l1, g1, _ = loss_grads(params, as_accum(batch, 1))  # chunked CE (loss_chunk 16) over padded chunks
    l2, g2, _ = loss_grads(params, as_accum(other, 1))
    assert float(l1) == float(l2)
    # same program, same reduction order, and every changed value is multiplied by an exact 0: bitwise equal
    for x, y in zip(jax.tree_util.tree_leaves(host(g1)), jax.tree_util.tree_leaves(host(g2))):
        np.testing.assert_array_equal(x, y)


def test_chunked_cross_entropy_matches_unchunked():
    rng = np.random.default_rng(1)
    hidden = jnp.asarray(rng.normal(size=(3, 37, 8)), jnp.float32)  # 37: not a multiple of the chunk
    w_out = jnp.asarray(rng.normal(size=(8, 64)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 64, (3, 37)))
    weights = jnp.asarray((rng.random((3, 37)) < 0.7).astype(np.float32))

    def f(h, chunk):
        return chunked_cross_entropy(lambda x: x @ w_out, h, targets, weights, chunk)

    value_and_grad = jax.jit(jax.value_and_grad(f), static_argnums=1)  # one program per chunk, not one per op
    full, g_full = value_and_grad(hidden, 0)
    # a weighted sum over 3 x 37 token CEs, each a 64-way log-sum-exp over 8-term logits; chunking only changes
    # the order of the token sum
    loss_k = (3 * 37, 64, 8)
    for chunk in (1, 8, 16, 36, 64):
        val, g = value_and_grad(hidden, chunk)
        np.testing.assert_allclose(float(val), float(full), rtol=2 * tolerances.rel_tol(*loss_k))
        tolerances.assert_close(g, g_full, *loss_k, err_msg=f"chunk {chunk}")


def test_shift_targets():
    ids = jnp.asarray([[5, 6, 7, 8]])
    mask = jnp.asarray([[0, 0, 1, 1]])
    t, w = shift_targets(ids, mask)
    assert t.tolist() == [[6, 7, 8, 0]] and w.tolist() == [[0.0, 1.0, 1.0, 0.0]]


# ------------------------------------------------------------------------------------------------ accumulation, sharding


@pytest.mark.parametrize("axes,accum", [((1, 4, 2), 4), ((2, 4, 1), 2)], ids=["fsdp4_tensor2_accum4", "data2_fsdp4_accum2"])
def test_sharded_accumulated_step_equals_one_big_batch_on_one_device(axes, accum, reference):
    """Gradient accumulation (``accum`` micro-batches) and sharding over 8 devices against the one-device,
    one-big-batch reference. Both run together: a separate one-device accumulation run would compile one more train
    step for no extra check (the accumulation is the same code on any mesh)."""
    mesh = make_mesh(*axes)
    state, hist = run_steps(mesh, make_batch(), accum=accum, steps=2)
    ref_state, ref_hist, bound = reference
    loss_tol = 2 * tolerances.rel_tol(*GRAD_REDUCTIONS)  # two float32 evaluations of the same mean
    norm_tol = loss_tol + 2 * tolerances.gamma(sum(x.size for x in jax.tree_util.tree_leaves(bound)))
    for h, r in zip(hist, ref_hist):
        np.testing.assert_allclose(h["loss"], r["loss"], rtol=loss_tol)
        np.testing.assert_allclose(h["grad_norm"], r["grad_norm"], rtol=norm_tol)
        assert h["loss_tokens"] == r["loss_tokens"]
    assert_trees_close(state["params"], ref_state["params"], bound)
    kernel = state["params"]["layers"]["mlp"]["gate_proj"]["kernel"]
    assert len(kernel.sharding.device_set) == 8  # really distributed
    assert int(state["step"]) == 2


# ------------------------------------------------------------------------------------------------ NaN handling


def test_nonfinite_loss_keeps_previous_state(single_mesh, policy="skip"):
    """"stop" and "skip" share this in-step guard; the loop-level "stop" is in test_train_loop."""
    params = host(init_params(CONFIG, seed=0))
    params["norm"]["scale"] = params["norm"]["scale"].copy()
    params["norm"]["scale"][3] = np.nan
    state, hist = run_steps(single_mesh, make_batch(), nan_policy=policy, params=params)
    assert hist[0]["finite"] == 0 and not math.isfinite(float(hist[0]["loss"]))
    new = host(state["params"])
    np.testing.assert_array_equal(new["layers"]["mlp"]["up_proj"]["kernel"], params["layers"]["mlp"]["up_proj"]["kernel"])
    assert int(state["step"]) == 1


# ------------------------------------------------------------------------------------------------ optimizer / schedule


def test_s1_schedule_matches_hf_cosine_with_warmup():
    total = 315  # s1: 1000 examples / 16 x 5 epochs (HF counts the last partial batch)
    warm = warmup_steps_for(total, 0.05)
    assert warm == 16
    sched = make_schedule(1e-5, total, 0.05)

    def hf(step):  # transformers.get_cosine_schedule_with_warmup
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, total - warm)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    for s in (0, 1, 8, 15, 16, 17, 100, 200, 314, 315):
        # optax evaluates the schedule in float32: a few roundings of lr (8 ulps), and near the end, where the
        # cosine term is ~0, an absolute floor of 4 lr eps32 (argument rounding pi*eps, times |sin| <= 1, halved, + cos)
        np.testing.assert_allclose(float(sched(s)), 1e-5 * hf(s), rtol=8 * tolerances.EPS32, atol=4e-5 * tolerances.EPS32)


def test_weight_decay_mask_and_bad_optimizer_config():
    import optax

    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((3, 2, 2))}, "norm": {"scale": jnp.ones((2,))}}
    tx, _ = make_optimizer(opt_cfg(lr=1.0, weight_decay=0.5, grad_clip=0.0), 10)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert float(new["dense"]["kernel"][0, 0]) == pytest.approx(0.5)
    assert float(new["dense"]["bias"].min()) == 1.0 and float(new["norm"]["scale"][0]) == 1.0  # stacked bias too
    with pytest.raises(ValueError, match="grad_clip"):
        make_optimizer(opt_cfg(grad_clip=-1.0), 10)
    with pytest.raises(ValueError, match="schedule"):
        make_optimizer(opt_cfg(lr_schedule="exp"), 10)
    with pytest.raises(ValueError, match="warmup_ratio"):
        make_schedule(1e-5, 10, 1.5)


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"], ids=["fp32_master", "pure_bf16"])
def test_bf16_compute(single_mesh, reference, param_dtype):
    """bf16 compute with fp32 master weights (params and Adam moments stay fp32) or pure bf16; loss near fp32."""
    pdt = jnp.dtype(param_dtype)
    tx, schedule = make_optimizer(opt_cfg(), 10)
    shard = state_shardings(param_shardings(CONFIG, single_mesh), tx, param_shapes(CONFIG, pdt), single_mesh)
    params = jax.tree_util.tree_map(lambda p: p.astype(pdt), init_params(CONFIG, seed=0))
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    module = Decoder(CONFIG, dtype=jnp.bfloat16, param_dtype=pdt, remat_policy="full")
    fn = make_train_step(module, tx, schedule, shard, batch_shardings(single_mesh), loss_chunk=16)
    state, m = fn(state, as_accum(make_batch(), 2))
    assert all(x.dtype == pdt for x in jax.tree_util.tree_leaves(state["params"]))
    # bf16 rounds every matmul input to 8 significant bits (relative 2^-8 per rounding): the CE of a random tiny
    # model (~log 512 = 6.2) moves by a few of those per layer; 2e-2 is ~5 roundings' worth, 25x below the loss
    # change a wrong cast (e.g. fp16 overflow or a missing norm upcast) causes.
    np.testing.assert_allclose(float(m["loss"]), float(reference[1][0]["loss"]), rtol=5 * tolerances.EPS_BF16 / 2)
    assert math.isfinite(float(m["loss"])) and float(m["grad_norm"]) > 0


def test_train_configs_load():
    from s1jax.config import load_config_file

    root = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs" / "train"
    sizes = {"s1_32b.py": 16, "s1_32b.py:v5p-128": 64, "s1_1_32b.py": 16}
    for spec, devices in sizes.items():
        cfg = load_config_file(str(root / spec))
        assert cfg.mesh.data * cfg.mesh.fsdp * cfg.mesh.tensor == devices
        assert cfg.train.global_batch_size == 16 and cfg.train.lr == 1e-5 and cfg.train.epochs == 5
        assert (cfg.train.global_batch_size // cfg.train.grad_accum) % (cfg.mesh.data * cfg.mesh.fsdp) == 0
    assert load_config_file(str(root / "s1_1_32b.py")).data.block_size == 20000
    assert load_config_file(str(root / "s1_32b.py")).data.block_size == 32768
    load_config_file(str(root / "qwen2_5_0_5b.py"))
    load_config_file(str(root / "tiny.py"))
