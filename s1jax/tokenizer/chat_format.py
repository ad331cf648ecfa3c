"""The s1 chat format: the s1 think/answer markers (``<|im_start|>think`` / ``<|im_start|>answer``) inside the
assistant turn of a model family's chat layout.

Two renderings, same interface:

* Qwen (and ChatML vocabularies without a template): plain string rendering that reproduces what s1's
  ``data/tokenization.py`` produces through the Qwen2.5 chat template, byte for byte (tests compare with
  ``apply_chat_template``), with no Jinja at all.
* Every other family with a chat template (``chat_template`` in tokenizer_config.json, ``chat_template.jinja``, or
  the GGUF metadata ``tokenizer.chat_template``): that template, rendered with Jinja2 as transformers'
  ``apply_chat_template`` does (sandboxed, ``trim_blocks``/``lstrip_blocks``, ``raise_exception``, ``strftime_now``,
  the tokenizer's special tokens as variables). The prompt is the template's generation prompt followed by the
  think marker; a training example's completion is what the template adds for the assistant turn whose content is
  ``<|im_start|>think\n...\n<|im_start|>answer\n...``.

A tokenizer with neither a template nor a ChatML vocabulary gets no silent default: rendering raises, naming the
setting that chooses a format (``model.chat_format``). Token ids are never involved here.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Any

__all__ = [
    "ChatFormat",
    "ChatFormatError",
    "CHAT_FORMAT_CHOICES",
    "chat_format_for",
    "detect_family",
    "render_template",
    "resolve_chat_format",
    "QWEN_SYSTEM_MESSAGE",
    "SMOLLM2_SYSTEM_MESSAGE",
]

QWEN_SYSTEM_MESSAGE = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SMOLLM2_SYSTEM_MESSAGE = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# ----------------------------------------------------------------------------------------------------------------------
# Chat format
# ----------------------------------------------------------------------------------------------------------------------


class ChatFormatError(ValueError):
    """No usable chat format: the message names the setting that fixes it."""


# model.chat_format values besides a path to a .jinja file.
CHAT_FORMAT_CHOICES = ("auto", "template", "chatml", "qwen2", "smollm2")

UNRESOLVED = "none"  # ChatFormat.family of a tokenizer whose format must be chosen explicitly


@dataclasses.dataclass(frozen=True)
class ChatFormat:
    """Rendering of s1 prompts and training texts for one model family.

    Only strings live here; the tokenizer maps the delimiters to ids. ``system=None`` in the render methods means the
    family default (``system_message``), ``system=""`` means no system message (a template may still write its own
    default system turn, as it does under ``apply_chat_template``). ``template`` empty: the built-in ChatML
    rendering; else the Jinja chat template, rendered with ``template_vars`` (bos_token, eos_token, ...).
    """

    family: str = "qwen2"
    system_message: str = QWEN_SYSTEM_MESSAGE
    im_start: str = "<|im_start|>"
    im_end: str = "<|im_end|>"  # the end-of-turn marker (an EOS for generation); for templates, derived from it
    think_start: str = "<|im_start|>think"
    answer_start: str = "<|im_start|>answer"
    template: str = ""
    template_vars: tuple[tuple[str, str], ...] = ()
    source: str = ""  # where the tokenizer came from, for error messages

    def __post_init__(self) -> None:
        # JSON round trips (s1jax_tokenizer.json) give lists; keep the dataclass hashable.
        object.__setattr__(self, "template_vars", tuple((str(k), str(v)) for k, v in self.template_vars))

    def _system(self, system: str | None) -> str:
        return self.system_message if system is None else system

    def _check_resolved(self) -> None:
        if self.family == UNRESOLVED:
            where = f" ({self.source})" if self.source else ""
            raise ChatFormatError(
                f"the tokenizer{where} has no chat template and no ChatML tokens, so the prompt layout is unknown: "
                "set --config.model.chat_format to 'chatml' (s1's ChatML layout, needs <|im_start|>/<|im_end|>), "
                "or to a .jinja chat template file")

    def _messages(self, question: str, system: str | None) -> list[dict[str, str]]:
        sys_msg = self._system(system)
        return ([{"role": "system", "content": sys_msg}] if sys_msg else []) + [{"role": "user", "content": question}]

    def render_messages(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        """The chat template applied to ``messages`` (templated formats only)."""
        return render_template(self.template, messages, add_generation_prompt, dict(self.template_vars))

    def render_turn(self, role: str, content: str) -> str:
        """One complete ChatML turn, as the Qwen2.5 template writes it: ``<|im_start|>{role}\\n{content}<|im_end|>\\n``."""
        return f"{self.im_start}{role}\n{content}{self.im_end}\n"

    @property
    def assistant_start(self) -> str:
        """The header that opens the assistant turn; pre-rendered s1K_tokenized texts are split here."""
        if self.template:
            messages = [{"role": "user", "content": "x"}]
            with_header = self.render_messages(messages, True)
            without = self.render_messages(messages, False)
            return with_header[len(without):] if with_header.startswith(without) else with_header
        return f"{self.im_start}assistant\n"

    def render_prefix(self, question: str, system: str | None = None) -> str:
        """System turn (unless ``system == ""``), user turn, and the assistant header (a template's generation
        prompt)."""
        self._check_resolved()
        if self.template:
            return self.render_messages(self._messages(question, system), True)
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
        prefix = self.render_prefix(question, system)
        if not self.template:
            return prefix, f"{content}{self.im_end}\n"
        full = self.render_messages(self._messages(question, system) + [{"role": "assistant", "content": content}],
                                    False)
        if not full.startswith(prefix):
            raise ChatFormatError(
                f"the chat template of {self.source or self.family!r} does not render a conversation as its generation "
                "prompt followed by the assistant turn, so the loss cannot be put on the assistant turn alone; "
                "set --config.model.chat_format='chatml' or pass a .jinja template that does")
        return prefix, full[len(prefix):]


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
# Jinja rendering (what transformers' apply_chat_template does)
# ----------------------------------------------------------------------------------------------------------------------


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    try:
        import jinja2
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as e:  # a core dependency; only a broken install gets here
        raise ChatFormatError("rendering a chat template needs jinja2 (pip install jinja2)") from e

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        import json

        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateError as e:
        raise ChatFormatError(f"the chat template does not parse: {e}") from e


def render_template(template: str, messages: list[dict[str, str]], add_generation_prompt: bool,
                    variables: dict[str, str] | None = None) -> str:
    """``template`` rendered like ``tokenizer.apply_chat_template(messages, tokenize=False, ...)``."""
    import jinja2

    try:
        return _compiled(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                          **(variables or {}))
    except jinja2.TemplateError as e:
        raise ChatFormatError(f"the chat template raised: {e}") from e


def _end_of_turn(template: str, variables: dict[str, str], fallback: str) -> str:
    """The marker a template writes after an assistant message (``<|im_end|>``, ``<|eot_id|>``, ``</s>``)."""
    marker = "S1JAX_ASSISTANT_CONTENT"
    try:
        text = render_template(template, [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}],
                               False, variables)
    except ChatFormatError:
        return fallback
    i = text.rfind(marker)
    tail = text[i + len(marker):].strip() if i >= 0 else ""
    return tail.split()[0] if tail else fallback


def templated_format(template: str, *, family: str, system_message: str = "", variables: dict[str, str] | None = None,
                     source: str = "") -> ChatFormat:
    """A ChatFormat that renders ``template``; its end-of-turn marker (an EOS for generation) read off the template."""
    variables = {k: v for k, v in (variables or {}).items() if isinstance(v, str)}
    _compiled(template)  # a template that does not parse fails here, when the tokenizer loads
    im_end = _end_of_turn(template, variables, variables.get("eos_token", "<|im_end|>"))
    return ChatFormat(family=family, system_message=system_message, im_end=im_end, template=template,
                      template_vars=tuple(sorted(variables.items())), source=source)


def _is_qwen(template: str | None, model_type: str | None, gguf_pre: str | None) -> bool:
    if template and "Qwen" in template:
        return True
    if gguf_pre and "qwen" in gguf_pre:
        return True
    return bool(model_type and model_type.lower().startswith("qwen"))


def resolve_chat_format(
    chat: ChatFormat | None,
    *,
    chat_template: Any = None,
    setting: str = "",
    special_tokens: dict[str, str] | None = None,
    has_chatml: bool = True,
    source: str = "",
    **signals: Any,
) -> ChatFormat:
    """The tokenizer's chat format: ``chat`` when the caller built one; else ``setting`` (``model.chat_format``):

    * ``""``/``"auto"``: Qwen tokenizers (template, GGUF pre-tokenizer or model_type) -> the built-in s1 ChatML;
      another family with a chat template -> that template; no template but a ChatML vocabulary (``has_chatml``)
      -> the built-in ChatML of the detected family (:func:`detect_family`); otherwise unresolved (rendering raises,
      naming this setting).
    * ``"template"``: the tokenizer's own template (error when it has none).
    * ``"chatml"``/``"qwen2"``/``"smollm2"``: the built-in ChatML (``chatml`` = the detected family's system message).
    * a path to a ``.jinja`` file: that template.

    ``special_tokens`` (bos_token, eos_token, ...) become template variables, as transformers passes them.
    """
    if chat is not None:
        return chat
    template = chat_template if isinstance(chat_template, str) and chat_template.strip() else None
    setting = (setting or "auto").strip()
    variables = dict(special_tokens or {})
    if setting.endswith(".jinja"):
        import pathlib

        p = pathlib.Path(setting).expanduser()
        if not p.is_file():
            raise ChatFormatError(f"model.chat_format: template file {setting!r} does not exist")
        return templated_format(p.read_text(encoding="utf-8"), family="custom", variables=variables, source=str(p))
    if setting not in CHAT_FORMAT_CHOICES:
        raise ChatFormatError(f"model.chat_format must be one of {list(CHAT_FORMAT_CHOICES)} or a .jinja file, "
                              f"got {setting!r}")
    family = detect_family(chat_template=template, **signals)
    if setting in ("qwen2", "smollm2"):
        return chat_format_for(setting)
    if setting == "chatml":
        return chat_format_for(family)
    own_family = "smollm2" if family == "smollm2" else str(signals.get("model_type") or signals.get("gguf_pre") or "custom")
    own_system = SMOLLM2_SYSTEM_MESSAGE if family == "smollm2" else ""  # SmolLM2's template default, made explicit
    if setting == "template":
        if template is None:
            raise ChatFormatError(f"model.chat_format='template' but the tokenizer ({source}) has no chat template; "
                                  "use 'chatml' or a .jinja file")
        return templated_format(template, family=own_family, system_message=own_system, variables=variables,
                                source=source)
    # auto
    if _is_qwen(template, signals.get("model_type"), signals.get("gguf_pre")):
        return chat_format_for("qwen2")
    if template is not None:
        return templated_format(template, family=own_family, system_message=own_system, variables=variables,
                                source=source)
    if has_chatml:
        return chat_format_for(family)
    return dataclasses.replace(chat_format_for("qwen2"), family=UNRESOLVED, system_message="", source=source)
