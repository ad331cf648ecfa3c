"""Checkpoint formats: HF safetensors directories, ``.gguf`` files, s1jax native checkpoints.

- :mod:`s1jax.model.io.common`: format detection, atomic output directories, tokenizer files.
- :mod:`s1jax.model.io.hf`: HF key map, safetensors reader/writer, the shared sharded placement.
- :mod:`s1jax.model.io.gguf`: GGUF metadata + dequantisation (llama / qwen2).
- :mod:`s1jax.model.io.native`: ``s1jax_model.json`` + orbax params, and trainer CheckpointManager roots.
- hub ids (``org/name[@revision]``) resolve to a local snapshot first (:mod:`s1jax.hub`).

Every importer places each tensor directly into its target sharding (``jax.make_array_from_callback``), so a model
is never materialised whole on one host or device.
"""

from __future__ import annotations

import os
from typing import Any

from jax.sharding import Mesh

from s1jax.model.config import ModelConfig
from s1jax.model.io.common import DEFAULT_MAX_SHARD_BYTES, detect_format
from s1jax.model.io.gguf import gguf_config_from_file, load_gguf
from s1jax.hub import looks_like_hub_id, resolve_checkpoint
from s1jax.model.io.hf import SafetensorsSource, load_hf, read_hf_config, save_hf
from s1jax.model.io.native import load_native, read_model_json, save_native
from s1jax.sharding import DEFAULT_RULES

__all__ = ["load_weights", "save_weights", "read_config", "detect_format", "resolve_checkpoint", "looks_like_hub_id"]


def read_config(path: str, *, check_files: bool = True) -> ModelConfig:
    """The architecture stored at ``path`` without reading any weight: cheap, so commands check their inputs
    (context length, vocabulary) before loading a model. ``check_files`` also reads the safetensors headers of a HF
    checkpoint, so a truncated or corrupt file is reported (file, tensor, bytes) before any work starts. A hub id
    (``org/name[@revision]``) is downloaded first (config, weights and tokenizer files)."""
    path = resolve_checkpoint(path)
    fmt = detect_format(path)
    if fmt == "gguf":
        return gguf_config_from_file(path)
    if fmt == "s1jax":
        return read_model_json(path)[0]
    config = read_hf_config(path)
    if check_files:
        SafetensorsSource(path)
    return config


def load_weights(path: str, *, param_dtype: Any, mesh: Mesh | None = None, rules: Any = DEFAULT_RULES) -> tuple[ModelConfig, Any]:
    """(ModelConfig, params) from ``path`` (or a hub id), each parameter placed in its sharding on ``mesh`` (or
    device 0)."""
    path = resolve_checkpoint(os.fspath(path))
    fmt = detect_format(path)
    if fmt == "gguf":
        return load_gguf(path, param_dtype=param_dtype, mesh=mesh, rules=rules)
    if fmt == "s1jax":
        return load_native(path, param_dtype=param_dtype, mesh=mesh, rules=rules)
    return load_hf(path, param_dtype=param_dtype, mesh=mesh, rules=rules)


def save_weights(
    model: Any,
    out_dir: str,
    format: str = "hf",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    *,
    tokenizer_path: str | None = None,
    dtype: Any = None,
    overwrite: bool = False,
) -> str:
    """Write ``model`` to ``out_dir`` atomically; returns the absolute output path.

    ``format="hf"``: config.json + safetensors (sharded with an index above ``max_shard_bytes``), optionally cast to
    ``dtype``; ``format="s1jax"``: s1jax_model.json + orbax params. ``tokenizer_path`` (a HF dir or tokenizer file)
    is copied alongside. An existing non-empty ``out_dir`` is replaced only with ``overwrite=True``.
    """
    out_dir = os.fspath(out_dir)
    if format == "hf":
        return save_hf(model, out_dir, max_shard_bytes=max_shard_bytes, dtype=dtype, tokenizer_path=tokenizer_path, overwrite=overwrite)
    if format == "s1jax":
        if dtype is not None:
            raise ValueError("dtype casting on export is only supported for format='hf'")
        return save_native(model, out_dir, overwrite=overwrite, tokenizer_path=tokenizer_path)
    raise ValueError(f"unknown export format {format!r}; use 'hf' or 's1jax'")
