"""Architecture description of a Llama-family decoder, read from / written to Hugging Face ``config.json``.

One frozen dataclass covers Qwen2/Qwen2.5 (QKV bias, rope theta 1e6), Llama and SmolLM2 (no bias). It is hashable
so it can be a static argument of ``jax.jit``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from s1jax.jsonfile import read_json

__all__ = ["ModelConfig", "SUPPORTED_ARCHITECTURES"]

# HF `architectures[0]` / `model_type` -> our family name.
SUPPORTED_ARCHITECTURES = {
    "Qwen2ForCausalLM": "qwen2",
    "qwen2": "qwen2",
    "LlamaForCausalLM": "llama",
    "llama": "llama",
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Decoder shape and numerics. ``vocab_size`` is the embedding size (may exceed the tokenizer's size)."""

    architecture: str = "qwen2"  # "qwen2" | "llama"
    vocab_size: int = 151936
    hidden_size: int = 896
    intermediate_size: int = 4864
    num_layers: int = 24
    num_heads: int = 14
    num_kv_heads: int = 2
    head_dim: int = 64
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = True
    attention_bias: bool = True  # bias on q/k/v projections (Qwen2); o_proj never has one
    mlp_bias: bool = False
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.architecture not in ("qwen2", "llama"):
            raise ValueError(f"unknown architecture {self.architecture!r}; supported: qwen2, llama")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")

    @property
    def num_params(self) -> int:
        """Parameter count (embeddings included once when tied)."""
        e, m, h, k, d = self.hidden_size, self.intermediate_size, self.num_heads, self.num_kv_heads, self.head_dim
        attn = e * h * d + 2 * e * k * d + h * d * e + (h * d + 2 * k * d if self.attention_bias else 0)
        mlp = 3 * e * m + (2 * m + e if self.mlp_bias else 0)
        per_layer = attn + mlp + 2 * e
        embed = self.vocab_size * e * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + embed + e

    # ---------------------------------------------------------------- Hugging Face config.json
    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any]) -> "ModelConfig":
        arch_names = list(hf.get("architectures") or []) + [hf.get("model_type", "")]
        family = next((SUPPORTED_ARCHITECTURES[a] for a in arch_names if a in SUPPORTED_ARCHITECTURES), None)
        if family is None:
            raise ValueError(
                f"unknown architecture {arch_names!r}; supported: {sorted(set(SUPPORTED_ARCHITECTURES))}"
            )
        rope_scaling = hf.get("rope_scaling")
        if rope_scaling and (rope_scaling.get("rope_type") or rope_scaling.get("type")) not in (None, "default"):
            raise ValueError(f"rope_scaling {rope_scaling!r} is not supported (only default RoPE)")
        heads = int(hf["num_attention_heads"])
        hidden = int(hf["hidden_size"])
        eos = hf.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        rope_theta = hf.get("rope_theta")
        if rope_theta is None:  # transformers >= 5 may nest it under rope_parameters
            rope_theta = (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0)
        return cls(
            architecture=family,
            vocab_size=int(hf["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(hf["intermediate_size"]),
            num_layers=int(hf["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(hf.get("num_key_value_heads") or heads),
            head_dim=int(hf.get("head_dim") or hidden // heads),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope_theta),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            attention_bias=True if family == "qwen2" else bool(hf.get("attention_bias", False)),
            mlp_bias=bool(hf.get("mlp_bias", False)),
            max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=eos,
        )

    @classmethod
    def from_hf_file(cls, path: str) -> "ModelConfig":
        config_path = os.path.join(path, "config.json") if os.path.isdir(path) else path
        return cls.from_hf_dict(read_json(config_path, what="config.json"))

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that ``transformers`` loads into the matching architecture."""
        hf: dict[str, Any] = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        }
        if self.bos_token_id is not None:
            hf["bos_token_id"] = self.bos_token_id
        if self.eos_token_id is not None:
            hf["eos_token_id"] = self.eos_token_id
        if self.architecture == "qwen2":
            hf.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", use_sliding_window=False)
        else:
            hf.update(
                architectures=["LlamaForCausalLM"],
                model_type="llama",
                attention_bias=self.attention_bias,
                mlp_bias=self.mlp_bias,
            )
        return hf

    # ---------------------------------------------------------------- ml_collections
    @classmethod
    def from_config_dict(cls, cfg: Any) -> "ModelConfig":
        """From an ml_collections ConfigDict / mapping with ModelConfig field names; unknown fields are errors."""
        values = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)
