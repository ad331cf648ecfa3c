"""Parameter trees of a ``ModelConfig`` without loading anything: shapes, logical specs, shardings, random init.

Shared by the Model API (``s1jax.model.api``) and the checkpoint readers (``s1jax.model.io``): both need to know
where every parameter goes before a byte is read. :func:`build_decoder` is the one place a ``Decoder`` is built.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from s1jax.model.config import ModelConfig
from s1jax.model.decoder import Decoder
from s1jax.sharding import DEFAULT_RULES, logical_to_shardings

__all__ = [
    "as_dtype",
    "build_decoder",
    "param_logical_specs",
    "param_shapes",
    "param_shardings",
    "target_shardings",
    "init_params",
]


def as_dtype(dtype: Any) -> jnp.dtype:
    try:
        return jnp.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"unknown dtype {dtype!r}; use 'float32' or 'bfloat16'") from e


def build_decoder(
    config: ModelConfig,
    *,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
    remat_policy: str = "none",
    attention_impl: str | None = None,
    mesh: Mesh | None = None,
    rules: Any = DEFAULT_RULES,
) -> Decoder:
    """The one place a :class:`Decoder` is constructed: ``dtype`` computes, ``param_dtype`` stores the weights; with
    a ``mesh`` the activations between layers are pinned to their logical sharding under ``rules``."""
    return Decoder(
        config,
        dtype=as_dtype(dtype),
        param_dtype=as_dtype(param_dtype),
        remat_policy=remat_policy,
        attention_impl=attention_impl,
        mesh=mesh,
        rules=tuple(tuple(r) for r in rules),
    )


def _dummy_inputs() -> tuple[jax.Array, jax.Array]:
    ids = jnp.zeros((1, 1), jnp.int32)
    return ids, ids


def param_logical_specs(config: ModelConfig) -> Any:
    """Tree of logical PartitionSpecs for the parameters, computed abstractly (no memory)."""
    module = build_decoder(config)
    boxed = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *_dummy_inputs()))
    return nn.get_partition_spec(boxed)["params"]


def param_shapes(config: ModelConfig, param_dtype: Any = jnp.float32) -> Any:
    """Tree of ``jax.ShapeDtypeStruct`` for the parameters."""
    module = build_decoder(config, param_dtype=param_dtype)
    boxed = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *_dummy_inputs()))
    return nn.unbox(boxed)["params"]


def param_shardings(config: ModelConfig, mesh: Mesh, rules: Any = DEFAULT_RULES) -> Any:
    """Tree of NamedSharding for the parameters on ``mesh``."""
    return logical_to_shardings(param_logical_specs(config), param_shapes(config), mesh, rules)


def target_shardings(config: ModelConfig, mesh: Mesh | None, rules: Any = DEFAULT_RULES) -> Any:
    """Where each parameter goes: its NamedSharding on ``mesh``, or the first device when there is no mesh."""
    if mesh is not None:
        return param_shardings(config, mesh, rules)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(lambda _: device, param_shapes(config))


def init_params(config: ModelConfig, *, seed: int = 0, param_dtype: Any = jnp.float32, mesh: Mesh | None = None, rules: Any = DEFAULT_RULES) -> Any:
    """Random parameters, created directly in their sharding (never whole on one device when a mesh is given)."""
    module = build_decoder(config, param_dtype=param_dtype)

    def init() -> Any:
        return nn.unbox(module.init(jax.random.PRNGKey(seed), *_dummy_inputs()))["params"]

    out_shardings = param_shardings(config, mesh, rules) if mesh is not None else None
    return jax.jit(init, out_shardings=out_shardings)()
