"""s1jax: JAX-native s1 (simple test-time scaling): SFT on s1K and budget forcing for Qwen2.5 / Llama models.

The public API is re-exported lazily so ``import s1jax`` stays cheap and a CLI only imports what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "s1jax.model.api",
    "save_model": "s1jax.model.api",
    "forward": "s1jax.model.api",
    "Model": "s1jax.model.api",
    "ModelConfig": "s1jax.model.config",
    "load_tokenizer": "s1jax.tokenizer",
    "Tokenizer": "s1jax.tokenizer",
    "ChatFormat": "s1jax.tokenizer",
    "Budget": "s1jax.inference.budget",
    "Sampling": "s1jax.inference.sampling",
    "generate": "s1jax.inference.generate",
    "generate_sweep": "s1jax.inference.generate",
    "generate_budget_sweep": "s1jax.inference.generate",
}

_SUBMODULES = ("config", "sharding", "tokenizer", "model", "data", "curation", "train", "inference", "eval", "builders",
               "aot", "demo", "cli")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"s1jax.{name}")
    raise AttributeError(f"module 's1jax' has no attribute {name!r}")
