"""Compile-only devices for a Target, and the (data, fsdp, tensor) mesh over them, on a host without accelerators.

TPU: ``libtpu`` (the ``aot`` extra) provides the TPU compiler; ``get_topology_desc("v5p:4x4x4")`` returns one
compile-only device per chip. GPU: the CUDA PJRT plugin (``jax-cuda12-plugin`` + ``jax-cuda12-pjrt``) compiles for a
``GpuTargetConfigProto`` without a GPU or CUDA libraries (``JAX_SKIP_CUDA_CONSTRAINTS_CHECK=1``). Neither touches the
default backend, so the CPU test suite is unaffected by having them installed. The process environment a compile-only
host needs (set before JAX is imported) is ``s1jax.aot.host_env``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from jax.experimental import topologies

from s1jax.aot.host_env import INSTALL_HINT, BackendMissing, backend_available, compiler_env
from s1jax.aot.targets import Target, TargetError
from s1jax.sharding import make_mesh

__all__ = ["BackendMissing", "backend_available", "compile_devices", "target_mesh", "mesh_sizes"]


@functools.lru_cache(maxsize=32)
def compile_devices(target: Target) -> tuple[Any, ...]:
    """The compile-only devices of ``target`` (one per TPU chip / GPU), cached per target."""
    if not backend_available(target.platform):
        what = "libtpu" if target.platform == "tpu" else "the JAX CUDA plugin (jax-cuda12-plugin, jax-cuda12-pjrt)"
        raise BackendMissing(f"compiling for {target.name} needs {what}; {INSTALL_HINT}")
    compiler_env()
    if target.platform == "tpu":
        kwargs = {"chip_config_name": "megacore"} if target.chip.name == "v4" else {}
        topo = topologies.get_topology_desc(target.topology_name, "tpu", **kwargs)
    else:
        with open(target.spec_path, encoding="utf-8") as f:
            spec = f.read()
        topo = topologies.get_topology_desc(platform="cuda", topology=target.topology_name, target_config=spec)
    devices = tuple(topo.devices)
    if len(devices) != target.num_devices:
        raise TargetError(f"{target.name}: the compiler describes {len(devices)} devices for topology "
                          f"{target.topology_name}, expected {target.num_devices}")
    return devices


def mesh_sizes(mesh_cfg: Any, target: Target) -> tuple[int, int, int]:
    """(data, fsdp, tensor) of a ``mesh`` config group on ``target`` (one -1 fills); errors name the target."""
    sizes = [int(mesh_cfg.get("data", 1)), int(mesh_cfg.get("fsdp", -1)), int(mesh_cfg.get("tensor", 1))]
    text = f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]}"
    if sum(s == -1 for s in sizes) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise TargetError(f"{text}: sizes must be positive, with at most one -1 (fill)")
    known = math.prod(s for s in sizes if s != -1)
    n = target.num_devices
    if -1 in sizes:
        if n % known:
            raise TargetError(f"{text} does not fit {target.describe()}: {n} devices are not divisible by {known}; "
                              f"set --config.mesh.* so that data x fsdp x tensor = {n}")
        sizes[sizes.index(-1)] = n // known
    if math.prod(sizes) != n:
        raise TargetError(f"{text} has {math.prod(sizes)} devices but {target.describe()} has {n}; "
                          f"set --config.mesh.* so that data x fsdp x tensor = {n}")
    return sizes[0], sizes[1], sizes[2]


def target_mesh(mesh_cfg: Any, target: Target) -> Any:
    """The (data, fsdp, tensor) Mesh over the target's compile-only devices, built as a real run builds it."""
    data, fsdp, tensor = mesh_sizes(mesh_cfg, target)
    return make_mesh(data=data, fsdp=fsdp, tensor=tensor, devices=list(compile_devices(target)))
