"""Device mesh (data, fsdp, tensor), logical-axis rules, and helpers to shard / gather pytrees.

Parameters and activations are annotated with logical axis names in the model; the rules here decide which mesh
axes each name maps to. The mapping is shape-aware: a dimension that does not divide evenly over its mesh axes
(e.g. 2 KV heads on tensor=4) is replicated instead of failing, so one rule set serves every model size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "MESH_AXES",
    "DEFAULT_RULES",
    "INFERENCE_RULES",
    "make_mesh",
    "mesh_from_config",
    "logical_to_spec",
    "logical_to_shardings",
    "shard_pytree",
    "gather_pytree",
    "batch_sharding",
    "replicated",
]

MESH_AXES = ("data", "fsdp", "tensor")

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

# Megatron-style tensor parallelism over heads / MLP / vocab, ZeRO-3-style FSDP over the embedding dimension,
# batch over data x fsdp.
DEFAULT_RULES: Rules = (
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
    ("cache_batch", ("data", "fsdp")),
    ("cache_length", None),
    ("cache_kv_heads", "tensor"),
)

# Inference (``s1jax.inference.mesh``): Megatron tensor parallelism over heads / MLP / vocab and nothing over the
# embedding dimension, so a decode step reads its weight shards in place instead of all-gathering every layer's
# weights per token (ZeRO-3 for decode would move the whole model over the interconnect once per token). The
# ``fsdp`` axis, if larger than 1, is a second row axis next to ``data``: rows and the KV cache's rows are split
# over data x fsdp, weights are replicated over both.
INFERENCE_RULES: Rules = tuple((name, None if name == "embed" else axes) for name, axes in DEFAULT_RULES)


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh over ``devices`` (default: all). At most one size may be -1 (fill)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [int(data), int(fsdp), int(tensor)]
    if sum(s == -1 for s in sizes) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} tensor={tensor}")
    if any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh sizes must be positive or -1, got data={data} fsdp={fsdp} tensor={tensor}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(
                f"mesh data={data} fsdp={fsdp} tensor={tensor}: {len(devices)} devices are not divisible by {known}"
            )
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise ValueError(
            f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs {math.prod(sizes)} devices, "
            f"but {len(devices)} are available"
        )
    try:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(tuple(sizes), devices=devices)
    except Exception:  # noqa: BLE001 - topology-aware placement is best effort (e.g. CPU fake devices)
        grid = np.asarray(devices).reshape(sizes)
    return Mesh(grid, MESH_AXES)


def mesh_from_config(cfg: Any) -> Mesh:
    """From a config group with ``data``, ``fsdp``, ``tensor`` fields."""
    return make_mesh(data=cfg.get("data", 1), fsdp=cfg.get("fsdp", -1), tensor=cfg.get("tensor", 1))


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules: Rules = DEFAULT_RULES) -> PartitionSpec:
    """Map one array's logical axis names to a PartitionSpec, replicating dims that do not divide evenly."""
    rule_map = dict(rules)
    used: set[str] = set()
    out: list[Any] = []
    for name, size in zip(names, shape):
        target = rule_map.get(name) if name is not None else None
        axes = [target] if isinstance(target, str) else list(target or [])
        axes = [a for a in axes if a not in used and mesh.shape.get(a, 1) > 1]
        while axes and size % math.prod(mesh.shape[a] for a in axes):
            axes.pop()
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
    return PartitionSpec(*out)


def logical_to_shardings(logical_specs: Any, shapes: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Any:
    """Tree of logical PartitionSpecs (from ``nn.get_partition_spec``) + tree of shapes -> tree of NamedSharding."""

    def one(spec: PartitionSpec, shape: Any) -> NamedSharding:
        dims = tuple(getattr(shape, "shape", shape))
        names = tuple(spec) + (None,) * (len(dims) - len(tuple(spec)))
        return NamedSharding(mesh, logical_to_spec(names, dims, mesh, rules))

    return jax.tree_util.tree_map(one, logical_specs, shapes, is_leaf=lambda x: isinstance(x, PartitionSpec))


def shard_pytree(tree: Any, shardings: Any) -> Any:
    """Place every leaf of ``tree`` (host or device arrays) onto its sharding."""
    return jax.tree_util.tree_map(lambda x, s: jax.device_put(x, s), tree, shardings)


def gather_pytree(tree: Any) -> Any:
    """Fully replicated host (NumPy) copies of a possibly sharded, possibly multi-host pytree."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree_util.tree_map(lambda x: np.asarray(jax.device_get(x)), tree)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Leading (batch) dimension over data x fsdp, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp"), *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
