"""Start-up shared by ``s1jax generate`` and ``s1jax eval``: ``jax.distributed`` (as training starts it) and the
checked inference mesh, both before any weight is read."""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.sharding import Mesh

from s1jax.config import ConfigError
from s1jax.inference.mesh import mesh_from_group
from s1jax.model.config import ModelConfig
from s1jax.train import distributed

__all__ = ["start"]


def start(cfg: Any, model_config: Callable[[], ModelConfig]) -> Mesh | None:
    """Initialize ``jax.distributed`` if ``cfg.distributed`` / the environment ask for it, then build the
    ``cfg.mesh`` inference mesh for the architecture ``model_config()`` returns (read only for a mesh larger than
    one device; None: one device). Raises ConfigError naming the numbers."""
    try:
        distributed.initialize(cfg.get("distributed"))
    except ValueError as e:
        raise ConfigError(f"distributed: {e}") from e
    group = cfg.get("mesh")
    if group is None:
        return None
    sizes = [int(group.get(axis, 1)) for axis in ("data", "fsdp", "tensor")]
    if sizes == [1, 1, 1] and jax.process_count() == 1:
        return None  # one device: nothing to check against the model
    try:
        return mesh_from_group(group, model_config())
    except ValueError as e:
        raise ConfigError(f"--config.mesh: {e}") from e
