"""Training metrics: FLOPs per token, peak FLOP/s by device kind, MFU. (Writing them: ``metrics_writer``.)

FLOPs per trained token (forward + backward, rematerialisation not counted, as in the PaLM MFU definition):
``6 * N_matmul + 6 * L * T * heads * head_dim`` where ``N_matmul`` is the parameter count without the input
embedding gather (a tied embedding counts once, as the LM head) and the second term is causal attention
(``QK^T`` and ``AV``: ``2 * 2 * T * h * d`` forward per token per layer, halved for causality, times 3 for fwd+bwd).
MFU is computed over every processed position (padding included: the compute is spent), tokens/s over real tokens.
"""

from __future__ import annotations

from s1jax.model.config import ModelConfig
from s1jax.train.metrics_writer import MetricsWriter  # re-exported: its home before the writer got its own module

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
