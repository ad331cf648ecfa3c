"""Tolerances derived from the arithmetic, shared by the numerical tests.

Why this module exists: a tolerance copied from what one machine printed fails on another CPU (FMA or not, vector
width, thread count change the order of float32 reductions). Every tolerance here is a bound computed from the
operation: the unit roundoff of the dtype, the length of the reductions, and, for Adam, how much the optimizer can
amplify a gradient error.

Float32 reductions: summing ``K`` terms in any order has an error of at most ``gamma(K) * sum(|terms|)`` with
``gamma(K) = K * eps / (1 - K * eps)`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.4).
For a result ``y = sum(terms)`` that is not the product of heavy cancellation, ``sum(|terms|)`` is of the order of
``|y|`` and the relative error is bounded by ``gamma(K)``; the tests that use ``rel_tol`` state their ``K``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7: float32 unit roundoff x 2
EPS_BF16 = 2.0**-7  # bfloat16 has 8 significand bits (7 stored)


def gamma(k: int, eps: float = EPS32) -> float:
    """Higham's gamma_k: the relative error bound of a k-term float reduction (any order)."""
    k = max(int(k), 1)
    assert k * eps < 1, "reduction too long for a meaningful bound"
    return k * eps / (1.0 - k * eps)


def rel_tol(*reduction_lengths: int, eps: float = EPS32) -> float:
    """Relative error bound of a computation made of chained reductions of the given lengths.

    Errors of successive stages add to first order (each stage perturbs its inputs relatively by at most gamma of
    its length), so the bound is the sum of the stages' gammas."""
    return float(sum(gamma(k, eps) for k in reduction_lengths))


def adam_param_tolerance(
    ref_params: Sequence[np.ndarray],
    grads_per_step: Sequence[Sequence[np.ndarray]],
    lrs: Sequence[float],
    *,
    b1: float,
    b2: float,
    eps: float,
    grad_rel_err: float,
) -> list[np.ndarray]:
    """Per-element bound on |p_a - p_b| after ``len(lrs)`` AdamW steps of two implementations whose gradients agree
    to within ``grad_rel_err`` of each tensor's largest gradient, in float32.

    Derivation. AdamW moves each element by ``lr_t * (r_t + wd * p)`` with the normalised step
    ``r_t = m_hat_t / (sqrt(v_hat_t) + eps)``. After bias correction ``m_hat_t`` is a weighted mean of the gradients
    ``g_1..g_t`` (weights ``a_s`` summing to 1) and ``sqrt(v_hat_t)`` a weighted root mean square (weights ``c_s``
    summing to 1). A gradient error of at most ``D_t`` per step therefore moves ``m_hat`` by at most ``D_t`` and
    ``sqrt(v_hat)`` by at most ``D_t`` (triangle inequality for a weighted l2 norm), and by Cauchy-Schwarz
    ``|m_hat| <= rho_t sqrt(v_hat)`` with ``rho_t = sqrt(sum a_s^2 / c_s)``. To first order
    ``|delta r_t| <= (1 + rho_t) D_t / (sqrt(v_hat_t) + eps)``; and whatever the error, ``|r_t| <= rho_t`` for both
    runs, so ``|delta r_t| <= 2 rho_t``. Where the gradient is tiny compared with its rounding error (the element's
    direction is then arbitrary) the second bound applies: up to two updates' size, which is what the near-zero-
    gradient elements show between CPUs.

    The gradient error ``D_t`` is ``grad_rel_err`` times the tensor's largest gradient: a per-element bound that
    is relative to the element itself would miss cancellation, which is where the error is largest. Elements whose
    reference gradient is exactly zero (structurally: unused embedding rows) have no rounding error. The update
    arithmetic adds ``4 eps32 (|p| + lr |r|)`` per step (decay, scale, subtract, store).

    ``grads_per_step[t][i]`` is the (clipped) gradient of tensor ``i`` at step ``t`` of the reference run, in float64.
    """
    steps = len(lrs)
    assert len(grads_per_step) == steps
    bound = [np.zeros_like(p, dtype=np.float64) for p in ref_params]
    m = [np.zeros_like(p, dtype=np.float64) for p in ref_params]
    v = [np.zeros_like(p, dtype=np.float64) for p in ref_params]
    for t in range(1, steps + 1):
        # weights of g_s in the bias-corrected moments
        a = np.array([(1 - b1) * b1 ** (t - s) for s in range(1, t + 1)]) / (1 - b1**t)
        c = np.array([(1 - b2) * b2 ** (t - s) for s in range(1, t + 1)]) / (1 - b2**t)
        rho = float(np.sqrt(np.sum(a**2 / c)))
        lr = float(lrs[t - 1])
        for i, g in enumerate(grads_per_step[t - 1]):
            g = np.asarray(g, np.float64)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            # an exactly-zero reference gradient is structural (an embedding row no token uses, a masked position):
            # it is a sum of no terms or of exact zeros in every order, so its rounding error is zero too
            d = np.where(g == 0.0, 0.0, grad_rel_err * float(np.max(np.abs(g))))
            root = np.sqrt(v[i] / (1 - b2**t))
            r = (m[i] / (1 - b1**t)) / (root + eps)
            linear = (1 + rho) * d / (root + eps)
            bound[i] += lr * np.minimum(linear, 2 * rho) + 4 * EPS32 * (np.abs(ref_params[i]) + lr * np.abs(r))
    return bound


def exceedance(a: np.ndarray, b: np.ndarray, bound: np.ndarray) -> float:
    """max |a - b| / bound: <= 1 means within the bound."""
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(np.max(diff / np.maximum(bound, np.finfo(np.float64).tiny)))


def assert_close(got, want, *reductions: int, eps: float = EPS32, scale: float | None = None, err_msg: str = "") -> None:
    """``|got - want| <= rel_tol(*reductions) * scale`` elementwise, ``scale`` defaulting to ``max |want|``.

    For two float computations of the same quantity that differ only in reduction order (sharded vs single
    device, chunked vs plain, cached vs full): each has an error of at most ``rel_tol * scale`` from the exact
    value, so their difference is bounded by twice that; ``reductions`` lists the lengths of the reductions the
    result passes through (stated at each call site). Using the result's own scale (not each element's) keeps the
    bound meaningful for elements near zero, whose relative error is unbounded."""
    want = np.asarray(want, np.float64)
    got = np.asarray(got, np.float64)
    s = float(np.max(np.abs(want))) if scale is None else float(scale)
    atol = 2.0 * rel_tol(*reductions, eps=eps) * max(s, np.finfo(np.float32).tiny)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=err_msg)


def assert_adam_runs_close(got_tree, want_tree, lrs: Sequence[float], *, min_tight_fraction: float = 0.99) -> None:
    """Two float32 runs of the same AdamW steps whose only difference is reduction order (sharded, multi-process),
    when the reference gradients are not at hand (see ``adam_param_tolerance`` for the full bound).

    Every element must be within Adam's worst case, ``sum_t 2 rho lr_t`` (rho = 1 to 4 digits for t <= 3 with
    betas (0.9, 0.95)): an element whose gradient is below its rounding error may legitimately step the other
    way. And all but a ``1 - min_tight_fraction`` share of elements must agree to 1% of one update: those are the
    elements whose gradient is well above its rounding error, where a real bug shows."""
    import jax

    cap = 2.0 * float(np.sum(lrs)) * 1.0001
    tight = 0.01 * float(np.max(lrs))
    n_total, n_tight = 0, 0
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got_tree)[0], jax.tree_util.tree_leaves(want_tree)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        diff = np.abs(a - b)
        slack = 4 * len(lrs) * EPS32 * np.abs(b)  # the update arithmetic's own rounding
        assert np.all(diff <= cap + slack), f"{jax.tree_util.keystr(path)}: {diff.max():.3g} > Adam's cap {cap:.3g}"
        n_total += diff.size
        n_tight += int(np.sum(diff <= tight + slack))
    assert n_tight >= min_tight_fraction * n_total, f"only {n_tight}/{n_total} elements agree to 1% of an update"
