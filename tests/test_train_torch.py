"""Three optimizer steps of s1jax vs PyTorch (transformers Qwen2 + torch.optim.AdamW + HF's cosine-with-warm-up
schedule + clip_grad_norm_) on the same tiny model and batch: same losses, gradient norms and updated parameters.

Both use decoupled weight decay scaled by the lr (``p -= lr * wd * p``), biases and norm scales exempt (a torch
param group), and the schedule is indexed the same way (the update after ``s`` completed steps uses ``lr(s)``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import numerics as tolerances
from hf_fixtures import build_hf_model, tiny_hf_config

import s1jax
from s1jax.model.api import Model
from s1jax.model.params import param_shapes, param_shardings
from s1jax.sharding import make_mesh
from s1jax.train.optimizer import make_optimizer, warmup_steps_for
from s1jax.train.step import batch_shardings, make_train_step, state_shardings

LR, WD, TOTAL, WARMUP_RATIO, CLIP, STEPS = 1e-3, 0.1, 10, 0.2, 1.0, 3
torch = None  # the module, set by the fixture below


@pytest.fixture(scope="module", autouse=True)
def torch_and_transformers():
    """Imported when this file's test runs, not at collection: every pytest worker collects every file, and
    importing torch there (~3 s) cost the worker that never runs this test."""
    global torch
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")


def _batch(vocab: int, rows: int = 8, seq: int = 24) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.zeros((rows, seq), np.int64)
    loss = np.zeros((rows, seq), np.int64)
    for r in range(rows):
        n = int(rng.integers(seq // 2, seq + 1))
        ids[r, :n] = rng.integers(3, vocab, n)
        loss[r, n // 3 : n] = 1
    return {"input_ids": ids, "loss_mask": loss, "attention_mask": (ids > 0).astype(np.int64),
            "positions": np.broadcast_to(np.arange(seq), (rows, seq)).copy()}


def _torch_run(model, batch, *, decay_all: bool = False, clip: float | None = CLIP):
    """The reference loop. Returns losses, grad norms, the final state dict, and each step's clipped gradients
    (what Adam saw), in the model's dtype. ``decay_all`` / ``clip`` make the deliberately wrong variants that the
    tolerance must reject."""
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.ndim >= 2 or decay_all]
    no_decay = [p for n, p in named if not (p.ndim >= 2 or decay_all)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    warm = warmup_steps_for(TOTAL, WARMUP_RATIO)

    def hf_cosine(step: int) -> float:  # transformers.get_cosine_schedule_with_warmup
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, TOTAL - warm)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * 0.5 * progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_cosine)
    ids = torch.tensor(batch["input_ids"])
    targets = ids[:, 1:]
    weights = torch.tensor(batch["loss_mask"][:, 1:], dtype=next(model.parameters()).dtype)
    losses, norms, grads, lrs = [], [], [], []
    model.train()
    for _ in range(STEPS):
        opt.zero_grad()
        logits = model(input_ids=ids).logits[:, :-1]
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        loss = (ce * weights.reshape(-1)).sum() / weights.sum()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip else float("inf"))))
        grads.append({n: p.grad.detach().numpy().copy() for n, p in named})
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return losses, norms, state, grads, lrs


def _jax_run(model: Model, batch):
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    cfg = ml_collections.ConfigDict(dict(lr=LR, warmup_ratio=WARMUP_RATIO, lr_schedule="cosine", b1=0.9, b2=0.95,
                                         eps=1e-8, weight_decay=WD, grad_clip=CLIP, decay_bias_and_norm=False))
    tx, schedule = make_optimizer(cfg, TOTAL)
    shard = state_shardings(param_shardings(model.config, mesh), tx, param_shapes(model.config), mesh)
    params = jax.device_put(model.params, shard["params"])
    state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=shard["opt_state"])(params),
             "step": jax.device_put(jnp.zeros((), jnp.int32), shard["step"])}
    b_shard = batch_shardings(mesh)
    fn = make_train_step(model.module(), tx, schedule, shard, b_shard, loss_chunk=8)
    jb = {k: jax.device_put(jnp.asarray(batch[k][None], jnp.int32), b_shard[k]) for k in b_shard}
    losses, norms = [], []
    for _ in range(STEPS):
        state, m = fn(state, jb)
        losses.append(float(m["loss"]))
        norms.append(float(m["grad_norm"]))
    return losses, norms, state["params"]


# float32 reductions a gradient element passes through (tests/numerics.py): the batch's 8 x 24 tokens for a weight
# gradient, the vocabulary for the softmax, and per layer the hidden size (norms, projections), the MLP width, the
# sequence and head_dim (attention). Their gammas add; the result bounds each gradient's error relative to its
# tensor's largest gradient.
_GRAD_REDUCTIONS = (8 * 24, 256) + 2 * (64, 64, 96, 64, 24, 16)


def test_one_optimizer_run_matches_torch_adamw(tmp_path):
    """s1jax (float32) and torch AdamW (float32) both land within a derived bound of a float64 torch reference,
    and the same bound rejects a run that decays biases/norm scales or skips gradient clipping."""
    hf_cfg = tiny_hf_config("qwen2", tied=False)
    torch_model = build_hf_model(hf_cfg, seed=0)
    torch_model.save_pretrained(tmp_path / "hf")
    initial = {k: v.detach().numpy().copy() for k, v in torch_model.state_dict().items()}
    model = s1jax.load_model(str(tmp_path / "hf"), dtype="float32")
    batch = _batch(hf_cfg.vocab_size)

    def fresh(dtype):
        m = build_hf_model(hf_cfg, seed=0)
        return m.to(dtype)

    j_losses, j_norms, j_params = _jax_run(model, batch)
    t_losses, t_norms, t_state, _, _ = _torch_run(torch_model, batch)
    r_losses, r_norms, r_state, r_grads, r_lrs = _torch_run(fresh(torch.float64), batch)
    assert r_lrs[0] == 0.0 and r_lrs[1] > 0  # warm-up from 0: only steps 2 and 3 move the parameters

    # Loss: a mean of 192 token cross-entropies over a 256-way softmax after the forward reductions; grad norm: the
    # same plus the sum of squares over all parameters (~40K terms, but squares do not cancel, so the bound holds).
    loss_tol = tolerances.rel_tol(*_GRAD_REDUCTIONS)
    for losses, norms in ((j_losses, j_norms), (t_losses, t_norms)):
        np.testing.assert_allclose(losses, r_losses, rtol=loss_tol)
        np.testing.assert_allclose(norms, r_norms, rtol=loss_tol + tolerances.gamma(sum(v.size for v in initial.values())))
    assert j_norms[0] > CLIP  # clipping is active, so its placement matters

    out = s1jax.save_model(Model(config=model.config, params=j_params, dtype=jnp.float32), str(tmp_path / "after"),
                           format="hf")
    from safetensors.numpy import load_file

    exported = load_file(f"{out}/model.safetensors")
    assert set(exported) == set(t_state), set(exported) ^ set(t_state)
    names = sorted(r_state)
    bounds = tolerances.adam_param_tolerance(
        [r_state[n] for n in names], [[g[n] for n in names] for g in r_grads], r_lrs,
        b1=0.9, b2=0.95, eps=1e-8, grad_rel_err=tolerances.rel_tol(*_GRAD_REDUCTIONS))
    bound = dict(zip(names, bounds))
    for name in names:
        assert tolerances.exceedance(exported[name], r_state[name], bound[name]) <= 1.0, f"s1jax {name}"
        assert tolerances.exceedance(t_state[name], r_state[name], bound[name]) <= 1.0, f"torch fp32 {name}"

    # The bound is tight where the gradient is well above its rounding error, i.e. on the typical element: its
    # median is under 1% of one update (lr), so it still sees a wrong optimizer (checked next).
    median = float(np.median(np.concatenate([bound[n].ravel() for n in names])))
    assert median < 0.01 * max(r_lrs), f"median bound {median:.2g} is not under 1% of one update"

    # Deliberately wrong optimizers (float64, so the difference is theirs alone) must fall outside the bound.
    for wrong, label in ((dict(decay_all=True), "biases and norm scales decayed"), (dict(clip=None), "no clipping")):
        _, _, w_state, _, _ = _torch_run(fresh(torch.float64), batch, **wrong)
        worst = max(tolerances.exceedance(w_state[n], r_state[n], bound[n]) for n in names)
        assert worst > 1.0, f"the tolerance cannot see a wrong optimizer ({label}): worst {worst:.2f} of the bound"

    delta = max(float(np.abs(t_state[k] - initial[k]).max()) for k in t_state)
    assert delta > 1e-4  # the parameters really moved
