"""Tiny random Hugging Face models (built with transformers, saved with save_pretrained) and HF reference logits.

Imported by the weight/parity tests; ``torch`` and ``transformers`` are imported lazily so collecting other tests
stays cheap.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

VOCAB = 256


def tiny_hf_config(family: str = "qwen2", *, tied: bool = False, layers: int = 2, **overrides: Any) -> Any:
    """A small transformers config: GQA (4 query / 2 KV heads), head_dim 16, hidden 64."""
    import transformers

    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if family == "qwen2":
        common.update(rope_theta=10000.0, use_sliding_window=False)
        common.update(overrides)
        return transformers.Qwen2Config(**common)
    if family == "llama":
        common.update(rope_theta=50000.0, attention_bias=False, mlp_bias=False)
        common.update(overrides)
        return transformers.LlamaConfig(**common)
    raise ValueError(family)


def build_hf_model(config: Any, seed: int = 0, bias_scale: float = 0.05) -> Any:
    """Random fp32 model; biases get non-zero values so a QKV-bias mapping error cannot hide behind zeros."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, bias_scale)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)  # non-trivial RMSNorm scales
    return model.eval()


def save_hf_model(model: Any, directory: pathlib.Path | str, **kwargs: Any) -> pathlib.Path:
    directory = pathlib.Path(directory)
    model.save_pretrained(directory, safe_serialization=True, **kwargs)
    return directory


def make_tiny_hf_dir(directory: pathlib.Path | str, family: str = "qwen2", *, tied: bool = False, seed: int = 0, **overrides: Any) -> tuple[pathlib.Path, Any]:
    model = build_hf_model(tiny_hf_config(family, tied=tied, **overrides), seed=seed)
    return save_hf_model(model, directory), model


def left_padded_batch(lengths: list[int], seq: int | None = None, vocab: int = VOCAB, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ids (pad id 0) left-padded to ``seq``; mask 1 on real tokens."""
    rng = np.random.default_rng(seed)
    seq = seq or max(lengths)
    ids = np.zeros((len(lengths), seq), np.int32)
    mask = np.zeros((len(lengths), seq), np.int32)
    for i, n in enumerate(lengths):
        ids[i, seq - n :] = rng.integers(3, vocab, size=n)
        mask[i, seq - n :] = 1
    return ids, mask


def hf_logits(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """HF fp32 logits of a left-padded batch with positions counting real tokens only."""
    import torch

    ids_t = torch.tensor(np.asarray(ids), dtype=torch.long)
    mask_t = torch.tensor(np.asarray(mask), dtype=torch.long)
    positions = torch.clamp(torch.cumsum(mask_t, dim=-1) - 1, min=0)
    with torch.no_grad():
        out = model(input_ids=ids_t, attention_mask=mask_t, position_ids=positions)
    return out.logits.float().numpy()
