"""Tokenizers for s1jax: HF ``tokenizer.json``, SentencePiece ``.model`` and GGUF-embedded vocabularies, plus the
s1 chat format.

Everything downstream (SFT data, generation, budget forcing) talks to one small :class:`Tokenizer` interface, so the
model family and the file the vocabulary came from do not leak into the rest of the code. Token ids are always looked
up by their string (``tok.token_to_id("<|im_start|>")``); no id is hard-coded here, because Qwen, SmolLM2 and Llama put
the same delimiters at different ids.

The chat format reproduces what s1's ``data/tokenization.py`` produces through the Qwen2.5 chat template, as plain
string rendering: the chat template itself is Jinja in a file we may not have (GGUF, SentencePiece), and the s1 layout
(``<|im_start|>think`` / ``<|im_start|>answer`` inside the assistant turn) is fixed by the paper, not by the template.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = [
    "ChatFormat",
    "Tokenizer",
    "chat_format_for",
    "detect_family",
    "load_tokenizer",
]

QWEN_SYSTEM_MESSAGE = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SMOLLM2_SYSTEM_MESSAGE = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# ----------------------------------------------------------------------------------------------------------------------
# Chat format
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChatFormat:
    """ChatML rendering of s1 prompts and training texts for one model family.

    Only strings live here; the tokenizer maps the delimiters to ids. ``system=None`` in the render methods means the
    family default (``system_message``), ``system=""`` means no system turn at all.
    """

    family: str = "qwen2"
    system_message: str = QWEN_SYSTEM_MESSAGE
    im_start: str = "<|im_start|>"
    im_end: str = "<|im_end|>"
    think_start: str = "<|im_start|>think"
    answer_start: str = "<|im_start|>answer"

    def _system(self, system: str | None) -> str:
        return self.system_message if system is None else system

    def render_turn(self, role: str, content: str) -> str:
        """One complete ChatML turn, as the Qwen2.5 template writes it: ``<|im_start|>{role}\\n{content}<|im_end|>\\n``."""
        return f"{self.im_start}{role}\n{content}{self.im_end}\n"

    @property
    def assistant_start(self) -> str:
        """The header that opens the assistant turn; pre-rendered s1K_tokenized texts are split here."""
        return f"{self.im_start}assistant\n"

    def render_prefix(self, question: str, system: str | None = None) -> str:
        """System turn (unless ``system == ""``), user turn, and the assistant header."""
        sys_msg = self._system(system)
        text = self.render_turn("system", sys_msg) if sys_msg != "" else ""
        return text + self.render_turn("user", question) + self.assistant_start

    def render_prompt(self, question: str, system: str | None = None) -> str:
        """The generation prompt s1 uses: the prefix followed by ``<|im_start|>think`` (no newline: the model writes
        it), so thinking starts immediately."""
        return self.render_prefix(question, system) + self.think_start

    def render_training(
        self, question: str, thinking: str, answer: str, system: str | None = None
    ) -> tuple[str, str]:
        """``(prompt_part, completion_part)`` of one SFT example; the loss goes on ``completion_part`` only.

        Mirrors s1's ``process_cot_example``: the answer gets an ``"Answer: "`` prefix unless it already contains
        ``"Answer:"``, then both thinking and answer are stripped; the assistant content is
        ``<|im_start|>think\\n{thinking}\\n<|im_start|>answer\\n{answer}`` closed by ``<|im_end|>\\n``.
        """
        if "Answer:" not in answer:
            answer = "Answer: " + answer
        content = f"{self.think_start}\n{thinking.strip()}\n{self.answer_start}\n{answer.strip()}"
        return self.render_prefix(question, system), f"{content}{self.im_end}\n"


_FAMILY_FORMATS: dict[str, ChatFormat] = {
    "qwen2": ChatFormat(family="qwen2", system_message=QWEN_SYSTEM_MESSAGE),
    "smollm2": ChatFormat(family="smollm2", system_message=SMOLLM2_SYSTEM_MESSAGE),
}
_FAMILY_ALIASES = {
    "qwen": "qwen2",
    "qwen2": "qwen2",
    "qwen2.5": "qwen2",
    "qwen2_5": "qwen2",
    "qwen3": "qwen2",
    "llama": "smollm2",
    "smollm": "smollm2",
    "smollm2": "smollm2",
}


def chat_format_for(family: str, **overrides: Any) -> ChatFormat:
    """The chat format of a model family (``"qwen2"``, ``"llama"``/``"smollm2"``), with optional field overrides
    (e.g. ``system_message=...``)."""
    key = _FAMILY_ALIASES.get(family.lower().replace("-", "_"))
    if key is None:
        raise ValueError(f"unknown chat family {family!r}; known: {sorted(_FAMILY_ALIASES)}")
    return dataclasses.replace(_FAMILY_FORMATS[key], **overrides)


def detect_family(
    *,
    model_type: str | None = None,
    chat_template: str | None = None,
    gguf_pre: str | None = None,
    vocab_size: int | None = None,
) -> str:
    """Best guess of the chat family from whatever metadata a tokenizer came with.

    The chat template is the most specific signal (it names its default system message); then the GGUF
    pre-tokenizer name and the config's model_type. The fallback is ``"qwen2"``: s1 is a Qwen recipe.
    """
    tmpl = chat_template or ""
    if "SmolLM" in tmpl:
        return "smollm2"
    if "Qwen" in tmpl:
        return "qwen2"
    if gguf_pre:
        if gguf_pre.startswith("smollm"):
            return "smollm2"
        if "qwen" in gguf_pre:
            return "qwen2"
    if model_type:
        mt = model_type.lower()
        if mt.startswith("qwen"):
            return "qwen2"
        if mt == "llama" and vocab_size is not None and vocab_size < 100_000:
            return "smollm2"
    return "qwen2"


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
    from gguf import GGUFReader

    reader = GGUFReader(str(path), "r")
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


def _load_gguf(path: pathlib.Path, chat: ChatFormat | None) -> Tokenizer:
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
    if chat is None:
        template = meta.get("tokenizer.chat_template")
        chat = chat_format_for(
            detect_family(
                model_type=meta.get("general.architecture"),
                chat_template=template if isinstance(template, str) else None,
                gguf_pre=pre,
                vocab_size=len(tokens),
            )
        )
    return Tokenizer(
        _HFBackend(tok),
        chat=chat,
        eos_tokens=[eos_id] if eos_id is not None else [],
        pad_token=tid("padding_token_id"),
        bos_token=tid("bos_token_id"),
        source=str(path),
    )


def load_tokenizer(path: str | os.PathLike[str], *, chat: ChatFormat | None = None) -> Tokenizer:
    """Load a tokenizer from a directory with ``tokenizer.json``, a ``tokenizer.json`` file, a SentencePiece ``.model``
    or a ``.gguf`` file (its embedded vocabulary). ``chat`` overrides the detected family chat format.

    A directory without ``tokenizer.json`` falls back to a single ``tokenizer.model`` or ``.gguf`` inside it.
    """
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"tokenizer path does not exist: {p}")
    if p.is_dir():
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
