"""Orbax checkpoints of the train state, restorable bit-for-bit, and readable by ``s1jax.load_model(<dir>)``.

Layout of a checkpoint directory (the CheckpointManager root)::

    <root>/s1jax_model.json        dataclasses.asdict(ModelConfig) + {"param_dtype": "float32", "format": "s1jax", "version": 1}
    <root>/tokenizer.json          the training tokenizer (copied from a HF dir with tokenizer_config.json,
                                   special_tokens_map.json, generation_config.json when present; written from the
                                   loaded tokenizer for a GGUF; tokenizer.model instead for SentencePiece)
    <root>/s1jax_tokenizer.json    its chat format (family, system message, ...) and eos/pad/bos ids, so
                                   ``s1jax.load_tokenizer(<root>)`` restores exactly the tokenizer trained with
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
from s1jax.model.io.common import MODEL_JSON
from s1jax.model.io.native import model_json_payload
from s1jax.tokenizer import SAVED_TOKENIZER_META as TOKENIZER_META  # read by s1jax.tokenizer.load_tokenizer

__all__ = ["MODEL_JSON", "TrainCheckpointer", "write_model_json", "write_tokenizer"]

HF_TOKENIZER_SIDECARS = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


def is_remote(path: str) -> bool:
    return "://" in str(path)


def write_model_json(root: str, config: ModelConfig, param_dtype: Any) -> str:
    """``<root>/s1jax_model.json``: the architecture + storage dtype, so the params item can be read standalone.
    ``root`` may be local or a ``gs://`` path."""
    from etils import epath

    directory = epath.Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    payload = model_json_payload(config, param_dtype)
    (directory / MODEL_JSON).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return str(directory / MODEL_JSON)


def write_tokenizer(root: str, tok: Any) -> list[str]:
    """Save the s1jax ``Tokenizer`` ``tok`` into ``root`` (local or ``gs://``) so ``load_tokenizer(root)`` gives it
    back; returns the file names written.

    From a HF ``tokenizer.json``: that file and its sidecars are copied. Otherwise the backend's
    ``tokenizers.Tokenizer`` (a GGUF vocabulary) is serialised as ``tokenizer.json``, or a SentencePiece file is
    copied as ``tokenizer.model``. ``s1jax_tokenizer.json`` always records the chat format and the special ids,
    which the copied files alone may not determine (the family can come from a config.json or GGUF metadata)."""
    from etils import epath

    directory = epath.Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def put(name: str, data: bytes) -> None:
        (directory / name).write_bytes(data)
        written.append(name)

    source = epath.Path(tok.source) if getattr(tok, "source", "") else None
    backend = getattr(tok, "_backend", None)
    hf = getattr(backend, "tok", None)
    if source is not None and source.name.endswith(".json") and source.is_file():
        same = str(source.parent).rstrip("/") == str(directory).rstrip("/")
        if not same:
            put("tokenizer.json", source.read_bytes())
            for name in HF_TOKENIZER_SIDECARS:
                if (source.parent / name).is_file():
                    put(name, (source.parent / name).read_bytes())
    elif hf is not None and hasattr(hf, "to_str"):
        put("tokenizer.json", hf.to_str().encode("utf-8"))
    elif getattr(backend, "sp", None) is not None and source is not None and source.is_file():
        if str(source) != str(directory / "tokenizer.model"):
            put("tokenizer.model", source.read_bytes())
    else:
        raise ValueError(f"cannot save tokenizer {tok!r}: no tokenizer.json source and no serialisable backend")
    meta = {
        "format": "s1jax_tokenizer", "version": 1, "source": str(getattr(tok, "source", "")),
        "chat": dataclasses.asdict(tok.chat),
        "eos_token_ids": [int(i) for i in tok.eos_token_ids],
        "pad_token_id": None if tok.pad_token_id is None else int(tok.pad_token_id),
        "bos_token_id": None if tok.bos_token_id is None else int(tok.bos_token_id),
    }
    put(TOKENIZER_META, json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
    return written


def has_tokenizer(root: str) -> bool:
    from etils import epath

    return (epath.Path(root) / TOKENIZER_META).exists()


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
