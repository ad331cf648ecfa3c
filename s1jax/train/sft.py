"""The SFT loop: model + s1K data + AdamW -> sharded train steps -> Orbax checkpoints -> HF export.

``train(cfg)`` runs (or resumes) a whole run described by a config (see ``configs/train/base.py``). Resuming is
exact: the batch of step ``s`` is a pure function of ``(data, seed, s)``, and params, optimizer state and step come
back bit-for-bit from the latest checkpoint, so an interrupted + resumed run reproduces the uninterrupted loss
sequence. SIGTERM (preemption) makes the loop save at the next step boundary and return.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from s1jax.data.batching import SFTBatcher
from s1jax.data.s1k import load_s1k_rows, tokenize_examples
from s1jax.model.api import Model, load_model_from_group, save_model
from s1jax.model.config import ModelConfig
from s1jax.model.params import build_decoder, param_shapes, param_shardings
from s1jax.sharding import mesh_from_config
from s1jax.tokenizer import load_tokenizer
from s1jax.train import checkpoint as ckpt_lib
from s1jax.train.metrics import MetricsWriter, flops_per_token, peak_flops_per_device
from s1jax.train.optimizer import make_optimizer
from s1jax.train.step import batch_shardings, make_train_step, state_shardings

__all__ = ["TrainResult", "NonFiniteLossError", "train", "build_batcher", "plan", "global_batch"]


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN/inf and ``nan_policy`` is "stop"."""


@dataclasses.dataclass
class TrainResult:
    output_dir: str  # local directory with metrics.jsonl / tb / hf
    checkpoint_dir: str
    start_step: int
    step: int  # completed steps at return
    total_steps: int
    losses: list[float]  # of the steps run by this call
    stopped: str  # "done" | "sigterm" | "stop_at_step"
    hf_dir: str | None = None


def build_batcher(cfg: Any, tokenizer: Any, *, process_index: int = 0, process_count: int = 1):
    """Rows -> tokenized examples -> SFTBatcher, from the ``data`` and ``train`` groups."""
    d = cfg.data
    rows = load_s1k_rows(d.source, trace=d.trace or None, split=d.split)
    if d.max_examples and d.max_examples > 0:
        rows = rows[: d.max_examples]
    examples, stats = tokenize_examples(
        rows, tokenizer, block_size=int(d.block_size), overlong=d.overlong, system=d.get("system")
    )
    batcher = SFTBatcher(
        examples,
        global_batch_size=int(cfg.train.global_batch_size),
        block_size=int(d.block_size),
        seq_len_multiple=int(d.seq_len_multiple),
        pad_to_block=bool(d.pad_to_block),
        pad_id=int(tokenizer.pad_token_id),
        seed=int(d.seed),
        process_index=process_index,
        process_count=process_count,
        packing=bool(d.packing),
        drop_last=bool(d.get("drop_last", False)),
    )
    return batcher, stats


def plan(cfg: Any, batcher: Any, mesh: Mesh) -> dict[str, int]:
    """Step count and batch geometry; raises ValueError on sizes that do not fit the mesh."""
    t = cfg.train
    gbs, accum = int(t.global_batch_size), int(t.grad_accum)
    if accum <= 0 or gbs % accum:
        raise ValueError(f"train.global_batch_size={gbs} is not divisible by train.grad_accum={accum}")
    micro = gbs // accum
    batch_devices = mesh.shape["data"] * mesh.shape["fsdp"]
    if micro % batch_devices:
        raise ValueError(
            f"micro-batch {micro} (= global_batch_size {gbs} / grad_accum {accum}) must be divisible by "
            f"data x fsdp = {batch_devices} on mesh {dict(mesh.shape)}; change the mesh (e.g. more tensor) or batch"
        )
    if (gbs // jax.process_count()) % accum:
        raise ValueError(f"per-process batch {gbs // jax.process_count()} is not divisible by grad_accum={accum}")
    total = batcher.total_steps(int(t.epochs))
    if t.max_steps and t.max_steps > 0:
        total = min(total, int(t.max_steps))
    if total <= 0:
        raise ValueError(f"no training steps: {batcher.num_rows} rows, global_batch_size {gbs}, epochs {t.epochs}")
    return {"total_steps": total, "steps_per_epoch": batcher.steps_per_epoch, "micro_batch": micro, "accum": accum}


def global_batch(local: dict[str, np.ndarray], accum: int, shardings: dict, keep_segments: bool) -> dict[str, jax.Array]:
    """This process's ``[b, T]`` rows -> global ``[accum, micro, T]`` arrays (``make_array_from_process_local_data``)."""
    out = {}
    for key, sharding in shardings.items():
        if key == "segment_ids" and not keep_segments:
            continue
        x = np.asarray(local[key]).astype(np.int32)
        b, seq = x.shape
        x = x.reshape(accum, b // accum, seq)
        global_shape = (accum, (b // accum) * jax.process_count(), seq)
        out[key] = jax.make_array_from_process_local_data(sharding, x, global_shape)
    return out


class _Preemption:
    """SIGTERM -> flag; checked at step boundaries (agreed across processes)."""

    def __init__(self) -> None:
        self.flag = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.flag = True

    def requested(self) -> bool:
        if jax.process_count() == 1:
            return self.flag
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.array([self.flag]))))

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _load_model_for_training(cfg: Any, mesh: Mesh, ckpt_root: str, resuming: bool):
    """(ModelConfig, params or None). On resume the architecture comes from the checkpoint and no weights load."""
    if resuming:
        return ckpt_lib.read_model_config(ckpt_root), None
    model = load_model_from_group(cfg.model, mesh=mesh)
    return model.config, model.params


def train(cfg: Any, *, mesh: Mesh | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Run (or resume) the training run ``cfg`` describes. ``jax.distributed`` must already be initialized."""
    t = cfg.train
    is_main = jax.process_index() == 0
    mesh = mesh if mesh is not None else mesh_from_config(cfg.mesh)
    remote = ckpt_lib.is_remote(t.output_dir)
    out_dir = t.output_dir.rstrip("/") if remote else os.path.abspath(t.output_dir)
    ckpt_root = f"{out_dir}/checkpoints"
    # metrics (appended JSONL, TensorBoard) and the HF export stay local when checkpoints go to gs://
    local_dir = os.path.abspath(t.get("local_dir") or (os.path.join("runs", os.path.basename(out_dir)) if remote else out_dir))

    tok_path = cfg.model.tokenizer or cfg.model.path
    if not tok_path:
        raise ValueError("no tokenizer: set model.tokenizer (a random-init preset has no tokenizer of its own)")
    tokenizer = load_tokenizer(tok_path)
    batcher, stats = build_batcher(cfg, tokenizer, process_index=jax.process_index(), process_count=jax.process_count())
    geometry = plan(cfg, batcher, mesh)
    total = geometry["total_steps"]
    log(f"data: {stats.as_dict()}")
    log(f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices ({jax.process_count()} processes)")
    log(f"steps: {total} ({geometry['steps_per_epoch']} per epoch x {t.epochs} epochs, global batch "
        f"{t.global_batch_size} = {geometry['accum']} x {geometry['micro_batch']})")

    checkpointer = ckpt_lib.TrainCheckpointer(
        ckpt_root, save_every=int(t.save_every), keep=int(t.keep_checkpoints), async_save=bool(t.async_checkpoint)
    )
    latest = checkpointer.latest_step() if t.resume else None
    if latest is None and checkpointer.latest_step() is not None:
        raise ValueError(f"{ckpt_root} already holds checkpoints and train.resume is False: use a new output_dir")
    config, params = _load_model_for_training(cfg, mesh, ckpt_root, latest is not None)
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the model only {config.vocab_size} embeddings")
    param_dtype = jnp.dtype(cfg.model.param_dtype or cfg.model.dtype)
    p_shard = param_shardings(config, mesh)
    tx, schedule = make_optimizer(t, total)
    abstract_params = param_shapes(config, param_dtype)
    shardings = state_shardings(p_shard, tx, abstract_params, mesh)

    if latest is not None:
        abstract_state = {"params": abstract_params, "opt_state": jax.eval_shape(tx.init, abstract_params)}
        restored, meta = checkpointer.restore(latest, abstract_state, shardings)
        start = batcher.restore(meta["data"])
        if int(meta.get("total_steps", total)) != total:
            raise ValueError(f"checkpoint was made for {meta['total_steps']} steps, this config has {total}")
        state = {**restored, "step": jax.device_put(jnp.asarray(start, jnp.int32), shardings["step"])}
        log(f"resumed from {ckpt_root}/{latest} (step {start})")
        if is_main and not ckpt_lib.has_tokenizer(ckpt_root):  # a checkpoint from before tokenizers were saved
            ckpt_lib.write_tokenizer(ckpt_root, tokenizer)
    else:
        params = jax.tree_util.tree_map(lambda p, s: jax.device_put(p.astype(param_dtype), s), params, p_shard)
        opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(params)
        state = {"params": params, "opt_state": opt_state,
                 "step": jax.device_put(jnp.zeros((), jnp.int32), shardings["step"])}
        start = 0
        if is_main:
            ckpt_lib.write_model_json(ckpt_root, config, param_dtype)
            ckpt_lib.write_tokenizer(ckpt_root, tokenizer)  # so s1jax.load_tokenizer(<ckpt_root>) works

    module = build_decoder(config, dtype=cfg.model.dtype, param_dtype=param_dtype, remat_policy=t.remat,
                           attention_impl=cfg.model.attention_impl or None, mesh=mesh)
    keys = ("input_ids", "positions", "loss_mask", "attention_mask") + (("segment_ids",) if cfg.data.packing else ())
    b_shard = batch_shardings(mesh, keys)
    step_fn = make_train_step(module, tx, schedule, shardings, b_shard, loss_chunk=int(t.loss_chunk),
                              nan_policy=t.nan_policy)

    writer = MetricsWriter(local_dir, enabled=is_main, tensorboard=bool(t.tensorboard))
    peak = peak_flops_per_device(jax.devices()[0].device_kind, float(t.peak_flops))
    n_devices = mesh.devices.size
    preempt = _Preemption()
    bar = None
    if is_main and t.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", dynamic_ncols=True)

    def meta_for(step: int) -> dict:
        return {"step": step, "data": batcher.state(step), "seed": int(t.seed), "total_steps": total,
                "rng": np.asarray(jax.random.key_data(jax.random.PRNGKey(int(t.seed)))).tolist()}

    losses: list[float] = []
    stopped = "done"
    step = saved = start
    try:
        while step < total:
            batch = global_batch(batcher.batch_at(step), geometry["accum"], b_shard, bool(cfg.data.packing))
            seq = batch["input_ids"].shape[-1]
            t0 = time.perf_counter()
            state, metrics = step_fn(state, batch)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            dt = time.perf_counter() - t0
            step += 1
            if not metrics["finite"]:
                msg = f"non-finite loss/grad norm at step {step}: loss={metrics['loss']} grad_norm={metrics['grad_norm']}"
                if t.nan_policy == "stop":
                    raise NonFiniteLossError(msg + " (update not applied; nan_policy=stop). Lower train.lr, check data.")
                log(msg + " (update skipped)")
            losses.append(metrics["loss"])
            processed = int(t.global_batch_size) * seq
            metrics.update(step_time_s=dt, seq_len=seq, tokens_per_s=metrics["real_tokens"] / dt,
                           epoch=(step - 1) // geometry["steps_per_epoch"])
            if peak:
                metrics["mfu"] = flops_per_token(config, seq) * processed / (dt * peak * n_devices)
            if step % max(int(t.log_every), 1) == 0 or step == total:
                writer.write(step, metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
            if checkpointer.save(step, state, meta_for(step), force=step == total):
                saved = step
            if t.stop_at_step and step >= int(t.stop_at_step) and step < total:
                stopped = "stop_at_step"
            elif preempt.requested():
                stopped = "sigterm"
            if stopped != "done":
                if saved != step:
                    checkpointer.save(step, state, meta_for(step), force=True)
                log(f"stopping at step {step} ({stopped}); checkpoint saved in {ckpt_root}; rerun to resume")
                break
    finally:
        preempt.restore()
        if bar is not None:
            bar.close()
        writer.close()
        checkpointer.close()

    hf_dir = None
    if stopped == "done" and t.export_hf:
        hf_dir = export_hf(config, state["params"], os.path.join(local_dir, "hf"), t.export_dtype, tok_path)
        log(f"exported the final model to {hf_dir}")
    return TrainResult(local_dir, ckpt_root, start, step, total, losses, stopped, hf_dir)


def export_hf(config: ModelConfig, params: Any, out_dir: str, dtype: str, tokenizer_path: str | None = None) -> str:
    """``s1jax.save_model(Model(...), out_dir, format="hf", dtype=...)``; called on every process (the writer
    gathers one parameter at a time, process 0 writes)."""
    return save_model(Model(config=config, params=params, dtype=jnp.dtype(dtype)), out_dir, format="hf",
                      dtype=dtype, tokenizer_path=tokenizer_path, overwrite=True)
