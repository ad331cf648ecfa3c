"""Tokenizers for s1jax: HF ``tokenizer.json``, SentencePiece ``.model`` and GGUF-embedded vocabularies
(``tokenizer_gguf.py``); the s1 chat format (``chat_format.py``) is re-exported here.

Everything downstream (SFT data, generation, budget forcing) talks to one small :class:`Tokenizer` interface, so the
model family and the file the vocabulary came from do not leak into the rest of the code. Token ids are always looked
up by their string (``tok.token_to_id("<|im_start|>")``); no id is hard-coded here, because Qwen, SmolLM2 and Llama put
the same delimiters at different ids.

The chat format reproduces what s1's ``data/tokenization.py`` produces through the Qwen2.5 chat template, as plain
string rendering: the chat template itself is Jinja in a file we may not have (GGUF, SentencePiece), and the s1 layout
(``<|im_start|>think`` / ``<|im_start|>answer`` inside the assistant turn) is fixed by the paper, not by the template.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from s1jax.chat_format import (  # re-exported: the chat format is part of the tokenizer API
    QWEN_SYSTEM_MESSAGE,
    SMOLLM2_SYSTEM_MESSAGE,
    ChatFormat,
    chat_format_for,
    detect_family,
)

__all__ = [
    "QWEN_SYSTEM_MESSAGE",
    "SMOLLM2_SYSTEM_MESSAGE",
    "ChatFormat",
    "Tokenizer",
    "chat_format_for",
    "detect_family",
    "load_tokenizer",
]

# ----------------------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------------------


class _Backend(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, idx: int) -> str | None: ...
    def size(self) -> int: ...


class _HFBackend:
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


class _SPMBackend:
    """SentencePiece processor with HF-style handling of control tokens written in text.

    SentencePiece itself never turns ``"</s>"`` in text into the control id, so text is split on control pieces
    first (user-defined pieces, e.g. ``<|im_start|>`` added at training time, it matches natively). Each text segment
    is then encoded on its own, with SentencePiece's dummy-prefix space, which is what llama.cpp does for SPM
    vocabularies (a space is prefixed after every special token), so ``.model`` and ``.gguf`` files agree.
    """

    def __init__(self, path: pathlib.Path) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        n = self.sp.get_piece_size()
        self.specials: dict[str, int] = {}
        for i in range(n):
            # User-defined pieces need no help: SentencePiece matches them in text itself.
            if self.sp.is_control(i):
                piece = self.sp.id_to_piece(i)
                if piece:
                    self.specials[piece] = i
        self._special_ids = frozenset(self.specials.values())
        self._split_re = (
            re.compile("(" + "|".join(re.escape(p) for p in sorted(self.specials, key=len, reverse=True)) + ")")
            if self.specials
            else None
        )

    def encode(self, text: str) -> list[int]:
        if self._split_re is None:
            return list(self.sp.encode(text))
        ids: list[int] = []
        for part in self._split_re.split(text):
            if not part:
                continue
            if part in self.specials:
                ids.append(self.specials[part])
            else:
                ids.extend(self.sp.encode(part))
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            i = int(i)
            if i in self._special_ids:
                if run:
                    out.append(self.sp.decode(run))
                    run = []
                if not skip_special_tokens:
                    out.append(self.sp.id_to_piece(i))
            else:
                run.append(i)
        if run:
            out.append(self.sp.decode(run))
        return "".join(out)

    def token_to_id(self, token: str) -> int | None:
        i = self.sp.piece_to_id(token)
        # piece_to_id returns unk for unknown pieces; only report unk when it was asked for.
        if i == self.sp.unk_id() and token != self.sp.id_to_piece(i):
            return None
        return int(i)

    def id_to_token(self, idx: int) -> str | None:
        return self.sp.id_to_piece(idx) if 0 <= idx < self.sp.get_piece_size() else None

    def size(self) -> int:
        return int(self.sp.get_piece_size())


# ----------------------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------------------


class Tokenizer:
    """The tokenizer interface the rest of s1jax uses (see docs/contracts.md).

    ``encode`` never adds BOS/EOS: s1's prompts are ChatML text and the Qwen template adds no BOS. Families that need
    a BOS get it from the caller via ``bos_token_id``.
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        chat: ChatFormat,
        eos_tokens: Iterable[str | int] = (),
        pad_token: str | int | None = None,
        bos_token: str | int | None = None,
        source: str = "",
    ) -> None:
        self._backend = backend
        self.chat = chat
        self.source = source
        self._vocab_size = backend.size()
        eos: list[int] = []
        for t in [*eos_tokens, chat.im_end]:
            i = self._resolve(t)
            if i is not None and i not in eos:
                eos.append(i)
        self.eos_token_ids: tuple[int, ...] = tuple(eos)
        pad = self._resolve(pad_token)
        if pad is None:
            pad = self.token_to_id("<|endoftext|>")
        if pad is None:
            pad = eos[0] if eos else 0
        self.pad_token_id: int = pad
        self.bos_token_id: int | None = self._resolve(bos_token)

    def _resolve(self, token: str | int | None) -> int | None:
        if token is None:
            return None
        if isinstance(token, int):
            return token if 0 <= token < self._vocab_size else None
        return self.token_to_id(token)

    # -- contract ----------------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special tokens written in the text (``<|im_start|>``) map to their single ids."""
        return self._backend.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(t) for t in texts]``, parallelised by the backend where it can."""
        return self._backend.encode_batch(texts)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._backend.decode(ids, skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def id_to_token(self, idx: int) -> str | None:
        return self._backend.id_to_token(idx)

    @property
    def vocab_size(self) -> int:
        """Real number of ids (max id + 1, added tokens included); model embeddings may be padded beyond it."""
        return self._vocab_size

    def __len__(self) -> int:
        return self._vocab_size

    def __repr__(self) -> str:
        return (
            f"Tokenizer(source={self.source!r}, vocab_size={self._vocab_size}, family={self.chat.family!r}, "
            f"eos={self.eos_token_ids}, pad={self.pad_token_id})"
        )


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
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


def _load_hf(tokenizer_json: pathlib.Path, chat: ChatFormat | None) -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_file(str(tokenizer_json))
    directory = tokenizer_json.parent
    tcfg = _read_json(directory / "tokenizer_config.json")
    smap = _read_json(directory / "special_tokens_map.json")
    mcfg = _read_json(directory / "config.json")
    gcfg = _read_json(directory / "generation_config.json")
    backend = _HFBackend(tok)

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
    if chat is None:
        template = tcfg.get("chat_template")
        chat = chat_format_for(
            detect_family(
                model_type=mcfg.get("model_type"),
                chat_template=template if isinstance(template, str) else None,
                vocab_size=backend.size(),
            )
        )
    return Tokenizer(backend, chat=chat, eos_tokens=eos, pad_token=pad, bos_token=bos, source=str(tokenizer_json))


def _load_spm(path: pathlib.Path, chat: ChatFormat | None) -> Tokenizer:
    backend = _SPMBackend(path)
    sp = backend.sp
    eos = [sp.eos_id()] if sp.eos_id() >= 0 else []
    pad = sp.pad_id() if sp.pad_id() >= 0 else None
    bos = sp.bos_id() if sp.bos_id() >= 0 else None
    return Tokenizer(
        backend,
        chat=chat or chat_format_for("llama"),
        eos_tokens=eos,
        pad_token=pad,
        bos_token=bos,
        source=str(path),
    )


def _load_gguf(path: pathlib.Path, chat: ChatFormat | None) -> Tokenizer:
    from s1jax.tokenizer_gguf import load_gguf_tokenizer

    return load_gguf_tokenizer(path, chat)


SAVED_TOKENIZER_META = "s1jax_tokenizer.json"  # written by s1jax.train.checkpoint.write_tokenizer


def _load_saved(directory: pathlib.Path, chat: ChatFormat | None) -> Tokenizer:
    import dataclasses

    meta = _read_json(directory / SAVED_TOKENIZER_META)
    if chat is None and isinstance(meta.get("chat"), dict):
        names = {f.name for f in dataclasses.fields(ChatFormat)}
        chat = ChatFormat(**{k: v for k, v in meta["chat"].items() if k in names})
    if (directory / "tokenizer.json").is_file():
        base = _load_hf(directory / "tokenizer.json", chat)
    elif (directory / "tokenizer.model").is_file():
        base = _load_spm(directory / "tokenizer.model", chat)
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


def load_tokenizer(path: str | os.PathLike[str], *, chat: ChatFormat | None = None) -> Tokenizer:
    """Load a tokenizer from a directory with ``tokenizer.json``, a ``tokenizer.json`` file, a SentencePiece ``.model``
    or a ``.gguf`` file (its embedded vocabulary). ``chat`` overrides the detected family chat format.

    A directory without ``tokenizer.json`` falls back to a single ``tokenizer.model`` or ``.gguf`` inside it. A
    directory with ``s1jax_tokenizer.json`` (a trainer checkpoint root) gets the chat format and special ids recorded
    there.
    """
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"tokenizer path does not exist: {p}")
    if p.is_dir():
        if (p / SAVED_TOKENIZER_META).is_file():
            return _load_saved(p, chat)
        if (p / "tokenizer.json").is_file():
            return _load_hf(p / "tokenizer.json", chat)
        if (p / "tokenizer.model").is_file():
            return _load_spm(p / "tokenizer.model", chat)
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return _load_gguf(ggufs[0], chat)
        raise FileNotFoundError(
            f"no tokenizer in directory {p}: expected tokenizer.json, tokenizer.model or exactly one .gguf file"
        )
    suffix = p.suffix.lower()
    if suffix == ".json":
        return _load_hf(p, chat)
    if suffix == ".model":
        return _load_spm(p, chat)
    if suffix == ".gguf":
        return _load_gguf(p, chat)
    raise ValueError(f"unrecognised tokenizer file {p}: expected a directory, tokenizer.json, .model or .gguf")
