"""Where inference runs: the (data, fsdp, tensor) mesh of ``s1jax generate`` / ``s1jax eval`` and what lives where.

- **Weights**: Megatron tensor parallelism (``s1jax.sharding.INFERENCE_RULES``): attention heads, MLP columns and
  the vocabulary over ``tensor``; nothing over the embedding dimension, so a decode step reads its weight shards in
  place (no per-token all-gather, which ZeRO-style sharding over ``fsdp`` would cost: the whole model over the
  interconnect once per token). Weights are replicated over ``data`` and ``fsdp``.
- **Rows**: the engine's row slots (and so the KV cache's rows) are split over ``data`` x ``fsdp`` (``fsdp`` is a
  second row axis at inference); the number of slots is rounded up to a multiple of that product.
- **KV cache** ``[layers, rows, slots, kv_heads, head_dim]``: rows over data x fsdp, KV heads over ``tensor``. When
  ``tensor`` is a multiple of the KV heads (8 KV heads on tensor 16) each KV head is replicated ``tensor / kv``
  times (``expand_kv_heads``, as vLLM does): the K/V projections' head axis is repeated and the model runs with
  ``num_kv_heads = tensor``, so every chip holds exactly one KV head, the one its query heads attend with
  (query head h still reads original KV head h // (heads / kv): the same numbers, one head per chip instead of
  every head on every chip).
- Everything else of the decode state (row state machines, output buffer, valid masks; a few MB) is replicated, so
  every host reads finished rows from its own devices with no collective.

Every check here is arithmetic on the model config and the device count, so a bad mesh fails before any weight is
read, with the numbers and the fix.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from s1jax.model.config import ModelConfig
from s1jax.model.params import param_shardings
from s1jax.sharding import INFERENCE_RULES, MESH_AXES, make_mesh

__all__ = ["mesh_group", "resolve_sizes", "check_mesh", "inference_mesh", "row_shards", "kv_axis", "cache_spec",
           "param_targets", "place_params", "expand_kv_heads", "prepare", "per_device_bytes", "describe", "mesh_from_group"]

ROWS = ("data", "fsdp")


def mesh_group(data: int = 1, fsdp: int = 1, tensor: int = 1) -> ml_collections.ConfigDict:
    """The ``mesh`` group of the generate / eval configs. All 1 = one device, no sharding (the default); -1 on one
    axis fills it with the remaining devices (of every host)."""
    return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor))


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def resolve_sizes(data: int, fsdp: int, tensor: int, devices: int) -> tuple[int, int, int]:
    """(data, fsdp, tensor) with a -1 filled in, checked against the device count (all hosts together)."""
    sizes = [int(data), int(fsdp), int(tensor)]
    text = f"mesh data={data} fsdp={fsdp} tensor={tensor}"
    if sum(s == -1 for s in sizes) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"{text}: sizes must be positive, with at most one -1 (fill with the remaining devices)")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if devices % known:
            raise ValueError(f"{text}: the other axes ({known}) do not divide the {devices} devices; "
                             f"use sizes whose product divides {devices}")
        sizes[sizes.index(-1)] = devices // known
    need = math.prod(sizes)
    if need > devices:
        raise ValueError(f"{text} needs {need} devices, but only {devices} are available "
                         f"(jax.device_count() over {jax.process_count()} process(es)); shrink the mesh")
    if need != devices and need != 1 and jax.process_count() > 1:
        raise ValueError(f"{text} uses {need} of the {devices} devices of {jax.process_count()} processes; a "
                         f"multi-host mesh must cover every device (sizes whose product is {devices})")
    return sizes[0], sizes[1], sizes[2]


def check_mesh(config: ModelConfig, data: int, fsdp: int, tensor: int, devices: int) -> tuple[int, int, int]:
    """Resolve and check a mesh against the model: ``tensor`` must divide the attention heads and the MLP width, and
    either divide the KV heads or be a multiple of them (then they are replicated). Raises ValueError."""
    data, fsdp, tensor = resolve_sizes(data, fsdp, tensor, devices)
    heads, kv, mlp = config.num_heads, config.num_kv_heads, config.intermediate_size
    if heads % tensor:
        raise ValueError(f"mesh.tensor={tensor} does not divide the model's {heads} attention heads; "
                         f"use a tensor size among {_divisors(heads)}")
    if kv % tensor and tensor % kv:
        raise ValueError(f"mesh.tensor={tensor} and the model's {kv} KV heads: tensor must divide them or be a "
                         f"multiple of them (then each KV head is replicated); use one of {_divisors(kv)} "
                         f"or a multiple of {kv}")
    if mlp % tensor:
        raise ValueError(f"mesh.tensor={tensor} does not divide the model's MLP width {mlp}; "
                         f"use a tensor size that divides {mlp}")
    return data, fsdp, tensor


def inference_mesh(config: ModelConfig, data: int = 1, fsdp: int = 1, tensor: int = 1,
                   devices: Any = None) -> Mesh | None:
    """The checked inference mesh over ``devices`` (default: every device of every host; a single process may use
    the first data x fsdp x tensor of them), or None for 1 x 1 x 1 on a single process (the unsharded engine on the
    first device)."""
    devices = list(jax.devices() if devices is None else devices)
    d, f, t = check_mesh(config, data, fsdp, tensor, len(devices))
    if d * f * t == 1:
        if jax.process_count() > 1:
            raise ValueError(f"mesh data=1 fsdp=1 tensor=1 on {jax.process_count()} processes: a multi-host run "
                             f"needs a mesh over all {len(devices)} devices (e.g. --config.mesh.tensor=...)")
        return None
    return make_mesh(d, f, t, devices=devices[: d * f * t])


def mesh_from_group(group: Any, config: ModelConfig) -> Mesh | None:
    """``inference_mesh`` from a config's ``mesh`` group (missing fields: 1)."""
    return inference_mesh(config, group.get("data", 1), group.get("fsdp", 1), group.get("tensor", 1))


def row_shards(mesh: Mesh | None) -> int:
    """How many ways the engine's row slots are split (data x fsdp; 1 without a mesh)."""
    return 1 if mesh is None else int(mesh.shape["data"] * mesh.shape["fsdp"])


def kv_axis(config: ModelConfig, mesh: Mesh) -> str | None:
    """``"tensor"`` when the KV heads are split over it (after ``expand_kv_heads``), None for tensor 1."""
    t = mesh.shape["tensor"]
    return "tensor" if t > 1 and config.num_kv_heads % t == 0 else None


def expand_kv_heads(model: Any, mesh: Mesh) -> Any:
    """``model`` with each KV head repeated ``tensor / num_kv_heads`` times when tensor exceeds the KV heads (else
    as is): K/V projection kernels ``[layers, embed, kv, head_dim]`` and biases ``[layers, kv, head_dim]`` repeated
    along their head axis, ``config.num_kv_heads = tensor``, the result in its inference shardings (one KV head per
    chip). Query head h of G = heads / kv per group reads KV head h // G before and the copy h // (heads / tensor)
    of the same head after, so the model computes the same function."""
    config, t = model.config, mesh.shape["tensor"]
    if t <= config.num_kv_heads:
        return model
    repeats = t // config.num_kv_heads
    wide = dataclasses.replace(config, num_kv_heads=t)

    def expand(params: Any) -> Any:
        attn = dict(params["layers"]["self_attn"])
        for name in ("k_proj", "v_proj"):
            attn[name] = {k: jax.numpy.repeat(v, repeats, axis=-2) for k, v in attn[name].items()}
        return {**params, "layers": {**params["layers"], "self_attn": attn}}

    params = jax.jit(expand, out_shardings=param_targets(wide, mesh))(model.params)
    return dataclasses.replace(model, config=wide, params=params)


def cache_spec(config: ModelConfig, mesh: Mesh) -> PartitionSpec:
    """Spec of the KV cache's k / v ``[layers, rows, slots, kv_heads, head_dim]``."""
    rows = tuple(a for a in ROWS if mesh.shape[a] > 1)
    return PartitionSpec(None, rows[0] if len(rows) == 1 else (rows or None), None, kv_axis(config, mesh), None)


def param_targets(config: ModelConfig, mesh: Mesh) -> Any:
    """Tree of the parameters' inference NamedShardings (``INFERENCE_RULES``)."""
    return param_shardings(config, mesh, INFERENCE_RULES)


def place_params(params: Any, config: ModelConfig, mesh: Mesh) -> Any:
    """``params`` in their inference shardings: returned as is when they already are (loaded with the mesh and
    ``INFERENCE_RULES``), else copied there once per call (e.g. a model loaded unsharded or with training rules)."""
    targets = param_targets(config, mesh)
    try:
        pairs = jax.tree_util.tree_map(lambda x, s: (x, s), params, targets)
    except ValueError as e:
        raise ValueError(f"the model's parameter tree does not match its config's: {e}") from e
    leaves = jax.tree_util.tree_leaves(pairs, is_leaf=lambda x: isinstance(x, tuple))
    if all(getattr(x, "sharding", None) is not None and x.sharding.is_equivalent_to(s, np.ndim(x)) for x, s in leaves):
        return params
    return jax.tree_util.tree_map(lambda x, s: jax.device_put(x, s), params, targets)


def prepare(model: Any, mesh: Mesh | None) -> tuple[Any, Mesh | None]:
    """The model a generation call runs: with ``mesh`` (default: the model's own), checked against the model, KV
    heads expanded to the tensor axis if it exceeds them, parameters in their inference shardings; without, the
    model as is. Idempotent: preparing a prepared model costs nothing (callers that generate many times, like the
    CLI, prepare once)."""
    mesh = mesh if mesh is not None else getattr(model, "mesh", None)
    if mesh is None:
        return model, None
    if not isinstance(mesh, Mesh) or tuple(mesh.axis_names) != MESH_AXES:
        raise ValueError(f"mesh must be a jax.sharding.Mesh with axes {MESH_AXES} (s1jax.sharding.make_mesh), "
                         f"got {getattr(mesh, 'axis_names', type(mesh).__name__)}")
    check_mesh(model.config, mesh.shape["data"], mesh.shape["fsdp"], mesh.shape["tensor"], mesh.size)
    model = expand_kv_heads(model, mesh)
    params = place_params(model.params, model.config, mesh)
    return dataclasses.replace(model, params=params, mesh=mesh, rules=INFERENCE_RULES), mesh


def per_device_bytes(config: ModelConfig, data: int, fsdp: int, tensor: int, slots: int, max_len: int,
                     itemsize: int, param_itemsize: int | None = None) -> dict[str, int]:
    """Analytic bytes one device holds: its weight shard and its KV-cache share (rows / (data x fsdp), KV heads /
    tensor, at least one). Vocabulary matrices count as split (they are when tensor divides the vocab)."""
    param_itemsize = itemsize if param_itemsize is None else param_itemsize
    c = config
    kv_per_chip = max(c.num_kv_heads, tensor) // tensor  # expand_kv_heads: one head per chip past the KV heads
    per_layer_split = (c.hidden_size * c.num_heads * c.head_dim * 2 + 3 * c.hidden_size * c.intermediate_size) / tensor
    per_layer_kv = 2 * c.hidden_size * kv_per_chip * c.head_dim
    vocab = c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2) / tensor
    params = (c.num_layers * (per_layer_split + per_layer_kv) + vocab) * param_itemsize
    rows = -(-slots // (data * fsdp))
    cache = 2 * c.num_layers * rows * max_len * kv_per_chip * c.head_dim * itemsize
    return {"params": int(params), "cache": int(cache)}


def describe(mesh: Mesh | None, config: ModelConfig) -> str:
    """One line for logs: the mesh and what is split over it."""
    if mesh is None:
        return "mesh: none (one device)"
    t = mesh.shape["tensor"]
    kv = "" if t == 1 else ("KV heads split over tensor" if config.num_kv_heads >= t else
                            f"{config.num_kv_heads} KV heads each replicated {t // config.num_kv_heads}x over tensor")
    return (f"mesh: data={mesh.shape['data']} fsdp={mesh.shape['fsdp']} tensor={mesh.shape['tensor']} "
            f"({mesh.size} devices, {jax.process_count()} process(es)); rows over data x fsdp"
            + (f", {kv}" if kv else ""))
