"""Chat templates: a Llama-3-style tokenizer renders its own template (compared with transformers'
``apply_chat_template``) with the s1 think/answer markers in the assistant turn; ``chat_template.jinja`` files and
``model.chat_format`` overrides; a tokenizer with neither a template nor ChatML tokens is a clear error (library and
CLI). Tiny tokenizers trained here in milliseconds; no model is built."""

from __future__ import annotations

import json
import pathlib

import pytest

from s1jax import exit_codes
from s1jax.tokenizer import load_tokenizer
from s1jax.tokenizer.chat_format import ChatFormatError

# Meta-Llama-3-8B-Instruct's chat template (tokenizer_config.json), verbatim.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CORPUS = ["What is 12 * 7? Let me think. Wait, 84. Answer: 84", "system user assistant think answer"] * 4


def _tokenizer_dir(d: pathlib.Path, specials: list[str], config: dict, template_file: str | None = None) -> pathlib.Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    if template_file is not None:
        (d / "chat_template.jinja").write_text(template_file)
    return d


@pytest.fixture(scope="module")
def llama3_dir(tmp_path_factory) -> pathlib.Path:
    return _tokenizer_dir(tmp_path_factory.mktemp("llama3"), LLAMA3_SPECIALS, {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA3_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast"})


def test_llama3_template_renders_its_own_layout_with_s1_markers(llama3_dir):
    transformers = pytest.importorskip("transformers")
    tok = load_tokenizer(llama3_dir)
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(llama3_dir / "tokenizer.json"),
                                              bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    chat = tok.chat
    assert chat.template == LLAMA3_TEMPLATE and chat.system_message == "" and chat.im_end == "<|eot_id|>"
    assert tok.token_to_id("<|eot_id|>") in tok.eos_token_ids  # generation ends at the end of the turn
    assert chat.assistant_start == "<|start_header_id|>assistant<|end_header_id|>\n\n"

    q = "What is 12 * 7?"
    prompt = chat.render_prompt(q)
    user = [{"role": "user", "content": q}]
    assert prompt == hf.apply_chat_template(user, tokenize=False, add_generation_prompt=True,
                                            chat_template=LLAMA3_TEMPLATE) + "<|im_start|>think"
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user") and "Qwen" not in prompt
    assert "<|im_start|>system" not in prompt and "<|im_end|>" not in prompt
    system = [{"role": "system", "content": "Be brief."}] + user
    assert chat.render_prefix(q, system="Be brief.") == hf.apply_chat_template(
        system, tokenize=False, add_generation_prompt=True, chat_template=LLAMA3_TEMPLATE)

    part, completion = chat.render_training(q, " 12 * 7 = 84.\n", "84")
    content = "<|im_start|>think\n12 * 7 = 84.\n<|im_start|>answer\nAnswer: 84"
    assert part == chat.render_prefix(q)
    assert part + completion == hf.apply_chat_template(user + [{"role": "assistant", "content": content}],
                                                       tokenize=False, chat_template=LLAMA3_TEMPLATE)
    assert completion == content + "<|eot_id|>"
    ids = tok.encode(prompt)
    assert ids[0] == tok.token_to_id("<|begin_of_text|>") and tok.decode(ids) == prompt


def test_chat_template_jinja_file_and_overrides(tmp_path, llama3_dir):
    d = _tokenizer_dir(tmp_path / "jinja", LLAMA3_SPECIALS, {"bos_token": "<|begin_of_text|>",
                                                             "eos_token": "<|eot_id|>"}, template_file=LLAMA3_TEMPLATE)
    assert load_tokenizer(d).chat.render_prompt("q") == load_tokenizer(llama3_dir).chat.render_prompt("q")
    # an explicit built-in ChatML, and a template file of the user's (raise_exception as in HF templates)
    assert load_tokenizer(llama3_dir, chat_format="chatml").chat.template == ""
    strict = tmp_path / "strict.jinja"
    strict.write_text("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system turns') }}"
                      "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                      "{% if add_generation_prompt %}[assistant] {% endif %}")
    chat = load_tokenizer(llama3_dir, chat_format=str(strict)).chat
    assert chat.render_prompt("q") == "[user] q\n[assistant] <|im_start|>think"
    with pytest.raises(ChatFormatError, match="no system turns"):
        chat.render_prompt("q", system="S")
    with pytest.raises(ChatFormatError, match="must be one of"):
        load_tokenizer(llama3_dir, chat_format="llama9")


def test_no_template_and_no_chatml_needs_an_explicit_format(tmp_path, capsys):
    d = _tokenizer_dir(tmp_path / "plain", ["<s>", "</s>"], {"eos_token": "</s>"})
    tok = load_tokenizer(d)
    with pytest.raises(ChatFormatError, match="model.chat_format"):
        tok.chat.render_prompt("q")
    with pytest.raises(ChatFormatError, match="has no chat template"):
        load_tokenizer(d, chat_format="template")
    assert load_tokenizer(d, chat_format="chatml").chat.render_prompt("q").endswith(
        "<|im_start|>assistant\n<|im_start|>think")

    from s1jax.cli.main import main

    rc = main(["generate", f"--config.model.tokenizer={d}", "--config.prompt=hi", "--config.output="])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == exit_codes.USAGE and len(err) == 1 and "--config.model.chat_format" in err[0], err
    rc = main(["generate", f"--config.model.tokenizer={d}", "--config.prompt=hi", "--config.model.chat_format=llama"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == exit_codes.USAGE and len(err) == 1 and "model.chat_format must be" in err[0], err
    from s1jax.cli import generate
    from s1jax.config import CONFIGS_DIR, load_config_file

    cfg = load_config_file(f"{CONFIGS_DIR}/generate/default.py")  # validation only: no model is built
    cfg.model.tokenizer, cfg.prompt, cfg.model.chat_format = str(d), "hi", "chatml"
    assert generate.validate(cfg)["tok"].chat.family == "qwen2"
