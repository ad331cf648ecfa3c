"""Start-up shared by ``s1jax generate`` and ``s1jax eval``: ``jax.distributed`` (as training starts it) and the
checked inference mesh, both before any weight is read."""

from __future__ import annotations

from typing import Any

from jax.sharding import Mesh

from s1jax.config import ConfigError
from s1jax.inference.mesh import mesh_from_group
from s1jax.model.config import ModelConfig
from s1jax.train import distributed

__all__ = ["start"]


def start(cfg: Any, model_config: ModelConfig) -> Mesh | None:
    """Initialize ``jax.distributed`` if ``cfg.distributed`` / the environment ask for it, then build the
    ``cfg.mesh`` inference mesh for ``model_config`` (None: one device). Raises ConfigError naming the numbers."""
    try:
        distributed.initialize(cfg.get("distributed"))
    except ValueError as e:
        raise ConfigError(f"distributed: {e}") from e
    group = cfg.get("mesh")
    if group is None:
        return None
    try:
        return mesh_from_group(group, model_config)
    except ValueError as e:
        raise ConfigError(f"--config.mesh: {e}") from e
