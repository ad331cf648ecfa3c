"""The s1jax native checkpoint: ``s1jax_model.json`` + orbax ``params/``; and reading a trainer's CheckpointManager.

Layout written by :func:`save_native`::

    out_dir/s1jax_model.json     {"format": "s1jax", "version": 1, "param_dtype": "bfloat16", <ModelConfig fields>}
    out_dir/params/              ocp.StandardCheckpointer of the unboxed Flax params tree

The trainer's layout (s1jax.train): ``s1jax_model.json`` in the CheckpointManager root and numbered step directories
with an item named ``params`` (``ocp.args.StandardSave``); :func:`load_native` restores the latest step's params.
Restoring goes straight into the target shardings (abstract arrays carrying a sharding), casting to ``param_dtype``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from s1jax.jsonfile import read_json
from s1jax.model.config import ModelConfig
from s1jax.model.io.common import MODEL_JSON, atomic_output_dir, copy_tokenizer_files
from s1jax.model.params import param_shapes, target_shardings

__all__ = [
    "MODEL_JSON",
    "PARAMS_ITEM",
    "is_native",
    "model_json_payload",
    "write_model_json",
    "read_model_json",
    "save_native",
    "load_native",
]

PARAMS_ITEM = "params"
_META_KEYS = {"format", "version", "param_dtype", "config"}


def is_native(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MODEL_JSON))


def model_json_payload(config: ModelConfig, param_dtype: Any) -> dict[str, Any]:
    """The content of ``s1jax_model.json``: the architecture + the storage dtype (the trainer writes it too)."""
    return {"format": "s1jax", "version": 1, "param_dtype": jnp.dtype(param_dtype).name, **dataclasses.asdict(config)}


def write_model_json(directory: str, config: ModelConfig, param_dtype: Any) -> str:
    """Write ``s1jax_model.json`` into a local ``directory``."""
    data = model_json_payload(config, param_dtype)
    path = os.path.join(directory, MODEL_JSON)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    return path


def read_model_json(directory: str) -> tuple[ModelConfig, str | None]:
    """(ModelConfig, stored param dtype or None). Accepts flat fields or a nested ``"config"`` mapping."""
    path = os.path.join(directory, MODEL_JSON)
    data = read_json(path, what=MODEL_JSON)
    fields = dict(data.get("config") or {k: v for k, v in data.items() if k not in _META_KEYS})
    try:
        config = ModelConfig.from_config_dict(fields)
    except TypeError as e:
        raise ValueError(f"{path!r}: {e}") from e
    return config, data.get("param_dtype")


def _abstract_params(config: ModelConfig, param_dtype: Any, mesh: Mesh | None, rules: Any) -> Any:
    shapes = param_shapes(config, param_dtype)
    shardings = target_shardings(config, mesh, rules)
    return jax.tree_util.tree_map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)


def _latest_step_dir(root: str) -> str:
    """The newest finished step directory of a CheckpointManager root that holds a ``params`` item."""
    steps = []
    for name in os.listdir(root):
        m = re.fullmatch(r"(?:[A-Za-z_]+_)?(\d+)", name)  # "100" or "<prefix>_100"; skips orbax tmp dirs
        if m and os.path.isdir(os.path.join(root, name, PARAMS_ITEM)):
            steps.append((int(m.group(1)), name))
    if not steps:
        raise FileNotFoundError(
            f"{root!r} has {MODEL_JSON} but neither a {PARAMS_ITEM}/ directory nor step directories with a "
            f"{PARAMS_ITEM!r} item"
        )
    return os.path.join(root, max(steps)[1])


def params_dir(path: str) -> str:
    direct = os.path.join(path, PARAMS_ITEM)
    if os.path.isdir(direct):
        return direct
    return os.path.join(_latest_step_dir(path), PARAMS_ITEM)


def load_native(path: str, *, param_dtype: Any, mesh: Mesh | None, rules: Any) -> tuple[ModelConfig, Any]:
    import orbax.checkpoint as ocp

    path = os.path.abspath(path)
    config, _ = read_model_json(path)
    target = _abstract_params(config, jnp.dtype(param_dtype), mesh, rules)
    item = params_dir(path)
    with ocp.StandardCheckpointer() as ckptr:
        try:
            params = ckptr.restore(item, target)
        except (ValueError, KeyError) as e:
            raise ValueError(f"s1jax checkpoint {item!r} does not match {config}: {e}") from e
    return config, params


def save_native(model: Any, out_dir: str, *, overwrite: bool = False, tokenizer_path: str | None = None) -> str:
    import orbax.checkpoint as ocp

    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(os.path.join(tmp, PARAMS_ITEM), model.params)
            ckptr.wait_until_finished()
        if jax.process_index() == 0:
            write_model_json(tmp, model.config, model.param_dtype)
            if tokenizer_path:
                copy_tokenizer_files(tokenizer_path, tmp)
    return os.path.abspath(out_dir)
