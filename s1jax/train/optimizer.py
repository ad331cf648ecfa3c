"""The s1 optimizer: AdamW (b1 0.9, b2 0.95, eps 1e-8, wd 1e-4), lr 1e-5 with 5% linear warm-up from 0 then cosine
to 0, optional global-norm gradient clipping.

Matches what s1's ``train/sft.py`` gets from the Hugging Face Trainer:

- schedule: ``get_cosine_schedule_with_warmup`` with ``warmup_steps = ceil(warmup_ratio * total_steps)``; the update
  at 0-based step ``s`` uses ``lr(s)`` (so the very first update has lr 0), exactly as optax counts.
- clipping: s1's command line does not set ``max_grad_norm``, so the Trainer default 1.0 applied; ``grad_clip = 1.0``
  is our default, ``0`` turns clipping off.
- weight decay: decoupled and scaled by lr (``p -= lr * wd * p``), the same convention in optax and
  ``torch.optim.AdamW``. The Trainer exempts biases (and LayerNorm modules) from decay;
  ``decay_bias_and_norm=False`` (default) exempts biases and RMSNorm scales (decays kernels and embeddings).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import optax

__all__ = ["warmup_steps_for", "make_schedule", "make_optimizer", "decay_mask"]


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """HF ``TrainingArguments.get_warmup_steps``: ``ceil(ratio * total)``."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return int(math.ceil(warmup_ratio * total_steps))


def make_schedule(lr: float, total_steps: int, warmup_ratio: float = 0.05, schedule: str = "cosine") -> optax.Schedule:
    """Linear warm-up from 0 to ``lr`` over ``ceil(warmup_ratio * total_steps)`` steps, then cosine (or linear, or
    constant) to 0 at ``total_steps``."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup = warmup_steps_for(total_steps, warmup_ratio)
    if schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1), end_value=0.0)
    if schedule == "linear":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warmup), optax.linear_schedule(lr, 0.0, max(total_steps - warmup, 1))],
            [warmup],
        )
    if schedule == "constant":
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
    raise ValueError(f"unknown lr schedule {schedule!r}; choose cosine, linear or constant")


def decay_mask(params: Any) -> Any:
    """True for parameters that get weight decay: kernels and embeddings, not biases or norm scales.

    Decided by the leaf name, not the rank: scanned layers stack biases to ``[layers, heads, head_dim]``."""

    def decays(path: tuple, _: Any) -> bool:
        last = path[-1]
        name = getattr(last, "key", getattr(last, "name", str(last)))
        return name in ("kernel", "embedding")

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(cfg: Any, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """From the ``train`` config group: (optax transformation, lr schedule)."""
    schedule = make_schedule(float(cfg.lr), total_steps, float(cfg.warmup_ratio), str(cfg.get("lr_schedule", "cosine")))
    decay_all = bool(cfg.get("decay_bias_and_norm", False))
    adamw = optax.adamw(
        schedule,
        b1=float(cfg.b1),
        b2=float(cfg.b2),
        eps=float(cfg.eps),
        weight_decay=float(cfg.weight_decay),
        mask=None if decay_all else decay_mask,
    )
    clip = float(cfg.get("grad_clip", 0.0) or 0.0)
    if clip < 0:
        raise ValueError(f"grad_clip must be >= 0 (0 = off), got {clip}")
    tx = optax.chain(optax.clip_by_global_norm(clip), adamw) if clip > 0 else adamw
    return tx, schedule
