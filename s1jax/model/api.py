"""The public model API: ``Model``, ``load_model``, ``load_model_from_group``, ``forward``, ``save_model``.

A ``Model`` is plain data: the architecture config, the parameter pytree (possibly sharded over a mesh), and the
compute dtype. Everything that runs it (forward, generation, training) is a pure function of those.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from s1jax.model import io as weights
from s1jax.model.config import ModelConfig
from s1jax.model.decoder import Decoder
from s1jax.model.params import as_dtype, build_decoder, init_params
from s1jax.model.presets import preset_config
from s1jax.sharding import DEFAULT_RULES

__all__ = ["Model", "load_model", "load_model_from_group", "save_model", "forward", "positions_from_mask",
           "keep_first_layers"]


@dataclasses.dataclass
class Model:
    """Config + parameters (+ mesh). ``params`` is the Flax ``params`` collection, unboxed."""

    config: ModelConfig
    params: Any
    dtype: Any = jnp.bfloat16  # compute dtype
    mesh: Mesh | None = None
    rules: Any = DEFAULT_RULES
    attention_impl: str | None = None

    @property
    def param_dtype(self) -> jnp.dtype:
        return jax.tree_util.tree_leaves(self.params)[0].dtype

    def module(self, remat_policy: str = "none") -> Decoder:
        return build_decoder(
            self.config,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            remat_policy=remat_policy,
            attention_impl=self.attention_impl,
            mesh=self.mesh,
            rules=self.rules,
        )


def keep_first_layers(model: Model, num_layers: int) -> Model:
    """The model with only its first ``num_layers`` decoder blocks (embeddings, final norm and head kept).

    A smoke run of a whole pipeline on real weights at a fraction of the compute (the demo's test preset): the
    blocks are stacked on a leading layer axis (``nn.scan``), so this is a slice, and compile time is unchanged."""
    total = model.config.num_layers
    if not 0 < num_layers <= total:
        raise ValueError(f"num_layers must be in 1..{total} (the model has {total} layers), got {num_layers}")
    if num_layers == total:
        return model
    params = dict(model.params)
    params["layers"] = jax.tree_util.tree_map(lambda x: x[:num_layers], params["layers"])  # [layers, ...]
    return dataclasses.replace(model, config=dataclasses.replace(model.config, num_layers=num_layers), params=params)


def load_model(
    path_or_config: Any,
    dtype: Any = "bfloat16",
    mesh: Mesh | None = None,
    *,
    param_dtype: Any = None,
    seed: int = 0,
    rules: Any = DEFAULT_RULES,
    attention_impl: str | None = None,
) -> Model:
    """Load a model from a HF directory, a ``.gguf`` file or an s1jax checkpoint; or random-init from a config.

    ``dtype`` is the compute dtype; parameters are stored in ``param_dtype`` (default: ``dtype``; training uses
    float32 master weights). With a ``mesh`` every tensor is placed directly into its sharding.
    """
    compute = as_dtype(dtype)
    storage = as_dtype(param_dtype) if param_dtype is not None else compute
    if isinstance(path_or_config, (str, os.PathLike)):
        config, params = weights.load_weights(os.fspath(path_or_config), param_dtype=storage, mesh=mesh, rules=rules)
    else:
        config = path_or_config if isinstance(path_or_config, ModelConfig) else ModelConfig.from_config_dict(path_or_config)
        params = init_params(config, seed=seed, param_dtype=storage, mesh=mesh, rules=rules)
    return Model(config=config, params=params, dtype=compute, mesh=mesh, rules=rules, attention_impl=attention_impl)


def load_model_from_group(group: Any, mesh: Mesh | None = None, rules: Any = DEFAULT_RULES) -> Model:
    """The Model a ``model`` config group describes (``path`` to load, else random ``preset``); every command
    builds its model through this. With a ``mesh`` the weights are read straight into their ``rules`` shardings."""
    source: Any = group.path if group.path else preset_config(group.preset)
    return load_model(
        source,
        dtype=group.dtype,
        mesh=mesh,
        param_dtype=group.param_dtype or None,
        seed=group.seed,
        rules=rules,
        attention_impl=group.attention_impl or None,
    )


def save_model(model: Model, out_dir: str, format: str = "hf", **kwargs: Any) -> str:
    """Write ``model`` to ``out_dir`` (``format="hf"``: config.json + safetensors that ``transformers`` loads)."""
    return weights.save_weights(model, out_dir, format=format, **kwargs)


@functools.lru_cache(maxsize=32)
def _forward_fn(config: ModelConfig, dtype: str, attention_impl: str | None, mesh: Mesh | None, rules: Any):
    @jax.jit
    def run(params, input_ids, attention_mask, positions):
        param_dtype = jax.tree_util.tree_leaves(params)[0].dtype
        module = build_decoder(config, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl,
                               mesh=mesh, rules=rules)
        logits, _ = module.apply({"params": params}, input_ids, positions, attention_mask=attention_mask)
        return logits

    return run


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """RoPE positions that skip padding: the first real token of every row is position 0 (left padding safe)."""
    mask = attention_mask.astype(jnp.int32)
    return jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0)


def forward(model: Model, input_ids: Any, attention_mask: Any = None, positions: Any = None) -> jax.Array:
    """Full-sequence logits ``[batch, seq, vocab]`` (fp32).

    Padding (``attention_mask == 0``) is excluded from attention, and positions default to counting real tokens
    only, so a left-padded row gives the same logits as the unpadded one.
    """
    input_ids = jnp.asarray(input_ids, jnp.int32)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, seq], got shape {input_ids.shape}")
    if attention_mask is None:
        attention_mask = jnp.ones_like(input_ids)
    attention_mask = jnp.asarray(attention_mask, jnp.int32)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
    if positions is None:
        positions = positions_from_mask(attention_mask)
    rules = tuple(tuple(r) for r in model.rules)
    fn = _forward_fn(model.config, jnp.dtype(model.dtype).name, model.attention_impl, model.mesh, rules)
    return fn(model.params, input_ids, attention_mask, jnp.asarray(positions, jnp.int32))
