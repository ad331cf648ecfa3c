"""What every checkpoint format shares: format detection, atomic output directories, tokenizer files."""

from __future__ import annotations

import os
import shutil
import jax

from s1jax.hub import TOKENIZER_FILES, resolve_checkpoint

__all__ = [
    "MODEL_JSON",
    "detect_format",
    "atomic_output_dir",
    "copy_tokenizer_files",
    "DEFAULT_MAX_SHARD_BYTES",
]

DEFAULT_MAX_SHARD_BYTES = 5 * 2**30
MODEL_JSON = "s1jax_model.json"  # marks an s1jax native checkpoint (written by io.native and the trainer)


def detect_format(path: str) -> str:
    """``"gguf"``, ``"s1jax"`` or ``"hf"`` for an existing checkpoint path; FileNotFoundError/ValueError otherwise."""
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


def copy_tokenizer_files(tokenizer_path: str, out_dir: str) -> list[str]:
    """Copy the tokenizer files of a HF directory, hub id or one tokenizer file into ``out_dir``; returns what was
    copied."""
    tokenizer_path = resolve_checkpoint(tokenizer_path, what="tokenizer path")
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
