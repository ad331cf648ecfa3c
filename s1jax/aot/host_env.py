"""The process environment of a compile-only host, and whether the target compilers are installed, without JAX.

``JAX_PLATFORMS`` is read when ``jax`` is imported (``jax._src.config``), so :func:`compile_host_env` has to run
before anything imports JAX: this module imports neither JAX nor the compilers, and the entry points
(``s1jax compile``, ``python -m s1jax.aot.scale_table``) call it before they import the rest of ``s1jax.aot``.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["BackendMissing", "INSTALL_HINT", "backend_available", "compile_host_env", "compiler_env"]

INSTALL_HINT = "install the aot extra: `make aot` (or pip install -e '.[aot]')"


class BackendMissing(RuntimeError):
    """The compiler for a platform is not installed on this host."""


def compile_host_env() -> None:
    """Environment for a compile-only process, set before JAX is imported: run on the CPU backend (never probe for an
    attached TPU/GPU; libtpu would otherwise look for a TPU and the metadata server at start-up), and let the CUDA
    plugin load without CUDA libraries. Values the user set win."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
    compiler_env()


def compiler_env() -> None:
    """Read when the compilers load: several compile-only processes may hold libtpu at once (it otherwise takes
    /tmp/libtpu_lockfile, meant for one process owning real TPUs), libtpu looks for no metadata server or pod
    workers, and the CUDA plugin needs no CUDA libraries."""
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")  # no pod to find: silences libtpu's start-up error
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a missing parent package counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # find_spec("a.b") imports "a"; the jax_plugins namespace may not exist
        return False


def backend_available(platform: str) -> bool:
    """Whether the TPU (libtpu) or CUDA (jax_cuda12_plugin) compiler can be loaded here, without loading it."""
    if platform == "tpu":
        return _installed("libtpu")
    if platform == "cuda":
        return _installed("jax_plugins.xla_cuda12") or _installed("jax_cuda12_plugin")
    raise ValueError(f"unknown platform {platform!r}")
