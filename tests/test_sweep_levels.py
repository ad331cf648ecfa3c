"""Shared-prefix sweeps over (max_thinking_tokens, num_ignore) levels: every level equals its own run.

The budget sweep branches where a level reaches its cap; the "Wait" sweep branches where a level accepts a stop that
the trunk (the most ignored stops) ignores. Greedy decoding on the tiny model that emits the stop token every few
dozen tokens (gen_fixtures), compared token for token with one ``generate`` call holding every (level, question)
pair as a per-question budget.
"""

from __future__ import annotations

import dataclasses

import pytest

import s1jax
from gen_fixtures import QUESTIONS, load_tok, tiny_model

# the budget sweep's levels (num_ignore 0 at several caps) and the Wait sweep's (num_ignore 1, 2 at one cap), in
# one sweep: the trunk is (40, 2)
LEVELS = [(0, 0), (6, 0), (15, 0), (40, 0), (40, 1), (15, 2), (40, 2)]


@pytest.fixture(scope="module")
def tok():
    return load_tok()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _independent(model, tok, base: s1jax.Budget, levels, questions):
    """One generate call over every (level, question) pair, each with its own budget -> {level: [result]}."""
    pairs = [(lv, q) for lv in levels for q in questions]
    budgets = [dataclasses.replace(base, max_thinking_tokens=lv[0], num_ignore=lv[1]) for lv, _ in pairs]
    results = s1jax.generate(model, tok, [q for _, q in pairs], budget=budgets, batch_size=8, progress=False)
    return {lv: results[i * len(questions):(i + 1) * len(questions)] for i, lv in enumerate(levels)}


def _fields(r):
    return (r.token_ids, r.thinking_tokens, r.num_ignored, r.hit_max_budget, r.answer, r.finish_reason)


def _check(sweep, single, levels, questions):
    assert sorted(sweep) == sorted(levels)
    for lv in levels:
        for q, s, r in zip(questions, sweep[lv], single[lv]):
            assert _fields(s) == _fields(r), (lv, q)
            assert s.thinking_tokens <= lv[0] and s.num_ignored <= lv[1], (lv, q)


def test_budget_and_wait_levels_equal_independent_runs(model, tok):
    base = s1jax.Budget(max_answer_tokens=5)
    sweep = s1jax.generate_sweep(model, tok, QUESTIONS, LEVELS, budget=base, batch_size=4, progress=False)
    single = _independent(model, tok, base, LEVELS, QUESTIONS)
    _check(sweep, single, LEVELS, QUESTIONS)
    # the check is not vacuous: some questions stop by themselves at num_ignore 0 and think on with a Wait at 1
    # (a branch at an accepted stop), and the Wait levels ignore stops
    at = {lv: [r.thinking_tokens for r in sweep[lv]] for lv in LEVELS}
    assert any(a < b for a, b in zip(at[(40, 0)], at[(40, 1)]))
    assert max(r.num_ignored for r in sweep[(40, 2)]) == 2
    assert any(not r.hit_max_budget for r in sweep[(40, 0)]) and any(r.hit_max_budget for r in sweep[(6, 0)])


def test_levels_without_the_trunk_and_with_an_empty_ignore_str(model, tok):
    """With an empty ignore_str an ignored stop re-feeds the token before it (the trunk drops one more cached
    token than the level that accepts the stop: the branch must see it again). The trunk level (28, 2) is not
    asked for: it is computed, not returned."""
    levels = [(28, 0), (28, 1), (10, 2)]
    base = s1jax.Budget(ignore_str="", max_answer_tokens=4)
    sweep = s1jax.generate_sweep(model, tok, QUESTIONS, levels, budget=base, batch_size=2, progress=False)
    single = _independent(model, tok, base, levels, QUESTIONS)
    _check(sweep, single, levels, QUESTIONS)
    assert any(a.token_ids != b.token_ids for a, b in zip(sweep[(28, 0)], sweep[(28, 1)]))


def test_bad_levels_are_refused_before_any_work(model, tok):
    for levels, match in (([], "no levels"), ([(10,)], r"\(max_thinking_tokens, num_ignore\)"),
                          ([(10, -1)], "num_ignore must be an int >= 0"), ([(1.5, 0)], "max_thinking_tokens")):
        with pytest.raises(ValueError, match=match):
            s1jax.generate_sweep(model, tok, QUESTIONS[:1], levels, progress=False)
