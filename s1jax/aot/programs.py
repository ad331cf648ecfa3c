"""The s1 device programs, built from the project's own code on abstract inputs, ready to lower for a target mesh.

Nothing here is a stand-in: the train step is ``s1jax.train.step.make_train_step`` with the config's optimizer
(``make_optimizer``), remat policy, attention implementation, loss chunking and the shardings the trainer uses
(``param_shardings`` + ``state_shardings`` + ``batch_shardings``); inference is the engine's prefill and decode loop
(``s1jax.inference.engine.Engine``) for a batch, prompt bucket and cache length. Inputs are
``jax.ShapeDtypeStruct`` with shardings, so no memory is allocated and no weights are read (a ``model.path`` only
contributes its ``config.json``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from s1jax.aot import analytic
from s1jax.inference.budget import ForcingSpec
from s1jax.inference.budget import initial_rows
from s1jax.inference.engine import Engine, bucket
from s1jax.inference.scheduler import empty_rows
from s1jax.inference.sampling import Sampling, row_keys
from s1jax.model.config import ModelConfig
from s1jax.model.params import build_decoder, param_shapes, param_shardings
from s1jax.model.presets import preset_config
from s1jax.train.checkpoint import read_model_config
from s1jax.train.optimizer import make_optimizer
from s1jax.train.step import BATCH_KEYS, batch_shardings, make_train_step, state_shardings

__all__ = ["Program", "model_config_for", "train_programs", "inference_programs", "engine_programs",
           "total_train_steps", "abstract_forcing_spec", "validate_train", "validate_inference"]

S1K_ROWS = 1000  # s1K and s1K-1.1 both have 1000 examples: 63 steps per epoch at batch 16, 315 in 5 epochs


@dataclasses.dataclass
class Program:
    """One jitted program and its abstract arguments (or a function of the compiled programs before it)."""

    name: str  # "train_step", "prefill", "decode"
    fn: Any  # the jax.jit-wrapped function
    args: tuple | Callable[[dict[str, Any]], tuple]  # abstract args, or f({name: (lowered, compiled)}) -> args
    shape: str  # what one call processes, in words
    flops: float  # analytic FLOPs of one call (train: a step; prefill: the batch; decode: one loop iteration)
    calls: int  # calls (train steps, decode iterations) in a whole run / generation
    knobs: tuple[str, ...]  # settings that reduce memory, for the "does not fit" message
    kwargs: dict = dataclasses.field(default_factory=dict)
    timing: str = "compute"  # "compute": FLOPs at an MFU; "memory": decode steps bound by HBM bandwidth
    notes: tuple[str, ...] = ()  # where the compiled program departs from the run's, and why


def cudnn_available() -> bool:
    """Whether cuDNN can be loaded on this host (``jax.nn.dot_product_attention(implementation="cudnn")`` asks for
    its version while tracing, so without it the fused-attention program cannot even be built)."""
    try:
        from jax._src.cudnn.fused_attention_stablehlo import check_cudnn_version

        check_cudnn_version()
        return True
    except Exception:  # noqa: BLE001 - RuntimeError("cuDNN not found") or no CUDA plugin at all
        return False


def attention_for_target(attention_impl: str, platform: str) -> tuple[str | None, tuple[str, ...]]:
    """The attention implementation to compile and a note when it is not the run's own.

    cuDNN flash attention is traced and compiled by cuDNN itself, which needs the CUDA libraries (and a GPU) that a
    compile-only host lacks. The query-chunked attention stands in: exact attention with the same O(seq) memory
    class; its per-block ``[batch, heads, 512, seq]`` fp32 scores make it use more memory than the fused kernel, so
    a fit with it is a fit with cuDNN."""
    impl = attention_impl or None
    if impl == "cudnn" and platform == "tpu":
        raise ValueError("model.attention_impl='cudnn' is an NVIDIA kernel; on TPU use 'chunked' (the TPU configs do)")
    if impl == "cudnn" and not cudnn_available():
        return "chunked", ("attention: compiled with model.attention_impl='chunked' in place of 'cudnn' (cuDNN cannot "
                           "be loaded on this host); chunked keeps more scores per block, so this bounds the cuDNN "
                           "program's memory from above",)
    return impl, ()


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def model_config_for(group: Any) -> tuple[ModelConfig, str]:
    """The architecture a ``model`` config group names, and where it came from. No weights are read.

    ``path``: an HF directory (its config.json) or an s1jax checkpoint (s1jax_model.json); a path that does not
    exist on this host falls back to ``preset`` (the shipped configs name both)."""
    path = str(group.get("path", "") or "")
    if path and os.path.isfile(os.path.join(path, "config.json")):
        return ModelConfig.from_hf_file(path), os.path.join(path, "config.json")
    if path and os.path.isfile(os.path.join(path, "s1jax_model.json")):
        return read_model_config(path), os.path.join(path, "s1jax_model.json")
    preset = str(group.get("preset", "") or "")
    if preset:
        where = f"preset {preset!r}" + (f" ({path} not found here)" if path else "")
        return preset_config(preset), where
    raise ValueError(f"model: {'model.path ' + repr(path) + ' has no config.json and ' if path else ''}"
                     "no model.preset; set --config.model.preset (e.g. qwen2_5_32b) or a model.path with config.json")


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------


def total_train_steps(cfg: Any) -> int:
    """Optimizer steps of the run: ceil(rows / global batch) per epoch (s1 keeps the last partial batch) x epochs,
    capped by ``train.max_steps``. Rows: ``aot.dataset_rows`` (s1K: 1000), or ``data.max_examples`` if smaller."""
    t = cfg.train
    rows = int(cfg.get("aot", {}).get("dataset_rows", S1K_ROWS) or S1K_ROWS)
    if cfg.data.get("max_examples", 0):
        rows = min(rows, int(cfg.data.max_examples))
    gbs = int(t.global_batch_size)
    per_epoch = rows // gbs if cfg.data.get("drop_last", False) else -(-rows // gbs)
    total = per_epoch * int(t.epochs)
    if t.get("max_steps", 0):
        total = min(total, int(t.max_steps))
    return max(total, 1)


def validate_train(cfg: Any, mesh_shape: tuple[int, int, int]) -> None:
    """The checks ``s1jax.train.sft.plan`` makes, before anything is compiled."""
    t = cfg.train
    gbs, accum = int(t.global_batch_size), int(t.grad_accum)
    if gbs <= 0 or accum <= 0 or gbs % accum:
        raise ValueError(f"train.global_batch_size={gbs} is not divisible by train.grad_accum={accum}")
    micro = gbs // accum
    batch_devices = mesh_shape[0] * mesh_shape[1]
    if micro % batch_devices:
        raise ValueError(
            f"micro-batch {micro} (= global_batch_size {gbs} / grad_accum {accum}) must be divisible by data x fsdp = "
            f"{batch_devices} (mesh {mesh_shape}); change the mesh (e.g. more tensor) or the batch")
    if int(cfg.data.block_size) <= 0:
        raise ValueError(f"data.block_size must be positive, got {cfg.data.block_size}")


def train_programs(cfg: Any, mesh: Mesh, config: ModelConfig) -> list[Program]:
    """The train step at the config's largest batch shape: ``[grad_accum, micro, block_size]``."""
    t, d = cfg.train, cfg.data
    gbs, accum, block = int(t.global_batch_size), int(t.grad_accum), int(d.block_size)
    steps = total_train_steps(cfg)
    param_dtype = jnp.dtype(cfg.model.param_dtype or cfg.model.dtype)
    tx, schedule = make_optimizer(t, steps)
    params = param_shapes(config, param_dtype)
    p_shard = param_shardings(config, mesh)
    shardings = state_shardings(p_shard, tx, params, mesh)
    state = {
        "params": _abstract(params, p_shard),
        "opt_state": _abstract(jax.eval_shape(tx.init, params), shardings["opt_state"]),
        "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=shardings["step"]),
    }
    keys = BATCH_KEYS + (("segment_ids",) if d.get("packing", False) else ())
    b_shard = batch_shardings(mesh, keys)
    batch = {k: jax.ShapeDtypeStruct((accum, gbs // accum, block), jnp.int32, sharding=b_shard[k]) for k in keys}
    # the module exactly as s1jax.train.sft.train builds it
    platform = next(iter(mesh.devices.flat)).platform
    attention, notes = attention_for_target(cfg.model.attention_impl, platform)
    module = build_decoder(config, dtype=cfg.model.dtype, param_dtype=param_dtype, remat_policy=t.remat,
                           attention_impl=attention, mesh=mesh)
    step = make_train_step(module, tx, schedule, shardings, b_shard, loss_chunk=int(t.loss_chunk),
                           nan_policy=t.nan_policy)
    m = dict(mesh.shape)
    knobs = (
        f"train.remat (now {t.remat!r}; 'full' keeps the least)",
        f"data.block_size (now {block})",
        f"train.grad_accum (now {accum}; more accumulation = a smaller micro-batch per device)",
        f"mesh.fsdp / mesh.tensor (now {m['fsdp']} / {m['tensor']}; fsdp splits the weights and optimizer state, "
        "tensor also splits activations)",
        f"train.loss_chunk (now {t.loss_chunk}; positions of [batch, chunk, vocab] fp32 logits at a time)",
        f"train.global_batch_size (now {gbs})",
    )
    shape = f"{gbs} x {block} tokens ({accum} x {gbs // accum} micro-batch), {steps} steps"
    return [Program("train_step", step, (state, batch), shape, analytic.train_step_flops(config, gbs, block), steps,
                    knobs, notes=notes)]


# ----------------------------------------------------------------------------------------------------------------------
# Inference
# ----------------------------------------------------------------------------------------------------------------------


def abstract_forcing_spec(vocab_size: int) -> Any:
    """A ForcingSpec with the token counts of the s1 strings under the Qwen2.5 tokenizer, without loading one.

    Only the lengths shape the compiled loop (queue and tail sizes): "Wait" 1 token, "<|im_start|>answer" 2,
    "<|im_start|>answer\\nFinal Answer:" 6, "\\n" 1, stops <|im_start|> / <|im_end|> / <|endoftext|> 1 each. The ids
    are Qwen's, folded into the vocabulary so small test models compile the same program."""
    def ids(*xs: int) -> tuple[int, ...]:
        return tuple(int(x) % vocab_size for x in xs)

    im_start, im_end, eot, nl = 151644, 151645, 151643, 198
    end = ids(im_start, 9217)  # <|im_start|> answer
    return ForcingSpec(
        ignore=ids(14190),  # Wait
        end=end,
        end_max=end + ids(nl, 19357, 21806, 25),  # \n Final Answer :
        newline=ids(nl),
        think_stops=(ids(im_start), ids(im_end), ids(eot)),
        answer_stops=(ids(im_end), ids(eot)),
        vocab_size=int(vocab_size),
    )


def validate_inference(cfg: Any) -> tuple[int, int, int]:
    """(rows, prompt_len, cache_len) of an inference config; rows is the engine's power-of-two bucket."""
    batch, prompt, cache = int(cfg.batch_size), int(cfg.prompt_len), int(cfg.max_cache_len)
    if batch < 0:
        raise ValueError(f"batch_size must be positive (0: search the largest that fits), got {batch}")
    if prompt <= 0:
        raise ValueError(f"prompt_len must be positive, got {prompt}")
    if cache <= prompt:
        raise ValueError(f"max_cache_len ({cache}) must exceed prompt_len ({prompt}): the cache holds the prompt "
                         "and every generated token")
    return (bucket(batch) if batch else 0), bucket(prompt, 32), cache


def inference_programs(cfg: Any, mesh: Mesh, config: ModelConfig, rows: int) -> list[Program]:
    """Prefill + budget-forcing decode loop of one generate() batch of ``rows`` on ``mesh`` (tensor-parallel
    weights as ``load_model(..., mesh=mesh)`` places them)."""
    _, prompt, cache = validate_inference(cfg)
    dtype = jnp.dtype(cfg.model.dtype)
    param_dtype = jnp.dtype(cfg.model.param_dtype or cfg.model.dtype)
    sampling = Sampling(**cfg.sampling.to_dict())
    attention, notes = attention_for_target(cfg.model.attention_impl, next(iter(mesh.devices.flat)).platform)
    engine = Engine(config, dtype.name, attention, abstract_forcing_spec(config.vocab_size), sampling)
    params = _abstract(param_shapes(config, param_dtype), param_shardings(config, mesh))
    m = dict(mesh.shape)
    knobs = (f"batch_size (now {rows})", f"max_cache_len (now {cache})",
             f"mesh.tensor (now {m['tensor']}; splits weights and KV heads)", f"model.dtype (now {dtype.name})")
    programs = engine_programs(engine, mesh, params, rows, prompt, cache, knobs)
    return [dataclasses.replace(p, notes=p.notes + notes) for p in programs]


def engine_programs(engine: Any, mesh: Mesh, params: Any, rows: int, prompt_len: int, cache_len: int,
                    knobs: tuple[str, ...]) -> list[Program]:
    """The device programs ``s1jax.generate`` runs: ``engine.refill`` (one question prefilled into a free row slot,
    once per question) and ``engine.decode`` (the budget-forcing ``while_loop`` over every slot). The one place that
    knows the engine's calling convention: re-point it when the engine changes.

    The functions are the engine's own, wrapped as ``Engine.__init__`` wraps them on an accelerator (the decode
    state donated; on this CPU host the engine would turn donation off). Host inputs (prompt, row state, newline
    table) and the zeroed state that ``Engine.init_state`` makes outside any program are replicated, as jit places
    NumPy arguments next to sharded weights; the decode loop gets the state with the shardings the compiled refill
    gives it."""
    rep = NamedSharding(mesh, PartitionSpec())
    host = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep)  # noqa: E731
    spec = engine.spec
    state = jax.eval_shape(lambda r: engine.init_state(r, None, slots=rows, max_len=cache_len),
                           empty_rows(spec, rows))
    prompts = np.zeros((1, prompt_len), np.int32)
    lengths = np.full((1,), prompt_len, np.int32)
    one = np.ones((1,), np.int64)
    row = initial_rows(prompts, lengths, spec, row_keys(0, np.zeros((1,), np.int64)), live=np.ones((1,), bool),
                       limits=dict(max_think=one * cache_len, min_think=one * 0, num_ignore=one * 0,
                                   max_answer=one * 512))
    nl = jax.ShapeDtypeStruct((engine.config.vocab_size,), jnp.bool_, sharding=rep)
    refill = jax.jit(engine._refill, donate_argnums=(1,))
    decode = jax.jit(engine._decode, donate_argnums=(1,))
    refill_args = (params, jax.tree_util.tree_map(host, state), host(np.zeros((1,), np.int32)), host(prompts),
                   host(lengths), jax.tree_util.tree_map(host, row), nl)

    def decode_args(done: dict[str, Any]) -> tuple:
        lowered, compiled = done["refill"]
        decoded = _abstract(lowered.out_info, compiled.output_shardings)
        scalar = lambda dtype: jax.ShapeDtypeStruct((), dtype, sharding=rep)  # noqa: E731
        return (params, decoded, nl, scalar(jnp.int32), scalar(jnp.bool_))

    config = engine.config
    steps = cache_len - prompt_len
    return [
        Program("refill", refill, refill_args, f"1 x {prompt_len} prompt tokens into one of {rows} row slots, "
                f"cache {cache_len}", analytic.prefill_flops(config, 1, prompt_len), rows, knobs),
        Program("decode", decode, decode_args, f"{rows} rows, up to {steps} steps over a {cache_len}-slot cache",
                analytic.decode_step_flops(config, rows, cache_len), steps, knobs, timing="memory"),
    ]


def largest_power_of_two_at_most(n: float) -> int:
    return 1 << max(int(math.floor(math.log2(max(n, 1)))), 0)
