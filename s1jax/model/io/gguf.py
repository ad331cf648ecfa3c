"""GGUF import (llama.cpp files): architectures ``llama`` (Llama, SmolLM2) and ``qwen2``.

Hyperparameters come from the GGUF metadata, tensors are dequantised with ``gguf.quants.dequantize`` (Q4_0, Q4_1,
Q8_0, F16, F32, BF16 and whatever else the installed ``gguf`` supports) and renamed to HF names, so the HF placement
path (``s1jax.model.io.hf.assemble_params``) builds the params. GGUF stores dims in ggml order (``ne``, fastest first); the
NumPy array gguf-py hands out is already ``[rows, cols]`` = the HF ``[out, in]`` layout.

llama.cpp's ``convert_hf_to_gguf.py`` permutes the Q/K projection rows of *llama* models (interleaved rotary pairs for
its RoPE kernel): ``w.reshape(n_head, 2, rows // n_head // 2, ...).swapaxes(1, 2)``; we apply the exact inverse
(with ``n_head = head_count`` for Q and ``head_count_kv`` for K). qwen2 GGUFs are not permuted.

Memory: one parameter (all its layers, dequantised to float32) is held on the host at a time.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from jax.sharding import Mesh

from s1jax.gguf_file import open_gguf
from s1jax.model.config import ModelConfig
from s1jax.model.io.hf import assemble_params

__all__ = ["GGUFSource", "gguf_config", "load_gguf", "reverse_llama_permute"]

_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_FAMILIES = {"llama": "llama", "qwen2": "qwen2"}


def _hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL:
        return _GLOBAL[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    if m and m.group(2) in _LAYER:
        return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}"
    return gguf_name  # unknown: reported as unexpected by the validation


def reverse_llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's ``permute(w, n_head)`` on the rows of a Q/K weight (or bias)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    value = field.contents()
    return value


class GGUFSource:
    """Dequantised tensors of a GGUF file under HF names (cached until ``release()``)."""

    def __init__(self, reader: Any, config: ModelConfig):
        self._tensors = {_hf_name(t.name): t for t in reader.tensors}
        self._config = config
        self._cache: dict[str, np.ndarray] = {}

    def names(self) -> list[str]:
        return list(self._tensors)

    def shape(self, name: str) -> tuple[int, ...] | None:
        t = self._tensors.get(name)
        return None if t is None else tuple(int(x) for x in reversed(t.shape))

    def read(self, name: str) -> np.ndarray:
        if name not in self._cache:
            from gguf import GGMLQuantizationType
            from gguf.quants import dequantize

            t = self._tensors[name]
            try:
                w = dequantize(t.data, t.tensor_type)
            except NotImplementedError as e:
                raise ValueError(f"GGUF tensor {t.name!r}: quantisation {GGMLQuantizationType(t.tensor_type).name} is not supported: {e}") from e
            w = np.asarray(w, dtype=np.float32).reshape(self.shape(name))
            c = self._config
            if c.architecture == "llama":
                if ".self_attn.q_proj." in name:
                    w = reverse_llama_permute(w, c.num_heads)
                elif ".self_attn.k_proj." in name:
                    w = reverse_llama_permute(w, c.num_kv_heads)
            self._cache[name] = w
        return self._cache[name]

    def release(self) -> None:
        self._cache.clear()


def _f32(value: Any) -> float:
    """GGUF stores these as float32: 9.99999974738e-06 -> 1e-05 (the shortest float32 repr, as in config.json)."""
    return float(str(np.float32(value)))


def gguf_config(reader: Any, path: str = "<gguf>") -> ModelConfig:
    arch = _field(reader, "general.architecture")
    if arch not in _FAMILIES:
        raise ValueError(f"{path!r}: unknown GGUF architecture {arch!r}; supported: {sorted(_FAMILIES)}")
    names = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in names:
        raise ValueError(f"{path!r}: missing tensor 'token_embd.weight'")

    def need(key: str) -> Any:
        value = _field(reader, f"{arch}.{key}")
        if value is None:
            raise ValueError(f"{path!r}: missing GGUF metadata {arch}.{key}")
        return value

    hidden = int(need("embedding_length"))
    heads = int(need("attention.head_count"))
    kv_heads = int(_field(reader, f"{arch}.attention.head_count_kv", heads))
    head_dim = int(_field(reader, f"{arch}.attention.key_length", hidden // heads))
    rope_dims = _field(reader, f"{arch}.rope.dimension_count")
    if rope_dims is not None and int(rope_dims) != head_dim:
        raise ValueError(f"{path!r}: partial rotary (rope.dimension_count={rope_dims}, head_dim={head_dim}) is not supported")
    if "rope_freqs.weight" in names or _field(reader, f"{arch}.rope.scaling.type") not in (None, "none"):
        raise ValueError(f"{path!r}: RoPE scaling is not supported (only default RoPE)")
    vocab = int(reversed(names["token_embd.weight"].shape).__next__())  # rows of [vocab, embed]
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is not None and len(tokens.data) > vocab:
        raise ValueError(f"{path!r}: {len(tokens.data)} tokenizer tokens but only {vocab} embedding rows")

    def opt_int(key: str) -> int | None:
        v = _field(reader, key)
        return None if v is None else int(v)

    return ModelConfig(
        architecture=_FAMILIES[arch],
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=int(need("feed_forward_length")),
        num_layers=int(need("block_count")),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        rms_norm_eps=_f32(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=_f32(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        tie_word_embeddings="output.weight" not in names,
        attention_bias=arch == "qwen2" or "blk.0.attn_q.bias" in names,
        mlp_bias=False,
        max_position_embeddings=int(_field(reader, f"{arch}.context_length", 32768)),
        bos_token_id=opt_int("tokenizer.ggml.bos_token_id"),
        eos_token_id=opt_int("tokenizer.ggml.eos_token_id"),
    )


def _open(path: str) -> Any:
    try:
        return open_gguf(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path!r} is not a readable GGUF file: {e}") from e


def gguf_config_from_file(path: str) -> ModelConfig:
    """The architecture of a GGUF file (metadata only; the tensors stay memory-mapped and unread)."""
    return gguf_config(_open(path), path)


def load_gguf(path: str, *, param_dtype: Any, mesh: Mesh | None, rules: Any) -> tuple[ModelConfig, dict]:
    reader = _open(path)
    config = gguf_config(reader, path)
    source = GGUFSource(reader, config)
    params = assemble_params(config, source, param_dtype=param_dtype, mesh=mesh, rules=rules, what=f"GGUF {path!r}")
    return config, params
