"""The s1 chat format: ChatML turns with ``<|im_start|>think`` / ``<|im_start|>answer`` inside the assistant turn.

It reproduces what s1's ``data/tokenization.py`` produces through the Qwen2.5 chat template, as plain string
rendering: the chat template itself is Jinja in a file we may not have (GGUF, SentencePiece), and the s1 layout is
fixed by the paper, not by the template. Configurable per model family; token ids are never involved here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "ChatFormat",
    "chat_format_for",
    "detect_family",
    "resolve_chat_format",
    "QWEN_SYSTEM_MESSAGE",
    "SMOLLM2_SYSTEM_MESSAGE",
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


def resolve_chat_format(chat: ChatFormat | None, *, chat_template: Any = None, **signals: Any) -> ChatFormat:
    """``chat`` when the caller chose one, else the format of the family a tokenizer's metadata points to
    (``chat_template`` is used only when it is a string; ``signals`` go to :func:`detect_family`)."""
    if chat is not None:
        return chat
    template = chat_template if isinstance(chat_template, str) else None
    return chat_format_for(detect_family(chat_template=template, **signals))
