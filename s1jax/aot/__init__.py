"""Ahead-of-time compilation of the real s1 programs for TPU slices and NVIDIA GPUs, from a CPU-only host.

``s1jax compile --config=configs/train/s1_32b.py:v5p-128`` (or :func:`s1jax.aot.compile.compile_for_target`) builds
the train step, or the engine's prefill and decode loop, from the project's own code on abstract inputs, compiles them
with the target's compiler (libtpu / the CUDA plugin: the ``aot`` extra) and reports bytes per device against HBM,
compile time, analytic FLOPs and predicted step and run times. Modules:

- ``targets``: chips (HBM, peak FLOP/s, bandwidth) and target names (``v5p-128``, ``h100x16`` ...)
- ``host_env``: the compile-only process environment (set before JAX is imported) and which compilers are installed
- ``topology``: compile-only devices of a target and the (data, fsdp, tensor) mesh over them
- ``programs``: the train step / prefill / decode programs and their abstract inputs
- ``analytic``: FLOPs and exact per-device bytes from the model shape
- ``compile``: validation first, then compile, memory analysis, fit check, largest-batch search
- ``report``: the printed table, the "does not fit" message, docs/scale.md rows

This package imports only ``targets`` (no JAX), so importing ``s1jax.aot.host_env`` or a ``configs/aot`` file does not
import JAX before :func:`s1jax.aot.host_env.compile_host_env` has run (``JAX_PLATFORMS`` is read when JAX is imported).
"""

from s1jax.aot.targets import CHIPS, Target, TargetError, parse_target

__all__ = ["CHIPS", "Target", "TargetError", "parse_target"]
