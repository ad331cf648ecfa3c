"""Named architectures (the real numbers of each released model) and the ``model`` config group every CLI shares.

A CLI config holds one ``model`` group: ``path`` (HF dir, ``.gguf`` or s1jax checkpoint) to load weights, or empty
with ``preset`` to random-initialise a named architecture (tests, benchmarks).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from s1jax.model.config import ModelConfig

__all__ = ["PRESETS", "preset_config", "model_config_dict", "model_group"]

PRESETS: dict[str, ModelConfig] = {
    "qwen2_5_0_5b": ModelConfig(
        architecture="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_layers=24,
        num_heads=14, num_kv_heads=2, head_dim=64, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True,
        attention_bias=True, max_position_embeddings=32768, eos_token_id=151645,
    ),
    "qwen2_5_1_5b": ModelConfig(
        architecture="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_layers=28,
        num_heads=12, num_kv_heads=2, head_dim=128, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True,
        attention_bias=True, max_position_embeddings=32768, eos_token_id=151645,
    ),
    "qwen2_5_7b": ModelConfig(
        architecture="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28,
        num_heads=28, num_kv_heads=4, head_dim=128, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=False,
        attention_bias=True, max_position_embeddings=32768, eos_token_id=151645,
    ),
    "qwen2_5_32b": ModelConfig(
        architecture="qwen2", vocab_size=152064, hidden_size=5120, intermediate_size=27648, num_layers=64,
        num_heads=40, num_kv_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=False,
        attention_bias=True, max_position_embeddings=32768, eos_token_id=151645,
    ),
    "smollm2_135m": ModelConfig(
        architecture="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
        num_heads=9, num_kv_heads=3, head_dim=64, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
        attention_bias=False, max_position_embeddings=8192, bos_token_id=1, eos_token_id=2,
    ),
    # Random-init model for tests: Qwen2 layout (QKV bias, GQA) at toy size; vocab covers the Qwen tokenizer ids
    # used by the chat format only when paired with a small tokenizer, so tests pick vocab_size as needed.
    "tiny": ModelConfig(
        architecture="qwen2", vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2,
        num_heads=4, num_kv_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
        attention_bias=True, max_position_embeddings=4096,
    ),
}


def preset_config(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]


def model_config_dict(name: str) -> ml_collections.ConfigDict:
    """The architecture of a preset as a ConfigDict with ModelConfig field names (for configs/model/*.py)."""
    return ml_collections.ConfigDict(dataclasses.asdict(preset_config(name)))


def model_group(
    path: str = "",
    preset: str = "tiny",
    tokenizer: str = "",
    dtype: str = "bfloat16",
    param_dtype: str = "",
    seed: int = 0,
    attention_impl: str = "",
    chat_format: str = "",
) -> ml_collections.ConfigDict:
    """The ``model`` group of a CLI config. Empty ``path`` -> random init of ``preset``; empty ``tokenizer`` ->
    the tokenizer found with the weights (HF dir or GGUF). ``path``/``tokenizer`` may be hub ids
    (``org/name[@revision]``). ``chat_format``: "" (auto: Qwen -> s1's ChatML, other families -> their own chat
    template), "template", "chatml", "qwen2", "smollm2" or a .jinja file (s1jax.tokenizer.chat_format)."""
    return ml_collections.ConfigDict(
        dict(path=path, preset=preset, tokenizer=tokenizer, dtype=dtype, param_dtype=param_dtype, seed=seed,
             attention_impl=attention_impl, chat_format=chat_format)
    )
