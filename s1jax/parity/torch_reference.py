"""The PyTorch side of ``s1jax parity``: a checkpoint loaded by ``transformers``, its logits on a left-padded batch,
and greedy generation segments (prefill + KV-cached decode) for :func:`s1jax.parity.reference.budget_forcing_reference`.

``torch`` and ``transformers`` are test extras: :func:`require_torch` says how to install them, and nothing here is
imported by the rest of s1jax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["require_torch", "torch_device", "load_torch_model", "torch_logits", "torch_segment", "free_memory"]

TOP_K = 64  # reference logits kept per generated token, to classify a divergence as a near-tie


def require_torch() -> None:
    """Raise ImportError with the install line when torch/transformers are missing (checked before any load)."""
    missing = []
    for name in ("torch", "transformers"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"s1jax parity compares against PyTorch and needs {' and '.join(missing)} (test extras): "
                          "pip install 'torch==2.13.0' transformers   (or: pip install -e '.[test]')")


def torch_device(name: str, threads: int = 0) -> str:
    """``"auto"``: CUDA when torch sees a GPU, else CPU. ``threads > 0`` sets torch's CPU thread count."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"torch_device={name!r} but torch sees no CUDA device; use 'cpu' or 'auto'")
    return name


def load_torch_model(path: str, dtype: str, device: str) -> Any:
    """``AutoModelForCausalLM`` in ``dtype`` (eager attention: the textbook softmax(QK^T)V, not a fused kernel)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), attn_implementation="eager"
    )
    return model.to(device).eval()


def torch_logits(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[batch, seq, vocab]`` float32 logits of a left-padded batch; positions count real tokens only (as
    ``s1jax.forward`` does), so padding changes nothing."""
    import torch

    device = next(model.parameters()).device
    ids_t = torch.tensor(np.asarray(ids), dtype=torch.long, device=device)  # [batch, seq]
    mask_t = torch.tensor(np.asarray(mask), dtype=torch.long, device=device)  # [batch, seq]
    positions = torch.clamp(torch.cumsum(mask_t, dim=-1) - 1, min=0)
    with torch.no_grad():
        out = model(input_ids=ids_t, attention_mask=mask_t, position_ids=positions)
    return out.logits.float().cpu().numpy()


def torch_segment(model: Any, vocab_size: int, top_k: int = TOP_K):
    """A :data:`s1jax.parity.reference.Segment`: greedy from the whole context (one prefill, then KV-cached steps),
    argmax over the tokenizer's ids only, ``banned`` ids masked while fewer than ``min_tokens`` are generated."""
    import inspect

    import torch

    device = next(model.parameters()).device
    # transformers >= 5.2x names the KV cache `cache` (argument and output); earlier releases `past_key_values`.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def segment(ctx: list[int], stops: Sequence[Sequence[int]], limit: int, min_tokens: int,
                banned: set[int]) -> tuple[list[int], tuple[int, ...] | None, list[dict[int, float]]]:
        gen: list[int] = []
        tops: list[dict[int, float]] = []
        if limit <= 0:
            return gen, None, tops
        stop_seqs = [tuple(s) for s in stops if s]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ctx], dtype=torch.long, device=device), use_cache=True)
            while True:
                logits = out.logits[0, -1].float()  # [vocab]
                logits[vocab_size:] = -float("inf")
                if len(gen) < min_tokens and banned:
                    logits[sorted(banned)] = -float("inf")
                values, idx = torch.topk(logits, min(top_k, vocab_size))
                nxt = int(idx[0])
                gen.append(nxt)
                tops.append(dict(zip(idx.tolist(), values.tolist())))
                stopped = next((s for s in stop_seqs if tuple(gen[-len(s):]) == s), None)
                if stopped is not None:
                    return gen, stopped, tops
                if len(gen) >= limit:
                    return gen, None, tops
                out = model(input_ids=torch.tensor([[nxt]], dtype=torch.long, device=device),
                            use_cache=True, **{cache_name: getattr(out, cache_name)})

    return segment


def free_memory() -> None:
    """Return freed tensors' memory (call after dropping the model) before the other framework loads its copy: a
    32B model fits on one GPU once, not twice."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
