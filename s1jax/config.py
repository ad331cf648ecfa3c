"""ml_collections config files and ``--config.a.b=value`` overrides: the single configuration system of s1jax.

Every CLI takes ``--config=configs/x.py[:arg] --config.a.b=value`` exactly as ``ml_collections.config_flags`` spells
it (``--config.a.b value`` too; ``--flagfile`` and the absl flags are handled by :mod:`s1jax.cli.app`). Config files
define ``get_config()`` (optionally ``get_config(arg)``) returning an ``ml_collections.ConfigDict``; every default a
user may turn lives in those files under ``configs/``.

Overrides are applied here rather than by ``config_flags``' own parser, because it is looser than a run deserves:
it reads ``--config.remat=1`` as True, cannot override list- or None-valued fields, and reports an unknown field
without listing the ones that exist. Here an override is type-checked against the field it replaces, and an
unknown field is an error that lists the fields that do exist, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Sequence
from typing import Any

import ml_collections

__all__ = [
    "CONFIGS_DIR",
    "ConfigError",
    "load_config_file",
    "apply_overrides",
    "parse_config_args",
    "format_config",
    "flatten_config",
]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")  # the shipped config files (a source checkout / editable install)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the problem."""


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Load ``path.py`` or ``path.py:arg`` and return its ``get_config()`` result."""
    path, _, arg = spec.partition(":")
    if not path:
        raise ConfigError("empty --config path")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    module_name = "_s1jax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import config file {path!r} (is it a .py file?)")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ConfigError(f"error while executing config file {path!r}: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} defines no get_config()")
    cfg = module.get_config(arg) if arg else module.get_config()
    if not isinstance(cfg, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
        raise ConfigError(f"get_config() in {path!r} returned {type(cfg).__name__}, expected ml_collections.ConfigDict")
    return ml_collections.ConfigDict(cfg)


def _parse_value(text: str) -> Any:
    """Python literal if it parses as one (1, 1e-5, True, None, [1, 2], 'x'), else the raw string."""
    lowered = text.strip()
    if lowered in ("true", "True"):
        return True
    if lowered in ("false", "False"):
        return False
    if lowered in ("none", "None", "null"):
        return None
    try:
        return ast.literal_eval(lowered)
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # long prose can exhaust the parser
        return text


def _coerce(value: Any, current: Any, key: str) -> Any:
    """Convert an override to the type of the field it replaces, or fail naming both types."""
    if current is None or value is None:
        return value
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"--config.{key}: expected a bool (true/false), got {value!r}")
    if isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"--config.{key}: expected an int, got {value!r}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"--config.{key}: expected a float, got {value!r}")
    if isinstance(current, str):
        return value if isinstance(value, str) else str(value)
    if isinstance(current, (tuple, list)):
        if isinstance(value, (tuple, list)):
            return type(current)(value)
        if isinstance(value, (int, float, str)):
            return type(current)([value])
        raise ConfigError(f"--config.{key}: expected a sequence, got {value!r}")
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"--config.{key} is a group of fields ({', '.join(sorted(current.keys()))}); set one of them")
    return value


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict[str, str]) -> ml_collections.ConfigDict:
    """Apply dotted ``{"a.b": "value"}`` overrides in place; unknown fields and bad types raise ConfigError."""
    for dotted, raw in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"malformed override --config.{dotted}")
        node = cfg
        for i, part in enumerate(parts[:-1]):
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--config.{dotted}: no config group {where!r}; top-level fields: {sorted(cfg.keys())}")
            node = node[part]
        leaf = parts[-1]
        if leaf not in node:
            raise ConfigError(f"--config.{dotted}: unknown field {leaf!r}; available: {sorted(node.keys())}")
        # A string field takes the text as given (as config_flags does): prompts are not Python literals.
        value = raw if isinstance(node[leaf], str) else _coerce(_parse_value(raw), node[leaf], dotted)
        with node.unlocked():
            try:
                node[leaf] = value
            except (TypeError, ValueError) as e:
                raise ConfigError(f"--config.{dotted}={raw!r}: {e}") from e
    return cfg


def parse_config_args(argv: Sequence[str], default_config: str | None = None) -> tuple[ml_collections.ConfigDict, list[str]]:
    """Split ``argv`` into the config (file + overrides) and the remaining arguments.

    Accepts ``--config=F``, ``--config F``, ``--config.x=y`` and ``--config.x y``. Returns the loaded config and
    the arguments that are not about the config, so a CLI can reject or use them.
    """
    spec: str | None = None
    overrides: dict[str, str] = {}
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config" or arg.startswith("--config=") or arg.startswith("--config."):
            if "=" in arg:
                key, _, value = arg.partition("=")
            else:
                if i + 1 >= len(args):
                    raise ConfigError(f"{arg} needs a value")
                key, value = arg, args[i + 1]
                i += 1
            if key == "--config":
                spec = value
            else:
                overrides[key[len("--config."):]] = value
        else:
            rest.append(arg)
        i += 1
    spec = spec or default_config
    if spec is None:
        raise ConfigError("no --config=FILE given")
    cfg = load_config_file(spec)
    apply_overrides(cfg, overrides)
    return cfg, rest


def format_config(cfg: ml_collections.ConfigDict, indent: int = 0) -> str:
    """The resolved config as indented ``key: value`` lines (plain values, no YAML type tags), for printing
    before a run starts."""
    lines: list[str] = []
    pad = "  " * indent
    for key in sorted(cfg.keys()):
        value = cfg[key]
        if isinstance(value, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
            lines.append(f"{pad}{key}:")
            lines.append(format_config(value, indent + 1))
        else:
            lines.append(f"{pad}{key}: {value!r}")
    return "\n".join(line for line in lines if line)


def flatten_config(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[tuple[str, Any]]:
    """``[("model.path", ""), ("budget.num_ignore", 0), ...]``: every leaf field with its dotted name, sorted."""
    out: list[tuple[str, Any]] = []
    for key in sorted(cfg.keys()):
        value = cfg[key]
        name = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
            out += flatten_config(value, name + ".")
        else:
            out.append((name, value))
    return out
