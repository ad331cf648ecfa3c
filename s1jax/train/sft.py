"""The SFT loop: model + s1K data + AdamW -> sharded train steps -> Orbax checkpoints -> HF export.

``train(cfg)`` runs (or resumes) a whole run described by a config (see ``configs/train/base.py``). Resuming is
exact: the batch of step ``s`` is a pure function of ``(data, seed, s)``, and params, optimizer state and step come
back bit-for-bit from the latest checkpoint, so an interrupted + resumed run reproduces the uninterrupted loss
sequence. SIGTERM (preemption) and SIGINT make the loop save at the next step boundary and return.

A resumed run must be the same run: the checkpoint carries the run fingerprint (``s1jax.train.fingerprint``) and
per-array checksums (``s1jax.train.integrity``); a checkpoint that does not verify is set aside and the previous
one is used. Storage failures (checkpoint or metrics writes) surface as ``StorageError`` within a step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from s1jax.data.batching import SFTBatcher
from s1jax.data.records import record_examples
from s1jax.data.s1k import load_s1k_rows, tokenize_examples
from s1jax.data.sources import source_kind
from s1jax.data.tfds.reader import open_data_source
from s1jax.model.api import Model, load_model_from_group, save_model
from s1jax.model.config import ModelConfig
from s1jax.model.params import build_decoder, param_shapes, param_shardings
from s1jax.sharding import mesh_from_config
from s1jax.tokenizer import load_tokenizer
from s1jax.train import checkpoint as ckpt_lib
from s1jax.train.errors import NonFiniteLossError, RunChangedError, StorageError
from s1jax.train.fingerprint import check_resume, examples_digest, run_fingerprint
from s1jax.train.metrics import flops_per_token, peak_flops_per_device
from s1jax.train.metrics_writer import MetricsWriter
from s1jax.train.optimizer import make_optimizer
from s1jax.train.signals import StopSignals
from s1jax.train.step import batch_shardings, make_train_step, state_shardings

__all__ = ["TrainResult", "NonFiniteLossError", "StorageError", "train", "build_batcher", "build_examples", "data_digest",
           "plan", "global_batch"]


@dataclasses.dataclass
class TrainResult:
    output_dir: str  # local directory with metrics.jsonl / tb / hf
    checkpoint_dir: str
    start_step: int
    step: int  # completed steps at return
    total_steps: int
    losses: list[float]  # of the steps run by this call
    stopped: str  # "done" | "stop_at_step" | "sigterm" | "sigint" (the last two: checkpoint of `step` saved)
    hf_dir: str | None = None


def _allgather(x: np.ndarray) -> np.ndarray:
    """[...] on each process -> [processes, ...] on every process."""
    return np.asarray(multihost_utils.process_allgather(x))


def build_examples(cfg: Any, tokenizer: Any, *, process_index: int = 0, process_count: int = 1):
    """``(examples, TokenizeStats)`` from the ``data`` group. A ``tfds:NAME/VERSION`` source is read through
    ``tfds.data_source`` on demand (each process reads the records of its rows; s1jax.data.records); the other
    sources are read and tokenized whole."""
    d = cfg.data
    if source_kind(d.source) == "tfds":
        source, built = open_data_source(d.source, d.get("tfds_dir", ""), d.split)
        return record_examples(
            source, tokenizer, name=str(built.spec), block_size=int(d.block_size), overlong=d.overlong,
            trace=d.trace or None, system=d.get("system"), max_examples=int(d.max_examples or 0),
            process_index=process_index, process_count=process_count,
            allgather=_allgather if process_count > 1 else None,
        )
    rows = load_s1k_rows(d.source, trace=d.trace or None, split=d.split)
    if d.max_examples and d.max_examples > 0:
        rows = rows[: d.max_examples]
    return tokenize_examples(rows, tokenizer, block_size=int(d.block_size), overlong=d.overlong, system=d.get("system"))


def data_digest(examples: Any) -> str:
    """The ``data.sha256`` of the run fingerprint: examples read on demand carry theirs (s1jax.data.records)."""
    return getattr(examples, "sha256", None) or examples_digest(examples)


def build_batcher(cfg: Any, tokenizer: Any, *, process_index: int = 0, process_count: int = 1):
    """Rows -> tokenized examples -> SFTBatcher, from the ``data`` and ``train`` groups."""
    d = cfg.data
    examples, stats = build_examples(cfg, tokenizer, process_index=process_index, process_count=process_count)
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


def _load_model_for_training(cfg: Any, mesh: Mesh, ckpt_root: str, resuming: bool, initial: Model | None):
    """(ModelConfig, params or None). On resume the architecture comes from the checkpoint and no weights load;
    ``initial`` (weights of ``cfg.model`` already in memory) is copied into the mesh instead of reading them again."""
    if resuming:
        return ckpt_lib.read_model_config(ckpt_root), None
    if initial is None:
        model = load_model_from_group(cfg.model, mesh=mesh)
        return model.config, model.params
    dtype = jnp.dtype(cfg.model.param_dtype or cfg.model.dtype)
    shardings = param_shardings(initial.config, mesh)
    # a copy: the train step donates its state, and the caller keeps using its model
    params = jax.tree_util.tree_map(lambda x, s: jax.device_put(jnp.array(x, dtype=dtype, copy=True), s),
                                    initial.params, shardings)
    return initial.config, params


@contextlib.contextmanager
def _storage(what: str):
    """OSError while ``what`` -> StorageError naming it (disk full, read-only, permissions, ...)."""
    try:
        yield
    except OSError as e:
        raise StorageError(f"{what} failed: {type(e).__name__}: {e}") from e


def _bounded(fn: Callable[[], None], seconds: float, what: str, log: Callable[[str], None]) -> None:
    """Run ``fn`` in a daemon thread for at most ``seconds``; log (never raise) its failure or time-out. For the
    clean-up after a failure, which must not hang or hide the first error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    thread = threading.Thread(target=run, name=f"s1jax-cleanup-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log(f"warning: {what} did not finish within {seconds:.0f} s; abandoned")
    elif errors:
        log(f"warning: {what} failed too: {str(errors[0]).splitlines()[0] if str(errors[0]) else type(errors[0]).__name__}")


@dataclasses.dataclass
class SkipLimits:
    """``nan_policy=skip`` bookkeeping: consecutive and total skipped steps against their limits (0 = no limit)."""

    max_consecutive: int
    max_total: int
    consecutive: int = 0
    total: int = 0

    def record(self, finite: bool) -> str:
        """Count one step; returns which limits are now exceeded ("3 consecutive > train....=2"), or ""."""
        if finite:
            self.consecutive = 0
            return ""
        self.consecutive += 1
        self.total += 1
        over = [f"{n} {what} > train.{field}={limit}" for n, limit, what, field in (
            (self.consecutive, self.max_consecutive, "consecutive", "nan_skip_max_consecutive"),
            (self.total, self.max_total, "in all", "nan_skip_max_total")) if limit and n > limit]
        return "; ".join(over)


FAILURE_CLEANUP_S = 120.0  # after a failure: how long an in-flight checkpoint save may still take to commit


def _validate_train_group(t: Any) -> None:
    """Cheap checks of the fields this module reads, before any data or model is loaded."""
    if t.nan_policy not in ("stop", "skip", "none"):
        raise ValueError(f"train.nan_policy must be 'stop', 'skip' or 'none', got {t.nan_policy!r}")
    for name in ("nan_skip_max_consecutive", "nan_skip_max_total", "resume_step"):
        if int(t.get(name, 0)) < 0:
            raise ValueError(f"train.{name} must be >= 0 (0 = {'latest' if name == 'resume_step' else 'no limit'}), "
                             f"got {t.get(name)}")
    for name in ("checkpoint_timeout_s", "metrics_timeout_s"):
        if float(t.get(name, 1)) <= 0:
            raise ValueError(f"train.{name} must be > 0 seconds, got {t.get(name)}")


def train(cfg: Any, *, mesh: Mesh | None = None, log: Callable[[str], None] = print,
          initial_model: Model | None = None) -> TrainResult:
    """Run (or resume) the training run ``cfg`` describes. ``jax.distributed`` must already be initialized.

    ``initial_model``: the weights ``cfg.model`` names, already loaded (the demo evaluates the base model first), so
    a fresh run does not read and convert the checkpoint a second time; ignored when resuming.

    Raises ``ValueError`` for a bad config (``RunChangedError`` when resuming a different run), ``StorageError``
    when checkpoints or metrics cannot be written or no checkpoint can be restored, ``NonFiniteLossError`` for
    NaN/inf (``nan_policy``). SIGTERM/SIGINT return ``stopped="sigterm"``/``"sigint"`` after saving."""
    t = cfg.train
    _validate_train_group(t)
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
    tokenizer = load_tokenizer(tok_path, chat_format=str(cfg.model.get("chat_format") or ""))
    batcher, stats = build_batcher(cfg, tokenizer, process_index=jax.process_index(), process_count=jax.process_count())
    geometry = plan(cfg, batcher, mesh)
    total = geometry["total_steps"]
    fingerprint = run_fingerprint(cfg, data_sha256=data_digest(batcher.examples), num_examples=len(batcher.examples))
    log(f"data: {stats.as_dict()}")
    log(f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices ({jax.process_count()} processes)")
    log(f"steps: {total} ({geometry['steps_per_epoch']} per epoch x {t.epochs} epochs, global batch "
        f"{t.global_batch_size} = {geometry['accum']} x {geometry['micro_batch']})")

    checkpointer = ckpt_lib.TrainCheckpointer(
        ckpt_root, save_every=int(t.save_every), keep=int(t.keep_checkpoints), async_save=bool(t.async_checkpoint),
        timeout_s=int(t.get("checkpoint_timeout_s", 1200)),
    )
    existing = checkpointer.all_steps()
    if existing and not t.resume:
        raise ValueError(f"{ckpt_root} already holds checkpoints and train.resume is False: use a new output_dir")
    if int(t.get("resume_step", 0)) and not existing:
        raise ValueError(f"train.resume_step={t.resume_step} but {ckpt_root} holds no checkpoint")
    config, params = _load_model_for_training(cfg, mesh, ckpt_root, bool(existing), initial_model)
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the model only {config.vocab_size} embeddings")
    param_dtype = jnp.dtype(cfg.model.param_dtype or cfg.model.dtype)
    p_shard = param_shardings(config, mesh)
    tx, schedule = make_optimizer(t, total)
    abstract_params = param_shapes(config, param_dtype)
    shardings = state_shardings(p_shard, tx, abstract_params, mesh)

    def check_resumable(step: int, meta: dict) -> None:
        """Before any array is read: the checkpoint belongs to this run (config, data, step count)."""
        where = f"{ckpt_root}/{step}"
        if int(meta.get("total_steps", total)) != total:
            raise RunChangedError(f"resuming {where}: it was made for {meta['total_steps']} steps, this config has "
                                  f"{total} (train.epochs / max_steps / global_batch_size or the data changed)")
        saved_dtype = ckpt_lib.read_param_dtype(ckpt_root)
        if saved_dtype and saved_dtype != param_dtype.name and "fingerprint" not in meta:
            raise RunChangedError(f"resuming {where}: its parameters are {saved_dtype}, model.param_dtype is "
                                  f"{param_dtype.name}; restore the original value or start a new run")
        for change in check_resume(meta.get("fingerprint"), fingerprint, t.get("allow_config_change", ""), where):
            log(f"warning: resuming with an allowed change (train.allow_config_change): {change}")

    restored = None
    if existing:
        abstract_state = {"params": abstract_params, "opt_state": jax.eval_shape(tx.init, abstract_params)}
        restored = checkpointer.restore_verified(
            abstract_state, shardings, resume_step=int(t.get("resume_step", 0)), check_meta=check_resumable, log=log)
    if restored is not None:
        start = batcher.restore(restored.meta["data"])
        state = {**restored.state, "step": jax.device_put(jnp.asarray(start, jnp.int32), shardings["step"])}
        log(f"resumed from {ckpt_root}/{restored.step} (step {start}"
            + (", checksums verified)" if restored.verified else ", unverified)"))
        if is_main and not ckpt_lib.has_tokenizer(ckpt_root):  # a checkpoint from before tokenizers were saved
            with _storage(f"writing the tokenizer to {ckpt_root}"):
                ckpt_lib.write_tokenizer(ckpt_root, tokenizer)
    else:
        params = jax.tree_util.tree_map(lambda p, s: jax.device_put(p.astype(param_dtype), s), params, p_shard)
        opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(params)
        state = {"params": params, "opt_state": opt_state,
                 "step": jax.device_put(jnp.zeros((), jnp.int32), shardings["step"])}
        start = 0
        if is_main:
            with _storage(f"writing {ckpt_lib.MODEL_JSON} and the tokenizer to {ckpt_root}"):
                ckpt_lib.write_model_json(ckpt_root, config, param_dtype)
                ckpt_lib.write_tokenizer(ckpt_root, tokenizer)  # so s1jax.load_tokenizer(<ckpt_root>) works

    module = build_decoder(config, dtype=cfg.model.dtype, param_dtype=param_dtype, remat_policy=t.remat,
                           attention_impl=cfg.model.attention_impl or None, mesh=mesh)
    keys = ("input_ids", "positions", "loss_mask", "attention_mask") + (("segment_ids",) if cfg.data.packing else ())
    b_shard = batch_shardings(mesh, keys)
    step_fn = make_train_step(module, tx, schedule, shardings, b_shard, loss_chunk=int(t.loss_chunk),
                              nan_policy=t.nan_policy)

    writer = MetricsWriter(local_dir, enabled=is_main, tensorboard=bool(t.tensorboard), resume_step=start,
                           timeout_s=float(t.get("metrics_timeout_s", 60.0)))
    peak = peak_flops_per_device(jax.devices()[0].device_kind, float(t.peak_flops))
    n_devices = mesh.devices.size
    bar = None
    if is_main and t.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", dynamic_ncols=True)

    def meta_for(step: int) -> dict:
        return {"step": step, "data": batcher.state(step), "seed": int(t.seed), "total_steps": total,
                "rng": np.asarray(jax.random.key_data(jax.random.PRNGKey(int(t.seed)))).tolist(),
                "fingerprint": fingerprint}

    skips = SkipLimits(int(t.get("nan_skip_max_consecutive", 0)), int(t.get("nan_skip_max_total", 0)))
    losses: list[float] = []
    stopped = "done"
    step = saved = start
    signals = StopSignals()
    failed = True
    try:
        while step < total:
            batch = global_batch(batcher.batch_at(step), geometry["accum"], b_shard, bool(cfg.data.packing))
            seq = batch["input_ids"].shape[-1]
            t0 = time.perf_counter()
            state, metrics = step_fn(state, batch)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            dt = time.perf_counter() - t0
            step += 1
            finite = bool(metrics["finite"])
            losses.append(metrics["loss"])
            processed = int(t.global_batch_size) * seq
            metrics.update(step_time_s=dt, seq_len=seq, tokens_per_s=metrics["real_tokens"] / dt,
                           epoch=(step - 1) // geometry["steps_per_epoch"])
            if peak:
                metrics["mfu"] = flops_per_token(config, seq) * processed / (dt * peak * n_devices)
            if not finite or step % max(int(t.log_every), 1) == 0 or step == total:
                writer.write(step, metrics)  # a non-finite step is always logged, before any stop
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
            exceeded = skips.record(finite)
            if not finite:
                msg = f"non-finite loss/grad norm at step {step}: loss={metrics['loss']} grad_norm={metrics['grad_norm']}"
                if t.nan_policy == "stop":
                    writer.flush()
                    raise NonFiniteLossError(msg + " (update not applied; nan_policy=stop). Lower train.lr, check data.")
                if t.nan_policy == "skip" and exceeded:
                    writer.flush()
                    raise NonFiniteLossError(f"{msg}: skipped {exceeded} (nan_policy=skip). The last checkpoint is "
                                             f"at step {saved}. Lower train.lr, check data.")
                log(msg + (" (update skipped)" if t.nan_policy == "skip" else " (update applied; nan_policy=none)"))
            checkpointer.check()  # an asynchronous save that failed since the last step
            writer.check()
            if checkpointer.save(step, state, meta_for(step), force=step == total):
                saved = step
            if t.stop_at_step and step >= int(t.stop_at_step) and step < total:
                stopped = "stop_at_step"
            else:
                stopped = signals.requested() or "done"
            if stopped != "done":
                signals.release()
                if saved != step:
                    checkpointer.save(step, state, meta_for(step), force=True)
                checkpointer.wait()
                log(f"stopping at step {step} ({stopped}); checkpoint saved in {ckpt_root}; rerun to resume")
                break
        failed = False
    finally:
        signals.release()  # nothing may swallow a SIGTERM from here on
        if bar is not None:
            bar.close()
        if failed:  # keep the first error; clean up within bounds
            _bounded(writer.close, float(t.get("metrics_timeout_s", 60.0)), "closing the metrics writer", log)
            _bounded(checkpointer.close, FAILURE_CLEANUP_S, "finishing the checkpoint in flight", log)
    try:
        writer.close()
    finally:
        checkpointer.close()

    hf_dir = None
    if stopped == "done" and t.export_hf:
        with _storage(f"exporting the model to {os.path.join(local_dir, 'hf')}"):
            hf_dir = export_hf(config, state["params"], os.path.join(local_dir, "hf"), t.export_dtype, tok_path)
        log(f"exported the final model to {hf_dir}")
    return TrainResult(local_dir, ckpt_root, start, step, total, losses, stopped, hf_dir)


def export_hf(config: ModelConfig, params: Any, out_dir: str, dtype: str, tokenizer_path: str | None = None) -> str:
    """``s1jax.save_model(Model(...), out_dir, format="hf", dtype=...)``; called on every process (the writer
    gathers one parameter at a time, process 0 writes)."""
    return save_model(Model(config=config, params=params, dtype=jnp.dtype(dtype)), out_dir, format="hf",
                      dtype=dtype, tokenizer_path=tokenizer_path, overwrite=True)
