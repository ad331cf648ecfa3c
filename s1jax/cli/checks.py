"""Config checks the commands run before any expensive work; each raises ConfigError naming the field and the fix.

Cheap by construction: they read config values, file headers and tokenizers, never model weights, so a typo in a
32B run fails in a second instead of after the model has loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from s1jax.config import ConfigError
from s1jax.model.io import looks_like_hub_id
from s1jax.model.config import ModelConfig
from s1jax.model.io import read_config
from s1jax.model.presets import PRESETS, preset_config
from s1jax.tokenizer.chat_format import CHAT_FORMAT_CHOICES

__all__ = [
    "DTYPES",
    "check_int",
    "check_number",
    "check_int_sequence",
    "check_choice",
    "check_dtype",
    "check_path",
    "check_checkpoint",
    "check_model_source",
    "check_chat_format",
    "model_config_of",
    "check_context",
]

DTYPES = ("float32", "bfloat16", "float16")


def check_int(value: Any, field: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"--config.{field} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"--config.{field} must be >= {minimum}, got {value}")
    return value


def check_number(value: Any, field: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"--config.{field} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"--config.{field} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"--config.{field} must be <= {maximum}, got {value}")
    return float(value)


def check_int_sequence(value: Any, field: str, minimum: int | None = None, allow_empty: bool = False) -> tuple[int, ...]:
    """A tuple/list of integers, e.g. budgets: ``--config.budgets='(512, 1024)'``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not items and not allow_empty:
        raise ConfigError(f"--config.{field} is empty; give at least one value, e.g. --config.{field}='(512, 1024)'")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"--config.{field} must hold integers, e.g. --config.{field}='(512, 1024)'; got {value!r}")
        if minimum is not None and v < minimum:
            raise ConfigError(f"--config.{field} values must be >= {minimum}, got {v}")
    return items


def check_choice(value: Any, field: str, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ConfigError(f"--config.{field} must be one of {list(choices)}, got {value!r}")
    return value


def check_dtype(value: Any, field: str) -> str:
    return check_choice(value, field, DTYPES)


def check_path(path: str, field: str, what: str = "file or directory") -> str:
    if not os.path.exists(path):
        raise ConfigError(f"--config.{field}: {what} {path!r} does not exist")
    return path


def check_checkpoint(path: str, field: str, what: str = "checkpoint (HF dir, .gguf or s1jax checkpoint)") -> str:
    """An existing local path, or a hub id (``org/name[@revision]``, downloaded when the command loads it)."""
    if os.path.exists(os.path.expanduser(path)) or looks_like_hub_id(path):
        return path
    raise ConfigError(f"--config.{field}: {what} {path!r} does not exist, and is not a hub id (org/name or "
                      "org/name@revision)")


def check_model_source(group: Any, field: str = "model") -> None:
    """``path`` must exist (or be a hub id) when set; otherwise ``preset`` must name a known architecture."""
    if group.path:
        check_checkpoint(group.path, f"{field}.path")
    elif group.get("preset") not in PRESETS:
        raise ConfigError(f"set --config.{field}.path to a checkpoint, or --config.{field}.preset to one of "
                          f"{sorted(PRESETS)} for random weights (got preset={group.get('preset')!r})")
    if group.get("tokenizer"):
        check_checkpoint(group.tokenizer, f"{field}.tokenizer", "tokenizer")
    check_chat_format(group.get("chat_format"), f"{field}.chat_format")


def check_chat_format(value: Any, field: str = "model.chat_format") -> str:
    """"" (auto), one of CHAT_FORMAT_CHOICES, or an existing .jinja template file."""
    value = str(value or "")
    if not value or value in CHAT_FORMAT_CHOICES:
        return value
    if value.endswith(".jinja"):
        return check_path(value, field, "chat template file")
    raise ConfigError(f"--config.{field} must be '' (auto), one of {list(CHAT_FORMAT_CHOICES)} or a .jinja file, "
                      f"got {value!r}")


def model_config_of(group: Any, field: str = "model") -> ModelConfig:
    """The architecture a ``model`` group will load, read from the checkpoint's metadata only (no weights)."""
    if not group.path:
        return preset_config(group.preset)
    try:
        return read_config(group.path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--config.{field}.path: {e}") from e


def check_context(tok: Any, prompts: Sequence[str], config: ModelConfig, max_cache_len: int = 0,
                  what: str = "questions") -> int:
    """Every rendered prompt must leave room for at least one generated token in the model's context
    (``max_position_embeddings``) and in ``max_cache_len`` when set. Returns the longest prompt's token count."""
    lengths = [len(ids) for ids in tok.encode_batch(list(prompts))]
    longest = max(lengths)
    i = lengths.index(longest)
    context = int(config.max_position_embeddings)
    if longest + 1 > context:
        raise ConfigError(f"{what}[{i}] is {longest} tokens with the chat template, but the model's context "
                          f"(max_position_embeddings) is {context}; shorten it")
    if max_cache_len and longest + 1 >= max_cache_len:
        raise ConfigError(f"{what}[{i}] is {longest} tokens with the chat template, which leaves no room in "
                          f"--config.max_cache_len={max_cache_len}; raise max_cache_len (0 sizes it from the budget)")
    return longest
