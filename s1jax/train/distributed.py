"""Multi-host start-up: ``jax.distributed.initialize`` from the ``distributed`` config group or the environment.

- TPU pod slices: ``initialize()`` with no arguments (the TPU runtime knows the coordinator and the process ids).
- GPU clusters under SLURM: ``SLURM_*`` variables are detected by JAX itself (``cluster_detection_method`` auto);
  explicit values win.
- Anything else: ``coordinator_address`` (``host:port``), ``num_processes``, ``process_id`` from the config or from
  ``S1JAX_COORDINATOR_ADDRESS`` / ``S1JAX_NUM_PROCESSES`` / ``S1JAX_PROCESS_ID`` (also the JAX_* names).

``mode``: "auto" initializes when the environment says there are several processes (TPU pod with more than one
worker, SLURM with more than one task, or an explicit coordinator); "on" always; "off" never.
"""

from __future__ import annotations

import os
from typing import Any

import jax

__all__ = ["initialize", "is_initialized", "detect"]

_INITIALIZED = False


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v not in (None, ""):
            return v
    return None


def detect(cfg: Any = None) -> dict[str, Any]:
    """The arguments ``jax.distributed.initialize`` should get ({} = let JAX auto-detect), and whether to call it."""
    get = (lambda k, d=None: cfg.get(k, d)) if cfg is not None else (lambda k, d=None: d)
    mode = str(get("mode", "auto") or "auto")
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"distributed.mode must be 'auto', 'on' or 'off', got {mode!r}")
    address = get("coordinator_address", "") or _env("S1JAX_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS")
    num = get("num_processes", 0) or _env("S1JAX_NUM_PROCESSES", "JAX_NUM_PROCESSES")
    pid = get("process_id", -1)
    if pid is None or int(pid) < 0:
        pid = _env("S1JAX_PROCESS_ID", "JAX_PROCESS_ID")
    local = get("local_device_ids", "") or _env("S1JAX_LOCAL_DEVICE_IDS")
    kwargs: dict[str, Any] = {}
    if address:
        kwargs["coordinator_address"] = str(address)
    if num:
        kwargs["num_processes"] = int(num)
    if pid is not None and int(pid) >= 0:
        kwargs["process_id"] = int(pid)
    if local:
        kwargs["local_device_ids"] = [int(x) for x in str(local).split(",") if x.strip()]
    timeout = get("initialization_timeout", 0)
    if timeout:
        kwargs["initialization_timeout"] = int(timeout)

    tpu_workers = _env("TPU_WORKER_HOSTNAMES")
    multi_tpu = bool(tpu_workers and len(tpu_workers.split(",")) > 1)
    multi_slurm = int(_env("SLURM_NTASKS") or _env("SLURM_NPROCS") or 1) > 1 and _env("SLURM_JOB_ID") is not None
    explicit = "coordinator_address" in kwargs and int(kwargs.get("num_processes", 2)) > 1
    if mode == "off":
        should = False
    elif mode == "on":
        should = True
    else:
        should = explicit or multi_tpu or multi_slurm
    return {"should_initialize": should, "kwargs": kwargs}


def initialize(cfg: Any = None) -> bool:
    """Call ``jax.distributed.initialize`` once if the config/environment asks for it; returns whether it did.

    Must run before anything touches a JAX device. The CPU backend gets gloo collectives for local multi-process runs.
    """
    global _INITIALIZED
    if _INITIALIZED:
        return True
    plan = detect(cfg)
    if not plan["should_initialize"]:
        return False
    kwargs = plan["kwargs"]  # missing num_processes / process_id: JAX fills them in from SLURM / Open MPI
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception:  # noqa: BLE001 - older/newer JAX without the option: default is fine
        pass
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as e:  # noqa: BLE001 - re-raised with the arguments used
        raise RuntimeError(
            f"jax.distributed.initialize({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {e}. "
            "Set distributed.coordinator_address (host:port of process 0), distributed.num_processes and "
            "distributed.process_id, or distributed.mode=off for a single process."
        ) from e
    _INITIALIZED = True
    return True


def is_initialized() -> bool:
    return _INITIALIZED
