"""GGUF-embedded vocabularies -> :class:`~s1jax.tokenizer.Tokenizer` (gpt2-style BPE and llama-style SentencePiece),
with llama.cpp's pre-tokenizer splits so ids match what llama.cpp and the model were trained with."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from s1jax.gguf_file import open_gguf
from s1jax.tokenizer.base import Tokenizer
from s1jax.tokenizer.chat_format import ChatFormat, resolve_chat_format
from s1jax.tokenizer.hf import HFBackend, has_chatml

__all__ = ["load_gguf_tokenizer"]

# GGUF token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
_GGUF_CONTROL, _GGUF_USER_DEFINED, _GGUF_BYTE, _GGUF_UNKNOWN = 3, 4, 6, 2

# Pre-tokenizer split regexes by `tokenizer.ggml.pre`, as llama.cpp applies them before byte-level BPE.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GGUF_SPLITS = {
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
}

# llama.cpp pre-tokenizers that isolate each digit (regex "\p{N}") before the GPT-2 split.
_GGUF_DIGIT_PRES = frozenset({"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"})


def _gguf_metadata(path: pathlib.Path) -> dict[str, Any]:
    reader = open_gguf(path)  # parsed once per file for the tokenizer and the model
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.") or key.startswith("general."):
            meta[key] = field.contents()
    return meta


def _spm_merges(tokens: Sequence[str], scores: Sequence[float], usable: set[str]) -> list[tuple[str, str]]:
    """BPE merges equivalent to SentencePiece-BPE / llama.cpp SPM: a merge's rank is the score of the piece it makes.

    SPM files carry scores, not merges; llama.cpp greedily merges the adjacent pair whose concatenation has the best
    score, which is exactly BPE with merges sorted by that score.
    """
    vocab = {t: i for i, t in enumerate(tokens)}
    merges: list[tuple[float, int, int, str, str]] = []
    for tok, score in zip(tokens, scores):
        if tok not in usable or len(tok) < 2:
            continue
        for k in range(1, len(tok)):
            left, right = tok[:k], tok[k:]
            if left in usable and right in usable:
                merges.append((-float(score), vocab[left], vocab[right], left, right))
    merges.sort()
    return [(m[3], m[4]) for m in merges]


def load_gguf_tokenizer(path: pathlib.Path, chat: ChatFormat | None, chat_format: str = "") -> Tokenizer:
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    meta = _gguf_metadata(path)
    model_kind = meta.get("tokenizer.ggml.model")
    tokens: list[str] = list(meta.get("tokenizer.ggml.tokens") or [])
    if model_kind is None or not tokens:
        raise ValueError(f"{path}: GGUF file has no embedded tokenizer (tokenizer.ggml.model/tokens missing)")
    types: list[int] = [int(t) for t in (meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))]
    pre = meta.get("tokenizer.ggml.pre")

    if model_kind == "gpt2":
        merges_raw = meta.get("tokenizer.ggml.merges") or []
        merges = []
        for m in merges_raw:
            parts = m.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{path}: malformed merge {m!r}")
            merges.append((parts[0], parts[1]))
        vocab = {t: i for i, t in enumerate(tokens)}
        tok = HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        if pre in _GGUF_SPLITS:
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(_GGUF_SPLITS[pre]), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        elif pre in _GGUF_DIGIT_PRES:
            # llama.cpp's SMOLLM (& co.) pre-tokenizer, and SmolLM2's own tokenizer.json: isolate every digit, then
            # GPT-2. transformers' GGUF loader skips the digit step, so "x  2" differs there ("Ġ","Ġ","2" vs "ĠĠ","2").
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Digits(individual_digits=True),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
                ]
            )
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
    elif model_kind == "llama":
        scores = [float(s) for s in (meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens))]
        unk_id = meta.get("tokenizer.ggml.unknown_token_id")
        unk = tokens[int(unk_id)] if unk_id is not None else None
        usable = {t for t, ty in zip(tokens, types) if ty not in (_GGUF_CONTROL, _GGUF_UNKNOWN, _GGUF_BYTE)}
        vocab = {t: i for i, t in enumerate(tokens)}
        merges = _spm_merges(tokens, scores, usable)
        tok = HFTokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
        add_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        # llama.cpp's SPM path: escape spaces as U+2581 and (add_space_prefix) prefix one to every raw-text fragment,
        # also after special tokens and also when the text already starts with a space. A normalizer does exactly
        # that, since tokenizers applies it to each segment between added tokens. (Metaspace would skip the prefix
        # on text that starts with a space, and lose that space on decode.)
        steps_n = [normalizers.Prepend("\u2581")] if add_prefix else []
        tok.normalizer = normalizers.Sequence([*steps_n, normalizers.Replace(" ", "\u2581")])
        steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
        if add_prefix:
            steps.append(decoders.Strip(" ", 1, 0))
        tok.decoder = decoders.Sequence(steps)
    else:
        raise ValueError(f"{path}: unsupported GGUF tokenizer model {model_kind!r} (supported: 'gpt2', 'llama')")

    specials = [AddedToken(t, normalized=False, special=True) for t, ty in zip(tokens, types) if ty == _GGUF_CONTROL and t]
    if specials:
        tok.add_special_tokens(specials)
    user = [AddedToken(t, normalized=False, special=False) for t, ty in zip(tokens, types) if ty == _GGUF_USER_DEFINED]
    if user:
        tok.add_tokens(user)

    def tid(key: str) -> int | None:
        v = meta.get(f"tokenizer.ggml.{key}")
        return int(v) if v is not None else None

    eos_id = tid("eos_token_id")
    specials = {f"{name}_token": tokens[i] for name in ("bos", "eos", "padding", "unknown")
                if (i := tid(f"{name}_token_id")) is not None and 0 <= i < len(tokens)}
    specials = {{"padding_token": "pad_token", "unknown_token": "unk_token"}.get(k, k): v for k, v in specials.items()}
    backend = HFBackend(tok)
    chat = resolve_chat_format(
        chat,
        chat_template=meta.get("tokenizer.chat_template"),
        setting=chat_format,
        special_tokens=specials,
        has_chatml=has_chatml(backend),
        source=str(path),
        model_type=meta.get("general.architecture"),
        gguf_pre=pre,
        vocab_size=len(tokens),
    )
    return Tokenizer(
        backend,
        chat=chat,
        eos_tokens=[eos_id] if eos_id is not None else [],
        pad_token=tid("padding_token_id"),
        bos_token=tid("bos_token_id"),
        source=str(path),
    )
