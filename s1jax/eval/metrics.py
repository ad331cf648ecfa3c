"""The s1 paper's test-time-scaling metrics (Section 3.2) and majority voting, as pure functions.

Definitions (s1, Muennighoff et al. 2025, Sec. 3.2), with A the set of evaluation runs of one method (one run per
budget or per prompt condition), a the thinking compute of a run and f(a) its accuracy:

* Control     = (1/|A|) * sum_{a in A} 1[a_min <= a <= a_max]  (s1 only constrains a_max: the budget).
* Scaling     = (1/C(|A|,2)) * sum_{a, b in A, b > a} (f(b) - f(a)) / (b - a): the mean slope of the piece-wise
  linear accuracy-vs-compute curve over all pairs of runs.
* Performance = max_{a in A} f(a).

Units, stated because the paper does not: accuracy is in percentage points (Table 3 reports Performance 56.7, so
f is in %). With a in raw thinking tokens the literal formula gives slopes around 0.005-0.02 for s1-32B, which
cannot be Table 3's "Scaling 15"; the magnitude only matches if a is counted in thousands of tokens. We therefore
report both, never one under the other's name: ``scaling(points)`` (pp per token, the formula verbatim) and
``scaling(points, tokens_per_unit=1000)`` (pp per 1K thinking tokens, the unit to hold against Table 3).

Control in the paper is per run (40% for token-conditional control with |A|=5 means 2 of 5 runs stayed within
their budget on average), so :func:`control` takes one compute value per run; passing one value per sample gives
the stricter per-sample control, which s1jax reports alongside.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence

from s1jax.eval.grading import grade_answer, normalize_answer

__all__ = ["accuracy", "control", "scaling", "performance", "majority_vote", "majority_vote_accuracy"]


def accuracy(correct: Sequence[bool]) -> float:
    """Share of correct answers in percent (0 for no answers)."""
    return 100.0 * sum(bool(c) for c in correct) / len(correct) if correct else 0.0


def control(
    thinking_tokens: Sequence[float],
    budgets: Sequence[float | None],
    min_tokens: Sequence[float | None] | None = None,
) -> float:
    """Share (0..1) of runs whose compute lies within [min, budget]; a None budget or min is unconstrained.

    >>> control([100, 250, 90], [100, 200, 100])
    0.6666666666666666
    """
    if len(thinking_tokens) != len(budgets):
        raise ValueError(f"{len(thinking_tokens)} compute values but {len(budgets)} budgets")
    if not thinking_tokens:
        return 0.0
    mins = list(min_tokens) if min_tokens is not None else [None] * len(budgets)
    ok = 0
    for a, hi, lo in zip(thinking_tokens, budgets, mins):
        ok += (hi is None or a <= hi) and (lo is None or a >= lo)
    return ok / len(thinking_tokens)


def scaling(points: Sequence[tuple[float, float]], tokens_per_unit: float = 1.0) -> float | None:
    """The paper's Scaling: mean of (f(b) - f(a)) / (b - a) over all pairs of runs with b > a.

    ``points`` are (thinking compute in tokens, accuracy in %) per run; compute is divided by ``tokens_per_unit``
    (1000 gives pp per 1K tokens, the unit in which Table 3's numbers have their magnitude). Pairs with equal
    compute have no slope and are left out of the mean. None when fewer than two distinct compute values exist.

    >>> scaling([(1000, 20.0), (2000, 30.0), (4000, 40.0)], tokens_per_unit=1000)  # (10 + 10 + 5) / 3
    8.333333333333334
    """
    slopes = []
    for (a, fa), (b, fb) in itertools.combinations(points, 2):
        if a == b:
            continue
        if b < a:
            (a, fa), (b, fb) = (b, fb), (a, fa)
        slopes.append((fb - fa) / ((b - a) / tokens_per_unit))
    return sum(slopes) / len(slopes) if slopes else None


def performance(accuracies: Sequence[float]) -> float | None:
    """Best accuracy over the runs (None for no runs)."""
    return max(accuracies) if accuracies else None


def majority_vote(answers: Sequence[str | None], kind: str) -> str | None:
    """The most frequent answer after the grader's normalisation; ties go to the answer seen first.

    Returns one of the raw answers from the winning class (so it can be graded like a single sample), or None if
    no sample produced a usable answer. Normalisation is the grader's cheap canonical form, so "033" and "33"
    (AIME) or "\\dfrac12"-style spacing variants vote together; answers that are equal only up to algebra
    (0.5 vs 1/2) stay apart: merging them would need O(n^2) symbolic comparisons per item.
    """
    keyed = [(normalize_answer(a, kind), a) for a in answers]
    keyed = [(k, a) for k, a in keyed if k is not None]
    if not keyed:
        return None
    counts = Counter(k for k, _ in keyed)
    best = max(counts.values())
    for k, a in keyed:  # first-seen among the tied
        if counts[k] == best:
            return a
    return None  # unreachable


def majority_vote_accuracy(
    samples: Sequence[Sequence[str | None]],
    references: Sequence[str],
    kind: str,
    n: int | None = None,
    timeout_s: float = 5.0,
) -> float:
    """Accuracy (%) of majority voting over the first ``n`` extracted answers of each item (all if None)."""
    if len(samples) != len(references):
        raise ValueError(f"{len(samples)} items of samples but {len(references)} references")
    correct = []
    for answers, ref in zip(samples, references):
        subset = list(answers)[: n if n is not None else len(answers)]
        winner = majority_vote(subset, kind)
        correct.append(winner is not None and grade_answer(winner, ref, kind, timeout_s).correct)
    return accuracy(correct)


def finite_or_none(x: float | None) -> float | None:
    """JSON-safe number: NaN / inf become None."""
    return x if x is not None and math.isfinite(x) else None
