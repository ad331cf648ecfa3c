"""Parity metrics between a reference (transformers) and s1jax: pure NumPy, no framework.

Logits (as MaxText's ``forward_pass_logit_checker`` reports them): max |logit difference| (absolute and relative to the
largest reference |logit|), per-token KL(reference || s1jax) of the next-token distributions (mean and max over the
real tokens), top-1 agreement. Token sequences (greedy budget forcing): agreement over the common length and the first
divergence, classified as a *tie* when the reference's two candidate tokens there are closer than the logit error the
thresholds allow (two correct implementations may break such a tie differently; after that point the sequences
legitimately differ).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LogitStats", "TokenStats", "log_softmax", "logit_stats", "token_stats"]


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log_softmax over the last axis in float64 (the KL of two nearly equal distributions is a small difference of
    large numbers: float32 would bury a 1e-7 KL in rounding)."""
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class LogitStats:
    """Over the real (unpadded) positions of every prompt."""

    tokens: int  # positions compared
    max_abs_diff: float  # max |ours - ref| over positions x vocab
    max_abs_ref: float  # max |ref| (the scale of the relative difference)
    mean_kl: float  # mean over positions of KL(ref || ours)
    max_kl: float
    top1_agreement: float  # fraction of positions whose argmax agrees

    @property
    def max_abs_diff_rel(self) -> float:
        return self.max_abs_diff / max(self.max_abs_ref, 1e-30)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "max_abs_diff_rel": self.max_abs_diff_rel}


def logit_stats(ref: np.ndarray, ours: np.ndarray, mask: np.ndarray | None = None, vocab_size: int | None = None) -> LogitStats:
    """``ref``/``ours``: ``[batch, seq, vocab]`` logits; ``mask`` ``[batch, seq]`` (1: real token). ``vocab_size``
    trims padded vocabulary columns (the model's embedding may be padded beyond the tokenizer)."""
    ref = np.asarray(ref, np.float32)
    ours = np.asarray(ours, np.float32)
    if ref.shape != ours.shape:
        raise ValueError(f"logit shapes differ: reference {ref.shape} vs s1jax {ours.shape}")
    if vocab_size:
        ref, ours = ref[..., :vocab_size], ours[..., :vocab_size]
    real = np.ones(ref.shape[:2], bool) if mask is None else np.asarray(mask).astype(bool)
    r, o = ref[real], ours[real]  # [tokens, vocab]
    lr, lo = log_softmax(r), log_softmax(o)
    kl = np.maximum((np.exp(lr) * (lr - lo)).sum(-1), 0.0)  # [tokens]; tiny negatives are rounding
    return LogitStats(
        tokens=int(r.shape[0]),
        max_abs_diff=float(np.abs(r - o).max()),
        max_abs_ref=float(np.abs(r).max()),
        mean_kl=float(kl.mean()),
        max_kl=float(kl.max()),
        top1_agreement=float((r.argmax(-1) == o.argmax(-1)).mean()),
    )


@dataclasses.dataclass(frozen=True)
class TokenStats:
    """One greedy budget-forced generation, reference vs s1jax."""

    ref_len: int
    ours_len: int
    agreement: float  # equal tokens / max(len) (1.0: identical sequences)
    first_divergence: int | None  # index into the generated tokens; None: identical
    ref_token: int | None  # the tokens at the first divergence
    ours_token: int | None
    ref_gap: float | None  # reference logit(ref_token) - logit(ours_token) there (None: unknown)
    tie: bool  # the divergence is at a near-tie (ref_gap <= the allowed gap)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def token_stats(ref: Sequence[int], ours: Sequence[int], ref_top: Sequence[dict[int, float]] | None = None,
                tie_gap: float = 0.0) -> TokenStats:
    """Compare two token sequences. ``ref_top[i]``: the reference's top logits ``{token: logit}`` at output position
    ``i`` (sampled positions only); a divergence is a tie when s1jax's token is among them within ``tie_gap``."""
    ref, ours = [int(t) for t in ref], [int(t) for t in ours]
    n = min(len(ref), len(ours))
    same = sum(a == b for a, b in zip(ref, ours))
    first = next((i for i in range(n) if ref[i] != ours[i]), None)
    if first is None and len(ref) != len(ours):
        first = n  # one stopped, the other went on
    gap = None
    if first is not None and first < n and ref_top is not None and first < len(ref_top) and ref_top[first]:
        top = ref_top[first]
        if ours[first] in top and ref[first] in top:
            gap = float(top[ref[first]] - top[ours[first]])
    return TokenStats(
        ref_len=len(ref),
        ours_len=len(ours),
        agreement=same / max(len(ref), len(ours), 1),
        first_divergence=first,
        ref_token=ref[first] if first is not None and first < len(ref) else None,
        ours_token=ours[first] if first is not None and first < len(ours) else None,
        ref_gap=gap,
        tie=gap is not None and gap <= tie_gap,
    )
