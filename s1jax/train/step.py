"""The jitted SFT train step: token-weighted cross-entropy, gradient accumulation inside the step, AdamW update.

One ``jax.jit`` with explicit in/out shardings over the (data, fsdp, tensor) mesh; the train state is donated.
A batch is a dict of int arrays shaped ``[accum, micro_batch, seq]`` (``input_ids``, ``positions``, ``loss_mask``,
``attention_mask``, optionally ``segment_ids``), the micro-batch axis sharded over ``data x fsdp``.

Loss: token ``t+1`` is predicted from position ``t`` and counts iff ``loss_mask[t+1] == 1`` (the mask marks the tokens
that are targets: the assistant turn). The step loss is ``sum of CE over every counted token of the whole global
batch / number of counted tokens``, so ``accum`` micro-batches give the same loss and gradient as one big batch.
Right-padded rows need no attention mask (causal attention never looks right; padding has loss_mask 0), so the fast
pure-causal path is used unless the batch carries ``segment_ids`` (packing).

Cross-entropy is computed over sequence chunks of ``loss_chunk`` positions under ``jax.checkpoint``, so neither
the forward nor the backward pass ever holds ``[batch, seq, vocab]`` fp32 logits.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from s1jax.model.decoder import Decoder

__all__ = [
    "BATCH_KEYS",
    "shift_targets",
    "chunked_cross_entropy",
    "loss_and_grads",
    "make_train_step",
    "state_shardings",
    "batch_shardings",
]

BATCH_KEYS = ("input_ids", "positions", "loss_mask", "attention_mask")


def shift_targets(input_ids: jax.Array, loss_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``[B, T]`` ids and target mask -> targets ``ids[t+1]`` and fp32 weights ``loss_mask[t+1]`` (0 at the end)."""
    targets = jnp.concatenate([input_ids[:, 1:], jnp.zeros_like(input_ids[:, :1])], axis=1)
    weights = jnp.concatenate([loss_mask[:, 1:], jnp.zeros_like(loss_mask[:, :1])], axis=1)
    return targets, weights.astype(jnp.float32)


def chunked_cross_entropy(
    logits_fn: Any, hidden: jax.Array, targets: jax.Array, weights: jax.Array, chunk: int = 0
) -> jax.Array:
    """Sum over positions of ``weights * CE(logits_fn(hidden), targets)`` (fp32 scalar).

    ``hidden`` [B, T, E]; ``logits_fn`` maps [B, C, E] to fp32 [B, C, V]. With ``0 < chunk < T`` the sequence is
    processed ``chunk`` positions at a time in a ``lax.scan`` whose body is rematerialised.
    """

    def piece(h: jax.Array, t: jax.Array, w: jax.Array) -> jax.Array:
        logits = logits_fn(h).astype(jnp.float32)  # [B, C, V]
        lse = jax.nn.logsumexp(logits, axis=-1)
        # one-hot contraction instead of a gather: stays local when the vocab axis is sharded over `tensor`
        target_logit = jnp.einsum("bcv,bcv->bc", logits, jax.nn.one_hot(t, logits.shape[-1], dtype=logits.dtype))
        return jnp.sum((lse - target_logit) * w)

    batch, seq = targets.shape
    if chunk <= 0 or chunk >= seq:
        return piece(hidden, targets, weights)
    n = -(-seq // chunk)
    pad = n * chunk - seq
    if pad:  # zero-weight padding so every chunk has the same shape
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
        weights = jnp.pad(weights, ((0, 0), (0, pad)))
    hs = hidden.reshape(batch, n, chunk, hidden.shape[-1]).swapaxes(0, 1)  # [n, B, C, E]
    ts = targets.reshape(batch, n, chunk).swapaxes(0, 1)
    ws = weights.reshape(batch, n, chunk).swapaxes(0, 1)
    body = jax.checkpoint(piece)

    def step(total: jax.Array, xs: tuple[jax.Array, ...]) -> tuple[jax.Array, None]:
        return total + body(*xs), None

    total, _ = jax.lax.scan(step, jnp.zeros((), jnp.float32), (hs, ts, ws))
    return total


def _micro_loss(module: Decoder, loss_chunk: int, params: Any, micro: dict[str, jax.Array], denom: jax.Array):
    """(loss_sum / denom, loss_sum) for one micro-batch [M, T]."""
    hidden, _ = module.apply(
        {"params": params},
        micro["input_ids"],
        micro["positions"],
        segment_ids=micro.get("segment_ids"),
        return_hidden=True,
    )
    targets, weights = shift_targets(micro["input_ids"], micro["loss_mask"])

    def logits_fn(h: jax.Array) -> jax.Array:
        return module.apply({"params": params}, h, method=Decoder.logits)

    loss_sum = chunked_cross_entropy(logits_fn, hidden, targets, weights, loss_chunk)
    return loss_sum / denom, loss_sum


def loss_and_grads(
    module: Decoder, params: Any, batch: dict[str, jax.Array], *, loss_chunk: int = 0, grad_shardings: Any = None
) -> tuple[jax.Array, Any, jax.Array]:
    """Token-weighted loss and its gradient over ``batch`` ``[accum, micro, T]``; returns (loss, grads, n_tokens).

    Gradients are accumulated in fp32 over the ``accum`` axis with ``lax.scan``.
    """
    _, weights = jax.vmap(shift_targets)(batch["input_ids"], batch["loss_mask"])
    n_tokens = jnp.sum(weights)
    denom = jnp.maximum(n_tokens, 1.0)
    grad_fn = jax.value_and_grad(functools.partial(_micro_loss, module, loss_chunk), has_aux=True)

    def constrain(tree: Any) -> Any:
        return tree if grad_shardings is None else jax.lax.with_sharding_constraint(tree, grad_shardings)

    accum = batch["input_ids"].shape[0]
    if accum == 1:
        (loss, _), grads = grad_fn(params, {k: v[0] for k, v in batch.items()}, denom)
        return loss, constrain(jax.tree_util.tree_map(lambda g: g.astype(jnp.float32), grads)), n_tokens

    def body(carry: tuple[Any, jax.Array], micro: dict[str, jax.Array]):
        g_acc, l_acc = carry
        (loss, _), grads = grad_fn(params, micro, denom)
        g_acc = jax.tree_util.tree_map(lambda a, g: a + g.astype(jnp.float32), g_acc, grads)
        return (constrain(g_acc), l_acc + loss), None

    zeros = constrain(jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), params))
    (grads, loss), _ = jax.lax.scan(body, (zeros, jnp.zeros((), jnp.float32)), batch)
    return loss, grads, n_tokens


def state_shardings(param_shardings: Any, tx: optax.GradientTransformation, params_shape: Any, mesh: Mesh) -> dict:
    """Shardings of the train state ``{"params", "opt_state", "step"}``: optimizer moments follow their parameter,
    scalars (counts) are replicated."""
    opt_shape = jax.eval_shape(tx.init, params_shape)
    rep = NamedSharding(mesh, PartitionSpec())
    flat, _ = jax.tree_util.tree_flatten_with_path(params_shape)
    by_shape_path = {}
    p_shard_flat = jax.tree_util.tree_leaves(param_shardings)
    for (path, leaf), sh in zip(flat, p_shard_flat):
        by_shape_path[tuple(path)] = sh

    def pick(path: tuple, leaf: Any) -> NamedSharding:
        # optax states embed the params tree (mu, nu); match on the trailing path that names a parameter
        for n in range(len(path), 0, -1):
            sh = by_shape_path.get(tuple(path[-n:]))
            if sh is not None and len(sh.spec) <= leaf.ndim:
                return sh
        return rep

    opt_shardings = jax.tree_util.tree_map_with_path(pick, opt_shape)
    return {"params": param_shardings, "opt_state": opt_shardings, "step": rep}


def batch_shardings(mesh: Mesh, keys: tuple[str, ...] = BATCH_KEYS) -> dict[str, NamedSharding]:
    """``[accum, micro, T]`` arrays: micro-batch over data x fsdp."""
    spec = PartitionSpec(None, ("data", "fsdp"), None)
    return {k: NamedSharding(mesh, spec) for k in keys}


def make_train_step(
    module: Decoder,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    shardings: dict,
    batch_sharding: dict[str, NamedSharding],
    *,
    loss_chunk: int = 0,
    nan_policy: str = "stop",
    donate: bool = True,
):
    """``step(state, batch) -> (state, metrics)`` jitted with explicit shardings.

    ``nan_policy``: "stop" / "skip" keep the previous params and optimizer state when the loss or gradient norm is
    not finite (``metrics["finite"] == 0``; the loop then stops or carries on); "none" applies the update as is.
    """
    if nan_policy not in ("stop", "skip", "none"):
        raise ValueError(f"nan_policy must be 'stop', 'skip' or 'none', got {nan_policy!r}")
    mesh = jax.tree_util.tree_leaves(shardings["params"])[0].mesh
    rep = NamedSharding(mesh, PartitionSpec())

    def step(state: dict, batch: dict[str, jax.Array]) -> tuple[dict, dict]:
        params, opt_state = state["params"], state["opt_state"]
        loss, grads, n_tokens = loss_and_grads(
            module, params, batch, loss_chunk=loss_chunk, grad_shardings=shardings["params"]
        )
        grad_norm = optax.global_norm(grads)
        grads = jax.tree_util.tree_map(lambda g, p: g.astype(p.dtype), grads, params)
        updates, new_opt = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        if nan_policy != "none":
            keep = functools.partial(jax.tree_util.tree_map, lambda new, old: jnp.where(finite, new, old))
            new_params, new_opt = keep(new_params, params), keep(new_opt, opt_state)
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": schedule(state["step"]),
            "loss_tokens": n_tokens,
            "real_tokens": jnp.sum(batch["attention_mask"]).astype(jnp.float32),
            "finite": finite.astype(jnp.int32),
        }
        return {"params": new_params, "opt_state": new_opt, "step": state["step"] + 1}, metrics

    metric_shardings = {k: rep for k in ("loss", "grad_norm", "lr", "loss_tokens", "real_tokens", "finite")}
    return jax.jit(
        step,
        in_shardings=(shardings, batch_sharding),
        out_shardings=(shardings, metric_shardings),
        donate_argnums=(0,) if donate else (),
    )
