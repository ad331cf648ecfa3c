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

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_fixtures import build_hf_model, tiny_hf_config  # noqa: E402

import s1jax  # noqa: E402
from s1jax.model.api import Model  # noqa: E402
from s1jax.model.params import param_shapes, param_shardings  # noqa: E402
from s1jax.sharding import make_mesh  # noqa: E402
from s1jax.train.optimizer import make_optimizer, warmup_steps_for  # noqa: E402
from s1jax.train.step import batch_shardings, make_train_step, state_shardings  # noqa: E402

LR, WD, TOTAL, WARMUP_RATIO, CLIP, STEPS = 1e-3, 0.1, 10, 0.2, 1.0, 3


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


def _torch_run(model, batch):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
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
    targets, weights = ids[:, 1:], torch.tensor(batch["loss_mask"][:, 1:], dtype=torch.float32)
    losses, norms = [], []
    model.train()
    for _ in range(STEPS):
        opt.zero_grad()
        logits = model(input_ids=ids).logits.float()[:, :-1]
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        loss = (ce * weights.reshape(-1)).sum() / weights.sum()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses, norms, {k: v.detach().numpy() for k, v in model.state_dict().items()}


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


def test_one_optimizer_run_matches_torch_adamw(tmp_path):
    hf_cfg = tiny_hf_config("qwen2", tied=False)
    torch_model = build_hf_model(hf_cfg, seed=0)
    torch_model.save_pretrained(tmp_path / "hf")
    model = s1jax.load_model(str(tmp_path / "hf"), dtype="float32")
    batch = _batch(hf_cfg.vocab_size)

    j_losses, j_norms, j_params = _jax_run(model, batch)
    t_losses, t_norms, t_state = _torch_run(torch_model, batch)

    np.testing.assert_allclose(j_losses, t_losses, rtol=2e-5)
    np.testing.assert_allclose(j_norms, t_norms, rtol=1e-4)
    assert j_norms[0] > CLIP  # clipping is active, so its placement matters
    out = s1jax.save_model(Model(config=model.config, params=j_params, dtype=jnp.float32), str(tmp_path / "after"),
                           format="hf")
    from safetensors.numpy import load_file

    exported = load_file(f"{out}/model.safetensors")
    assert set(exported) == set(t_state), set(exported) ^ set(t_state)
    for name, ref in t_state.items():
        # 3 Adam steps of size <= lr: 1e-6 is 0.1% of one update (a wrongly decayed bias is off by ~2e-5)
        np.testing.assert_allclose(exported[name], ref, rtol=0, atol=1e-6, err_msg=name)
    initial = build_hf_model(hf_cfg, seed=0).state_dict()
    delta = max(float(np.abs(t_state[k] - initial[k].numpy()).max()) for k in t_state)
    assert delta > 1e-4  # the parameters really moved
