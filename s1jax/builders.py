"""Config group -> library object: the one place each command turns its ``model`` / ``budget`` / ``sampling`` /
``mesh`` groups into a Model, Tokenizer, Budget, Sampling or Mesh.

Every command (generate, eval, train, demo, curation's reference solvers) goes through these, so a field means the
same thing everywhere: ``budget.max_thinking_tokens=-1`` is unlimited in every command, a model group with an
empty ``path`` is always a random ``preset``, and so on. Builders that only read a config (``budget_from_config``,
``sampling_from_config``) are cheap and run during validation, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from s1jax.config import ConfigError
from s1jax.inference.budget import Budget
from s1jax.inference.sampling import Sampling
from s1jax.model.api import load_model_from_group as model_from_config
from s1jax.sharding import mesh_from_config
from s1jax.tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "model_from_config",
    "tokenizer_from_config",
    "budget_from_config",
    "sampling_from_config",
    "mesh_from_config",
    "tokenizer_path",
]

UNLIMITED = -1  # budget.max_thinking_tokens value meaning "no cap" in config files (None in Budget)


def _plain(group: Any) -> dict[str, Any]:
    if group is None:
        return {}
    return dict(group.to_dict() if hasattr(group, "to_dict") else group)


def _fields_of(cls: type, group: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The group's values for ``cls``'s fields (other fields of the group belong to the command), then overrides."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in _plain(group).items() if k in names}
    values.update(overrides)
    return values


def tokenizer_path(group: Any) -> str:
    """The tokenizer a ``model`` group names: ``tokenizer``, else the one found with the weights at ``path``."""
    return str(group.get("tokenizer") or group.get("path") or "")


def tokenizer_from_config(group: Any) -> Tokenizer:
    """The tokenizer of a ``model`` group (see :func:`tokenizer_path`)."""
    path = tokenizer_path(group)
    if not path:
        raise ConfigError("model: set model.path (weights with their tokenizer) or model.tokenizer")
    return load_tokenizer(path, chat_format=str(group.get("chat_format") or ""))


def budget_from_config(group: Any, where: str = "budget", **overrides: Any) -> Budget:
    """A :class:`Budget` from a config group holding (some of) its fields; ``max_thinking_tokens=-1`` means unlimited.

    Checks the cross-field rules a Budget alone cannot see in a config, naming the fields: min <= max thinking
    tokens. Raises ConfigError, so a command reports it as a usage error before it loads a model.
    """
    values = _fields_of(Budget, group, overrides)
    mx = values.get("max_thinking_tokens")
    if mx == UNLIMITED:
        values["max_thinking_tokens"] = None
    try:
        budget = Budget(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e
    if budget.max_thinking_tokens is not None and budget.min_thinking_tokens > budget.max_thinking_tokens:
        raise ConfigError(
            f"{where}.min_thinking_tokens={budget.min_thinking_tokens} is larger than "
            f"{where}.max_thinking_tokens={budget.max_thinking_tokens}; lower the minimum or raise the maximum"
        )
    return budget


def sampling_from_config(group: Any, where: str = "sampling", **overrides: Any) -> Sampling:
    """A :class:`Sampling` from a config group holding (some of) its fields."""
    try:
        return Sampling(**_fields_of(Sampling, group, overrides))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e
