"""Compile-only devices for a Target, and the (data, fsdp, tensor) mesh over them, on a host without accelerators.

TPU: ``libtpu`` (the ``aot`` extra) provides the TPU compiler; ``get_topology_desc("v5p:4x4x4")`` returns one
compile-only device per chip. GPU: the CUDA PJRT plugin (``jax-cuda12-plugin`` + ``jax-cuda12-pjrt``) compiles for a
``GpuTargetConfigProto`` without a GPU or CUDA libraries (``JAX_SKIP_CUDA_CONSTRAINTS_CHECK=1``). Neither touches the
default backend, so the CPU test suite is unaffected by having them installed.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from typing import Any

from s1jax.aot.targets import Target, TargetError

__all__ = ["BackendMissing", "backend_available", "compile_devices", "target_mesh", "mesh_sizes", "compile_host_env"]

INSTALL_HINT = "install the aot extra: `make aot` (or pip install -e '.[aot]')"


class BackendMissing(RuntimeError):
    """The compiler for a platform is not installed on this host."""


def compile_host_env() -> None:
    """Environment for a compile-only process, set before JAX starts: run on the CPU backend (never probe for an
    attached TPU/GPU; libtpu would otherwise look for a TPU and the metadata server at start-up), and let the CUDA
    plugin load without CUDA libraries. Values the user set win."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
    _compiler_env()


def _compiler_env() -> None:
    """Read when the compilers load: several compile-only processes may hold libtpu at once (it otherwise takes
    /tmp/libtpu_lockfile, meant for one process owning real TPUs), libtpu looks for no metadata server or pod
    workers, and the CUDA plugin needs no CUDA libraries."""
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")  # no pod to find: silences libtpu's start-up error
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")


def backend_available(platform: str) -> bool:
    """Whether the TPU (libtpu) or CUDA (jax_cuda12_plugin) compiler can be loaded here, without loading it."""
    if platform == "tpu":
        return importlib.util.find_spec("libtpu") is not None
    if platform == "cuda":
        return importlib.util.find_spec("jax_plugins.xla_cuda12") is not None or \
            importlib.util.find_spec("jax_cuda12_plugin") is not None
    raise ValueError(f"unknown platform {platform!r}")


@functools.lru_cache(maxsize=32)
def compile_devices(target: Target) -> tuple[Any, ...]:
    """The compile-only devices of ``target`` (one per TPU chip / GPU), cached per target."""
    if not backend_available(target.platform):
        what = "libtpu" if target.platform == "tpu" else "the JAX CUDA plugin (jax-cuda12-plugin, jax-cuda12-pjrt)"
        raise BackendMissing(f"compiling for {target.name} needs {what}; {INSTALL_HINT}")
    from jax.experimental import topologies

    _compiler_env()
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
    from s1jax.sharding import make_mesh

    data, fsdp, tensor = mesh_sizes(mesh_cfg, target)
    return make_mesh(data=data, fsdp=fsdp, tensor=tensor, devices=list(compile_devices(target)))
