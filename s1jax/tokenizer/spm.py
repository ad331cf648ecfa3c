"""SentencePiece ``.model`` vocabularies (Llama-style), with HF-style handling of control tokens written in text."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence

from s1jax.tokenizer.base import Tokenizer
from s1jax.tokenizer.chat_format import ChatFormat, resolve_chat_format

__all__ = ["SPMBackend", "load_spm_tokenizer"]


class SPMBackend:
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


def load_spm_tokenizer(path: pathlib.Path, chat: ChatFormat | None, chat_format: str = "") -> Tokenizer:
    backend = SPMBackend(path)
    chatml = backend.token_to_id("<|im_start|>") is not None and backend.token_to_id("<|im_end|>") is not None
    sp = backend.sp
    eos = [sp.eos_id()] if sp.eos_id() >= 0 else []
    pad = sp.pad_id() if sp.pad_id() >= 0 else None
    bos = sp.bos_id() if sp.bos_id() >= 0 else None
    return Tokenizer(
        backend,
        # a bare .model has no template: ChatML (the llama family's, SmolLM2-style) only if the vocabulary has it
        chat=resolve_chat_format(chat, setting=chat_format, has_chatml=chatml, source=str(path), model_type="llama",
                                 vocab_size=backend.size()),
        eos_tokens=eos,
        pad_token=pad,
        bos_token=bos,
        source=str(path),
    )
