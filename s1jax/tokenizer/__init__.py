"""Tokenizers for s1jax: HF ``tokenizer.json``, SentencePiece ``.model`` and GGUF-embedded vocabularies behind one
:class:`Tokenizer` interface, and the s1 chat format (:mod:`s1jax.tokenizer.chat_format`).

The chat format reproduces what s1's ``data/tokenization.py`` produces through the Qwen2.5 chat template, as plain
string rendering: the chat template itself is Jinja in a file we may not have (GGUF, SentencePiece), and the s1 layout
(``<|im_start|>think`` / ``<|im_start|>answer`` inside the assistant turn) is fixed by the paper, not by the template.
"""

from s1jax.tokenizer.base import Tokenizer
from s1jax.tokenizer.chat_format import (
    QWEN_SYSTEM_MESSAGE,
    SMOLLM2_SYSTEM_MESSAGE,
    ChatFormat,
    chat_format_for,
    detect_family,
)
from s1jax.tokenizer.loading import SAVED_TOKENIZER_META, load_tokenizer

__all__ = [
    "QWEN_SYSTEM_MESSAGE",
    "SMOLLM2_SYSTEM_MESSAGE",
    "SAVED_TOKENIZER_META",
    "ChatFormat",
    "Tokenizer",
    "chat_format_for",
    "detect_family",
    "load_tokenizer",
]
