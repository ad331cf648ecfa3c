"""Training metrics: FLOPs per token, peak FLOP/s by device kind, MFU, and JSONL + TensorBoard writers.

FLOPs per trained token (forward + backward, rematerialisation not counted, as in the PaLM MFU definition):
``6 * N_matmul + 6 * L * T * heads * head_dim`` where ``N_matmul`` is the parameter count without the input
embedding gather (a tied embedding counts once, as the LM head) and the second term is causal attention
(``QK^T`` and ``AV``: ``2 * 2 * T * h * d`` forward per token per layer, halved for causality, times 3 for fwd+bwd).
MFU is computed over every processed position (padding included: the compute is spent), tokens/s over real tokens.
"""

from __future__ import annotations

import json
import os
from typing import Any

from s1jax.model.config import ModelConfig

__all__ = ["flops_per_token", "peak_flops_per_device", "PEAK_FLOPS", "MetricsWriter"]

# Dense bf16 peak FLOP/s per JAX device (one TPU chip / one GPU). Matched by substring of `device_kind`,
# most specific first.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("v6 lite", 918e12),  # Trillium v6e
    ("v6e", 918e12),
    ("v5p", 459e12),
    ("v5 lite", 197e12),  # v5e
    ("v5e", 197e12),
    ("v4", 275e12),
    ("v3", 123e12),
    ("h200", 989e12),
    ("h100 pcie", 756e12),
    ("h100", 989e12),  # SXM
    ("gh200", 989e12),
    ("b200", 2250e12),
    ("a100", 312e12),
    ("l40s", 362e12),
    ("a10g", 125e12),
    ("l4", 121e12),
)


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token at sequence length ``seq_len`` (see module docstring)."""
    n = config.num_params
    if not config.tie_word_embeddings:
        n -= config.vocab_size * config.hidden_size  # the input embedding is a gather, not a matmul
    attention = 6.0 * config.num_layers * seq_len * config.num_heads * config.head_dim
    return 6.0 * n + attention


def peak_flops_per_device(device_kind: str, override: float = 0.0) -> float | None:
    """Peak bf16 FLOP/s of one device, ``override`` if > 0, None when the kind is unknown (e.g. CPU)."""
    if override and override > 0:
        return float(override)
    kind = device_kind.lower()
    for key, value in PEAK_FLOPS:
        if key in kind:
            return value
    return None


class MetricsWriter:
    """Appends one JSON object per step to ``<dir>/metrics.jsonl`` and mirrors scalars to TensorBoard
    (``<dir>/tb``). Inactive (no files) when ``enabled`` is False, e.g. on processes other than 0."""

    def __init__(self, out_dir: str, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self._jsonl = open(self.path, "a", buffering=1)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(out_dir, "tb"))
            except ImportError:  # optional: JSONL is the record of truth
                self._tb = None

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step)}
        record.update({k: _plain(v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"train/{k}", v, int(step))

    def text(self, tag: str, text: str) -> None:
        if self._tb is not None:
            self._tb.add_text(tag, text, 0)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _plain(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if hasattr(value, "shape") and getattr(value, "shape", None) == ():
            return float(value)
    except Exception:  # noqa: BLE001
        pass
    return value
