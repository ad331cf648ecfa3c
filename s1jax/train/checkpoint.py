"""Orbax checkpoints of the train state, restorable bit-for-bit, and readable by ``s1jax.load_model(<dir>)``.

Layout of a checkpoint directory (the CheckpointManager root)::

    <root>/s1jax_model.json        dataclasses.asdict(ModelConfig) + {"param_dtype": "float32", "format": "s1jax", "version": 1}
    <root>/<step>/params/          Orbax StandardSave (OCDBT) of the params pytree (same tree as Model.params)
    <root>/<step>/opt_state/       Orbax StandardSave of the optax state
    <root>/<step>/meta/            Orbax JsonSave: {"step", "data_position", "rng", "seed", "epochs_done", ...}

``<step>`` is the number of completed optimizer steps (a plain integer directory name); the latest complete one
is ``max(int(d))`` over the step directories (Orbax writes into a temporary name and renames when finished).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from s1jax.model.config import ModelConfig

__all__ = ["MODEL_JSON", "TrainCheckpointer", "write_model_json"]

MODEL_JSON = "s1jax_model.json"


def is_remote(path: str) -> bool:
    return "://" in str(path)


def write_model_json(root: str, config: ModelConfig, param_dtype: Any) -> str:
    """``<root>/s1jax_model.json``: the architecture + storage dtype, so the params item can be read standalone.
    ``root`` may be local or a ``gs://`` path."""
    from etils import epath

    directory = epath.Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"format": "s1jax", "version": 1, **dataclasses.asdict(config)}
    payload["param_dtype"] = jax.numpy.dtype(param_dtype).name
    (directory / MODEL_JSON).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return str(directory / MODEL_JSON)


def read_model_config(root: str) -> ModelConfig:
    """The ModelConfig stored in ``<root>/s1jax_model.json`` (extra keys such as param_dtype are ignored)."""
    from etils import epath

    meta = json.loads((epath.Path(root) / MODEL_JSON).read_text())
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in meta.items() if k in fields})


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


class TrainCheckpointer:
    """Save every ``save_every`` steps (and on demand), keep the newest ``keep``, optionally async."""

    def __init__(self, root: str, *, save_every: int = 100, keep: int = 2, async_save: bool = True) -> None:
        self.root = root if is_remote(root) else os.path.abspath(root)
        self.save_every = max(int(save_every), 1)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep if keep and keep > 0 else None,
            save_interval_steps=1,  # the interval is decided in save(): Orbax would also save the very first step
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.root, options=options, item_names=("params", "opt_state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: dict, meta: dict, *, force: bool = False) -> bool:
        """Save if ``step`` is on the interval (or ``force``); returns whether a save started."""
        if not force and step % self.save_every:
            return False
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state["params"]),
            opt_state=ocp.args.StandardSave(state["opt_state"]),
            meta=ocp.args.JsonSave(meta),
        )
        return bool(self.manager.save(int(step), args=args, force=True))

    def restore(self, step: int, abstract_state: dict, shardings: dict) -> tuple[dict, dict]:
        """(state with ``params``/``opt_state`` placed in ``shardings``, meta dict) of checkpoint ``step``."""
        args = ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(abstract_state["params"], shardings["params"])),
            opt_state=ocp.args.StandardRestore(_abstract(abstract_state["opt_state"], shardings["opt_state"])),
            meta=ocp.args.JsonRestore(),
        )
        out = self.manager.restore(int(step), args=args)
        return {"params": out["params"], "opt_state": out["opt_state"]}, dict(out["meta"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
