"""HF ``tokenizer.json`` (the ``tokenizers`` library): the backend, and loading a directory's special tokens and chat
family from its ``tokenizer_config.json`` / ``special_tokens_map.json`` / ``config.json`` / ``generation_config.json``."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from s1jax.jsonfile import read_json as load_json_file
from s1jax.tokenizer.base import Tokenizer
from s1jax.tokenizer.chat_format import ChatFormat, resolve_chat_format

__all__ = ["HFBackend", "load_hf_tokenizer", "read_json", "has_chatml"]


class HFBackend:
    """A ``tokenizers.Tokenizer``; special tokens are its added tokens, matched in text before normalisation."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)

    def id_to_token(self, idx: int) -> str | None:
        return self.tok.id_to_token(idx)

    def size(self) -> int:
        # max id + 1 rather than a count: vocabularies may have holes, and the model masks by id.
        vocab = self.tok.get_vocab(with_added_tokens=True)
        return (max(vocab.values()) + 1) if vocab else 0


def has_chatml(backend: Any) -> bool:
    return backend.token_to_id("<|im_start|>") is not None and backend.token_to_id("<|im_end|>") is not None


def read_json(path: pathlib.Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = load_json_file(path)
    return data if isinstance(data, dict) else {}


def _token_str(value: Any) -> str | None:
    """tokenizer_config/special_tokens_map store tokens as a string or as an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _chat_template(directory: pathlib.Path, tcfg: dict[str, Any]) -> str | None:
    """The default chat template of a HF tokenizer directory: ``chat_template.jinja`` (transformers >= 4.43 saves it
    there), else tokenizer_config.json's ``chat_template`` (a string, or a list of named templates)."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    value = tcfg.get("chat_template")
    if isinstance(value, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    return value if isinstance(value, str) else None


def load_hf_tokenizer(tokenizer_json: pathlib.Path, chat: ChatFormat | None, chat_format: str = "") -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_file(str(tokenizer_json))
    directory = tokenizer_json.parent
    tcfg = read_json(directory / "tokenizer_config.json")
    smap = read_json(directory / "special_tokens_map.json")
    mcfg = read_json(directory / "config.json")
    gcfg = read_json(directory / "generation_config.json")
    backend = HFBackend(tok)

    eos: list[str | int] = []
    for src in (tcfg, smap):
        s = _token_str(src.get("eos_token"))
        if s:
            eos.append(s)
    for src in (gcfg, mcfg):
        eos.extend(int(i) for i in _as_list(src.get("eos_token_id")))
    pad: str | int | None = _token_str(tcfg.get("pad_token")) or _token_str(smap.get("pad_token"))
    if pad is None and isinstance(mcfg.get("pad_token_id"), int):
        pad = int(mcfg["pad_token_id"])
    bos: str | int | None = _token_str(tcfg.get("bos_token")) or _token_str(smap.get("bos_token"))
    if bos is None and isinstance(mcfg.get("bos_token_id"), int):
        bos = int(mcfg["bos_token_id"])
    if not eos:
        eos = [t for t in ("<|endoftext|>", "</s>", "<|end_of_text|>") if tok.token_to_id(t) is not None][:1]
    specials = {name: _token_str(tcfg.get(name)) or _token_str(smap.get(name))
                for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
    chat = resolve_chat_format(
        chat, chat_template=_chat_template(directory, tcfg), setting=chat_format,
        special_tokens={k: v for k, v in specials.items() if v}, has_chatml=has_chatml(backend),
        source=str(directory), model_type=mcfg.get("model_type"), vocab_size=backend.size(),
    )
    return Tokenizer(backend, chat=chat, eos_tokens=eos, pad_token=pad, bos_token=bos, source=str(tokenizer_json))
