"""``load_tokenizer(path)``: pick the backend from what ``path`` holds (HF dir / file, SentencePiece, GGUF, or a
trainer checkpoint root with ``s1jax_tokenizer.json``)."""

from __future__ import annotations

import dataclasses
import os
import pathlib

from s1jax.hub import resolve_checkpoint
from s1jax.tokenizer.base import Tokenizer
from s1jax.tokenizer.chat_format import ChatFormat
from s1jax.tokenizer.gguf import load_gguf_tokenizer
from s1jax.tokenizer.hf import load_hf_tokenizer, read_json
from s1jax.tokenizer.spm import load_spm_tokenizer

__all__ = ["SAVED_TOKENIZER_META", "load_tokenizer"]

SAVED_TOKENIZER_META = "s1jax_tokenizer.json"  # written by s1jax.train.checkpoint.write_tokenizer


def _load_saved(directory: pathlib.Path, chat: ChatFormat | None, chat_format: str = "") -> Tokenizer:
    meta = read_json(directory / SAVED_TOKENIZER_META)
    if chat is None and not chat_format and isinstance(meta.get("chat"), dict):
        names = {f.name for f in dataclasses.fields(ChatFormat)}
        chat = ChatFormat(**{k: v for k, v in meta["chat"].items() if k in names})
    if (directory / "tokenizer.json").is_file():
        base = load_hf_tokenizer(directory / "tokenizer.json", chat, chat_format)
    elif (directory / "tokenizer.model").is_file():
        base = load_spm_tokenizer(directory / "tokenizer.model", chat, chat_format)
    else:
        raise FileNotFoundError(f"{directory / SAVED_TOKENIZER_META} but no tokenizer.json / tokenizer.model beside it")
    return Tokenizer(
        base._backend,
        chat=base.chat,
        eos_tokens=meta.get("eos_token_ids", base.eos_token_ids),
        pad_token=meta.get("pad_token_id", base.pad_token_id),
        bos_token=meta.get("bos_token_id", base.bos_token_id),
        source=base.source,
    )


def load_tokenizer(path: str | os.PathLike[str], *, chat: ChatFormat | None = None, chat_format: str = "") -> Tokenizer:
    """Load a tokenizer from a directory with ``tokenizer.json``, a ``tokenizer.json`` file, a SentencePiece ``.model``
    or a ``.gguf`` file (its embedded vocabulary). ``chat`` overrides the detected family chat format;
    ``chat_format`` chooses one by name (``model.chat_format``: auto / template / chatml / qwen2 / smollm2 / a .jinja
    file; see :func:`s1jax.tokenizer.chat_format.resolve_chat_format`).

    A directory without ``tokenizer.json`` falls back to a single ``tokenizer.model`` or ``.gguf`` inside it. A
    directory with ``s1jax_tokenizer.json`` (a trainer checkpoint root) gets the chat format and special ids recorded
    there. A hub id (``org/name[@revision]``) is downloaded first (:mod:`s1jax.hub`).
    """
    p = pathlib.Path(resolve_checkpoint(path, what="tokenizer path")).expanduser()
    if p.is_dir():
        if (p / SAVED_TOKENIZER_META).is_file():
            return _load_saved(p, chat, chat_format)
        if (p / "tokenizer.json").is_file():
            return load_hf_tokenizer(p / "tokenizer.json", chat, chat_format)
        if (p / "tokenizer.model").is_file():
            return load_spm_tokenizer(p / "tokenizer.model", chat, chat_format)
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return load_gguf_tokenizer(ggufs[0], chat, chat_format)
        raise FileNotFoundError(
            f"no tokenizer in directory {p}: expected tokenizer.json, tokenizer.model or exactly one .gguf file"
        )
    suffix = p.suffix.lower()
    if suffix == ".json":
        return load_hf_tokenizer(p, chat, chat_format)
    if suffix == ".model":
        return load_spm_tokenizer(p, chat, chat_format)
    if suffix == ".gguf":
        return load_gguf_tokenizer(p, chat, chat_format)
    raise ValueError(f"unrecognised tokenizer file {p}: expected a directory, tokenizer.json, .model or .gguf")
