"""Uncertainty of eval numbers: standard errors and bootstrap confidence intervals, as pure NumPy functions.

* :func:`mean_stderr` is lm-evaluation-harness's ``mean_stderr``: the sample standard deviation (ddof=1) over
  sqrt(n), so ``exact_match_stderr`` in our ``results_*.json`` means what it means in lm-eval's. For 0/1 scores it
  is sqrt(p (1 - p) / (n - 1)).
* :func:`bootstrap_scaling_ci` resamples *items* (the same resample for every run of a method, since the runs are
  evaluated on the same questions) and recomputes the paper's Scaling metric on each resample.
* :func:`paired_bootstrap_diff` resamples items shared by two runs: the interval of acc(B) - acc(A) that accounts
  for both runs answering the same questions (much tighter than two independent intervals).

Every resampling takes an explicit ``seed`` so a report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["mean_stderr", "percentile_ci", "bootstrap_scaling_ci", "paired_bootstrap_diff", "DEFAULT_BOOTSTRAP",
           "DEFAULT_CONFIDENCE"]

DEFAULT_BOOTSTRAP = 2000
DEFAULT_CONFIDENCE = 0.95


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean, sample std (ddof=1) / sqrt(n); None for fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    x = np.asarray(values, dtype=np.float64)
    return float(x.std(ddof=1) / math.sqrt(n))


def percentile_ci(samples: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """Percentile interval of the finite bootstrap ``samples``; None if there are none."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(s, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _scaling_rows(acc: np.ndarray, tok: np.ndarray, tokens_per_unit: float) -> np.ndarray:
    """The Scaling metric per row: ``acc``, ``tok`` are [draws, runs]; pairs with equal compute are skipped."""
    i, j = np.triu_indices(acc.shape[1], k=1)
    da = acc[:, j] - acc[:, i]  # [draws, pairs]
    dt = (tok[:, j] - tok[:, i]) / tokens_per_unit
    valid = dt != 0
    slopes = np.where(valid, da / np.where(valid, dt, 1.0), 0.0)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, slopes.sum(axis=1) / np.maximum(count, 1), np.nan)


def bootstrap_scaling_ci(correct: np.ndarray, tokens: np.ndarray, *, tokens_per_unit: float = 1000.0,
                         iters: int = DEFAULT_BOOTSTRAP, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
                         ) -> tuple[float, float] | None:
    """Bootstrap interval of Scaling (pp per ``tokens_per_unit`` thinking tokens).

    ``correct`` and ``tokens`` are [items, runs] (0/1 and thinking tokens of each item in each run). Each draw
    resamples items with replacement, recomputes every run's accuracy (%) and mean thinking tokens, then Scaling
    over the runs' (compute, accuracy) points. None with fewer than two runs or two items."""
    c = np.asarray(correct, dtype=np.float64)
    t = np.asarray(tokens, dtype=np.float64)
    if c.ndim != 2 or c.shape != t.shape:
        raise ValueError(f"correct {c.shape} and tokens {t.shape} must both be [items, runs]")
    n, runs = c.shape
    if runs < 2 or n < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(iters, n))  # [draws, items]
    acc = 100.0 * c[idx].mean(axis=1)  # [draws, runs]
    tok = t[idx].mean(axis=1)
    return percentile_ci(_scaling_rows(acc, tok, tokens_per_unit), confidence)


def paired_bootstrap_diff(a: Sequence[float], b: Sequence[float], *, iters: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                          confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, tuple[float, float] | None]:
    """``(mean(b) - mean(a), its paired bootstrap interval)`` for per-item scores of the same items (in %, if
    the scores are 0/100, else in the scores' unit). The interval is None for fewer than two items."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        return float("nan"), None
    diff = y - x
    if x.size < 2:
        return float(diff.mean()), None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(iters, x.size))
    return float(diff.mean()), percentile_ci(diff[idx].mean(axis=1), confidence)
