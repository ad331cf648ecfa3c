"""Weight import/export dispatcher: HF safetensors directories, ``.gguf`` files, s1jax native checkpoints.

- :mod:`s1jax.model.weights_hf`: HF key map, safetensors reader/writer, the shared sharded placement.
- :mod:`s1jax.model.weights_gguf`: GGUF metadata + dequantisation (llama / qwen2).
- :mod:`s1jax.model.weights_native`: ``s1jax_model.json`` + orbax params, and trainer CheckpointManager roots.

Every importer places each tensor directly into its target sharding (``jax.make_array_from_callback``), so a model
is never materialised whole on one host or device.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax

from jax.sharding import Mesh

from s1jax.model.config import ModelConfig
from s1jax.sharding import DEFAULT_RULES

__all__ = [
    "load_weights",
    "save_weights",
    "detect_format",
    "atomic_output_dir",
    "copy_tokenizer_files",
    "DEFAULT_MAX_SHARD_BYTES",
]

DEFAULT_MAX_SHARD_BYTES = 5 * 2**30


def detect_format(path: str) -> str:
    """``"gguf"``, ``"s1jax"`` or ``"hf"`` for an existing checkpoint path; FileNotFoundError/ValueError otherwise."""
    from s1jax.model.weights_native import MODEL_JSON

    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint path {path!r} does not exist")
    if os.path.isfile(path):
        if path.lower().endswith(".gguf"):
            return "gguf"
        with open(path, "rb") as f:
            if f.read(4) == b"GGUF":
                return "gguf"
        raise ValueError(f"{path!r} is a file but not a GGUF file; pass a HF directory, a .gguf or an s1jax checkpoint")
    if os.path.isfile(os.path.join(path, MODEL_JSON)):
        return "s1jax"
    if os.path.isfile(os.path.join(path, "config.json")):
        return "hf"
    raise FileNotFoundError(f"{path!r} has neither config.json (HF) nor {MODEL_JSON} (s1jax checkpoint)")


def load_weights(path: str, *, param_dtype: Any, mesh: Mesh | None = None, rules: Any = DEFAULT_RULES) -> tuple[ModelConfig, Any]:
    """(ModelConfig, params) from ``path``, each parameter placed in its sharding on ``mesh`` (or device 0)."""
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt == "gguf":
        from s1jax.model.weights_gguf import load_gguf

        return load_gguf(path, param_dtype=param_dtype, mesh=mesh, rules=rules)
    if fmt == "s1jax":
        from s1jax.model.weights_native import load_native

        return load_native(path, param_dtype=param_dtype, mesh=mesh, rules=rules)
    from s1jax.model.weights_hf import load_hf

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
        from s1jax.model.weights_hf import save_hf

        return save_hf(model, out_dir, max_shard_bytes=max_shard_bytes, dtype=dtype, tokenizer_path=tokenizer_path, overwrite=overwrite)
    if format == "s1jax":
        if dtype is not None:
            raise ValueError("dtype casting on export is only supported for format='hf'")
        from s1jax.model.weights_native import save_native

        return save_native(model, out_dir, overwrite=overwrite, tokenizer_path=tokenizer_path)
    raise ValueError(f"unknown export format {format!r}; use 'hf' or 's1jax'")


# ----------------------------------------------------------------------------------------------- export helpers


class atomic_output_dir:
    """``with atomic_output_dir(out) as tmp:`` write into ``tmp``; renamed to ``out`` only on success.

    An existing ``out`` is replaced only when ``overwrite`` (or it is empty); on error the temporary directory is
    removed and ``out`` is untouched."""

    def __init__(self, out_dir: str, overwrite: bool = False):
        self.out = os.path.abspath(out_dir)
        self.overwrite = overwrite
        parent, base = os.path.split(self.out)
        self.tmp = os.path.join(parent, f".{base}.s1jax-tmp")  # deterministic: every process agrees on it
        self.main = jax.process_index() == 0

    def __enter__(self) -> str:
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise FileExistsError(f"output path {self.out!r} exists and is not a directory")
        if os.path.isdir(self.out) and os.listdir(self.out) and not self.overwrite:
            raise FileExistsError(f"output directory {self.out!r} is not empty (pass overwrite=True to replace it)")
        if self.main:
            os.makedirs(os.path.dirname(self.out), exist_ok=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
            os.makedirs(self.tmp)
        _sync("s1jax_atomic_enter")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self.main:
                shutil.rmtree(self.tmp, ignore_errors=True)
            return
        _sync("s1jax_atomic_exit")
        if self.main:
            old = None
            if os.path.isdir(self.out):
                old = self.out + ".s1jax-old"
                shutil.rmtree(old, ignore_errors=True)
                os.rename(self.out, old)
            os.rename(self.tmp, self.out)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        _sync("s1jax_atomic_done")


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "generation_config.json",
)


def copy_tokenizer_files(tokenizer_path: str, out_dir: str) -> list[str]:
    """Copy the tokenizer files of a HF directory (or one tokenizer file) into ``out_dir``; returns what was copied."""
    if os.path.isdir(tokenizer_path):
        names = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(tokenizer_path, n))]
        if not any(n in names for n in ("tokenizer.json", "tokenizer.model", "vocab.json")):
            raise FileNotFoundError(f"no tokenizer files (tokenizer.json / tokenizer.model) in {tokenizer_path!r}")
        for n in names:
            shutil.copy2(os.path.join(tokenizer_path, n), os.path.join(out_dir, n))
        return names
    if os.path.isfile(tokenizer_path):
        if tokenizer_path.lower().endswith(".gguf"):
            return export_gguf_tokenizer(tokenizer_path, out_dir)
        name = os.path.basename(tokenizer_path)
        if name.endswith(".model"):
            name = "tokenizer.model"  # SentencePiece: the name transformers looks for
        elif name.endswith(".json") and name != "tokenizer_config.json":
            name = "tokenizer.json"
        shutil.copy2(tokenizer_path, os.path.join(out_dir, name))
        return [name]
    raise FileNotFoundError(f"tokenizer path {tokenizer_path!r} does not exist")


def export_gguf_tokenizer(gguf_path: str, out_dir: str) -> list[str]:
    """Write a GGUF's embedded tokenizer as HF files (transformers' GGUF tokenizer conversion); [] with a warning
    when transformers cannot do it, so a weight export never fails on the tokenizer alone."""
    import warnings

    before = set(os.listdir(out_dir))
    try:
        import transformers

        tok = transformers.AutoTokenizer.from_pretrained(
            os.path.dirname(os.path.abspath(gguf_path)), gguf_file=os.path.basename(gguf_path)
        )
        tok.save_pretrained(out_dir)
    except Exception as e:  # noqa: BLE001 - optional extra
        warnings.warn(f"could not export the tokenizer embedded in {gguf_path!r}: {type(e).__name__}: {e}")
        return []
    return sorted(set(os.listdir(out_dir)) - before)
