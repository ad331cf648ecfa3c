"""Evaluating a 32B model (s1-32B / Qwen2.5-32B shape) with s1's 32768-token context: one batch of the budget-forcing
engine (prefill + decode loop), tensor-parallel over one host. ``:ARG`` is the target:

- ``v5p-8``: 4 TPU v5p chips, tensor=4;  ``v6e-8``: 8 TPU v6e chips, tensor=8;  ``h100x8``: 8 H100, tensor=8.

``batch_size=0`` searches the largest power-of-two batch that fits; set it to check one batch:

    s1jax compile --config=configs/aot/eval_32b.py:v6e-8 [--config.batch_size=16] [--config.model.path=/models/s1-32B]
"""

from s1jax.aot.configs import inference_config

TENSOR = {"v5p-8": 4, "v6e-8": 8, "h100x8": 8, "h200x8": 8, "a100x8": 8}


def get_config(target: str = "v5p-8"):
    if target not in TENSOR:
        raise ValueError(f"unknown target {target!r}; choose from {sorted(TENSOR)}")
    return inference_config("qwen2_5_32b", target=target, tensor=TENSOR[target], batch_size=0, max_cache_len=32768)
