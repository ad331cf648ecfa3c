"""Control / Scaling / Performance on hand-computed curves, and majority voting."""

from __future__ import annotations

import pytest

from s1jax.eval.metrics import (accuracy, control, majority_vote, majority_vote_accuracy, performance,
                                scaling)


def test_accuracy_percent():
    assert accuracy([True, False, True, True]) == 75.0
    assert accuracy([]) == 0.0


def test_control_per_run_and_min():
    # budgets 100/200/300; the second run overshoots -> 2/3
    assert control([100, 250, 300], [100, 200, 300]) == pytest.approx(2 / 3)
    assert control([50, 150], [None, 100]) == 0.5  # None = unconstrained
    assert control([50, 150], [100, 200], min_tokens=[60, 100]) == 0.5  # first run is below its minimum
    with pytest.raises(ValueError):
        control([1, 2], [3])


def test_scaling_hand_computed():
    # points (tokens, acc%): slopes 0->1: 10/1000, 0->2: 20/3000, 1->2: 10/2000
    pts = [(1000, 20.0), (2000, 30.0), (4000, 40.0)]
    per_token = (10 / 1000 + 20 / 3000 + 10 / 2000) / 3
    assert scaling(pts) == pytest.approx(per_token)
    assert scaling(pts, tokens_per_unit=1000) == pytest.approx(per_token * 1000)  # 7.2222
    assert scaling(list(reversed(pts))) == pytest.approx(per_token)  # order does not matter


def test_scaling_negative_flat_and_degenerate():
    assert scaling([(1000, 40.0), (3000, 20.0)], tokens_per_unit=1000) == pytest.approx(-10.0)
    assert scaling([(1000, 30.0), (2000, 30.0), (3000, 30.0)]) == 0.0
    assert scaling([(1000, 30.0)]) is None
    # equal compute has no slope: only the two pairs with distinct x count: (10/1 + 10/1)/2
    assert scaling([(1000, 20.0), (1000, 25.0), (2000, 30.0)], tokens_per_unit=1000) == pytest.approx((10 + 5) / 2)


def test_performance():
    assert performance([36.7, 56.7, 50.0]) == 56.7
    assert performance([]) is None


def test_majority_vote_normalises_and_breaks_ties_first_seen():
    assert majority_vote(["033", "33", "12", None], "aime") == "033"
    assert majority_vote(["12", "7", "7", "12"], "aime") == "12"  # tie -> first seen
    assert majority_vote([r"\dfrac{1}{2}", r"\frac{1}{2}", "3"], "math") == r"\dfrac{1}{2}"
    assert majority_vote(["(b)", "B", "A"], "gpqa") == "(b)"
    assert majority_vote([None, None], "math") is None


def test_majority_vote_accuracy_with_n():
    samples = [["1", "2", "2"], ["5", "5", "9"], [None, "7", "8"]]
    refs = ["2", "5", "8"]
    # all 3 votes: item0 -> 2 (right), item1 -> 5 (right), item2 -> 7 (tie, first seen; wrong)
    assert majority_vote_accuracy(samples, refs, "aime") == pytest.approx(200 / 3)
    # first vote only: 1 (wrong), 5 (right), None (wrong)
    assert majority_vote_accuracy(samples, refs, "aime", n=1) == pytest.approx(100 / 3)
