"""The tokenizer interface the rest of s1jax uses: :class:`Tokenizer` over a small :class:`Backend` protocol.

Everything downstream (SFT data, generation, budget forcing) talks to this interface, so the model family and the file
the vocabulary came from do not leak into the rest of the code. Token ids are always looked up by their string
(``tok.token_to_id("<|im_start|>")``); no id is hard-coded here, because Qwen, SmolLM2 and Llama put the same
delimiters at different ids. Backends: :mod:`s1jax.tokenizer.hf` (``tokenizer.json``, also GGUF vocabularies) and
:mod:`s1jax.tokenizer.spm` (SentencePiece ``.model``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from s1jax.tokenizer.chat_format import ChatFormat

__all__ = ["Backend", "Tokenizer"]


class Backend(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, idx: int) -> str | None: ...
    def size(self) -> int: ...


class Tokenizer:
    """The tokenizer interface the rest of s1jax uses (see docs/contracts.md).

    ``encode`` never adds BOS/EOS: s1's prompts are ChatML text and the Qwen template adds no BOS. Families that need
    a BOS get it from the caller via ``bos_token_id``.
    """

    def __init__(
        self,
        backend: Backend,
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
