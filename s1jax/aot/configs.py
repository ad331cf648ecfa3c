"""The config of an inference compile: one generate()/eval batch of a model on a mesh, for ``configs/aot/*.py``.

Field names follow the generate/eval configs (``model``, ``batch_size``, ``max_cache_len``, ``sampling``) plus what a
compile needs that a CPU run does not: ``target``, ``mesh`` and the prompt bucket ``prompt_len``.
"""

from __future__ import annotations

import ml_collections

from s1jax.model.presets import model_group

__all__ = ["inference_config", "aot_group"]


def aot_group(mfu: float = 0.4, dataset_rows: int = 1000, max_batch: int = 1024) -> ml_collections.ConfigDict:
    """Settings of ``s1jax compile`` itself: the MFU behind predicted times, the training set size behind the step
    count (s1K: 1000 rows), and the largest batch a batch search tries."""
    return ml_collections.ConfigDict(dict(mfu=mfu, dataset_rows=dataset_rows, max_batch=max_batch))


def inference_config(preset: str = "qwen2_5_32b", target: str = "", tensor: int = 1, batch_size: int = 0,
                     prompt_len: int = 512, max_cache_len: int = 32768) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    cfg.model = model_group(preset=preset, dtype="bfloat16")  # path: an HF dir whose config.json names the shape
    cfg.target = target  # e.g. v5p-8, v6e-8, h100x8
    cfg.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=tensor))  # weights + KV heads over tensor
    cfg.batch_size = batch_size  # rows per generate() call (bucketed to a power of two); 0 = the largest that fits
    cfg.prompt_len = prompt_len  # prompt bucket (tokens, rounded up to a power of two >= 32)
    cfg.max_cache_len = max_cache_len  # KV-cache slots per row: prompt + thinking + answer
    cfg.sampling = ml_collections.ConfigDict(dict(temperature=0.0, top_p=1.0, top_k=0, seed=0))
    cfg.aot = aot_group()
    return cfg
