"""Continuous batching: more questions than row slots, mixed budgets, slots refilled mid-run, against the reference
loop of test_budget_forcing (greedy, token-exact); the budget sweep on top; per-question sampling keys; compile
once; bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import s1jax
from gen_fixtures import model_fixture, QUESTIONS, tok_fixture  # noqa: F401 - model_fixture, tok_fixture: the "model", "tok" fixtures
from s1jax.inference import budget as bf
from s1jax.inference.engine import get_engine
from s1jax.inference.generate import generate_with_stats
from test_budget_forcing import reference

MIXED = [
    s1jax.Budget(max_thinking_tokens=8, max_answer_tokens=5),
    s1jax.Budget(max_thinking_tokens=40, num_ignore=2, max_answer_tokens=10),
    s1jax.Budget(max_thinking_tokens=0, max_answer_tokens=6),
    s1jax.Budget(max_thinking_tokens=36, min_thinking_tokens=20, max_answer_tokens=8),
    s1jax.Budget(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=0),
    s1jax.Budget(max_thinking_tokens=30, num_ignore=3, max_answer_tokens=12),
]


@pytest.fixture(scope="module")
def two_slot_run(model, tok):
    """Six questions with mixed budgets through two row slots: four refills happen mid-run."""
    return generate_with_stats(model, tok, QUESTIONS, budget=MIXED, batch_size=2, progress=False, min_slots=1)


def test_refilled_rows_match_reference(model, tok, two_slot_run):
    results, stats = two_slot_run
    assert stats.slots == 2 and stats.refills >= 3  # rows were refilled while others were decoding
    for q, b, r in zip(QUESTIONS, MIXED, results):
        ref = reference(model, tok, r.prompt, b)
        assert r.token_ids == ref["token_ids"], (q, b)
        assert (r.thinking_tokens, r.num_ignored, r.hit_max_budget) == (
            ref["thinking_tokens"], ref["num_ignored"], ref["hit_max_budget"])
    assert stats.kept_tokens == sum(len(r.token_ids) for r in results)
    assert 0 < stats.useful_share <= 1
    # the tail ran in one slot once no question was waiting: fewer row-steps than steps x slots
    assert stats.shrinks == 1 and stats.row_steps < stats.decode_steps * stats.slots


def test_slot_count_does_not_change_results(model, tok, two_slot_run):
    four = s1jax.generate(model, tok, QUESTIONS, budget=MIXED, batch_size=4, progress=False)
    static, _ = generate_with_stats(model, tok, QUESTIONS, budget=MIXED, batch_size=2, progress=False,
                                    schedule="static")
    full, stats = generate_with_stats(model, tok, QUESTIONS, budget=MIXED, batch_size=2, progress=False,
                                      shrink=False)
    assert stats.shrinks == 0 and stats.row_steps == stats.decode_steps * stats.slots
    for a, b, c, d in zip(two_slot_run[0], four, static, full):
        assert a.to_dict() == b.to_dict() == c.to_dict() == d.to_dict()


def test_compiled_once_across_refills(model, tok, two_slot_run):
    """One decode program for the whole run, and a second call with other questions and budgets adds none."""
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl,
                        bf.ForcingSpec.build(MIXED[0], tok), s1jax.Sampling())
    decode, refill = engine.decode._cache_size(), engine.refill._cache_size()
    assert decode >= 1
    other = [dataclasses.replace(b, max_thinking_tokens=b.max_thinking_tokens + 1) for b in MIXED[::-1]]
    s1jax.generate(model, tok, QUESTIONS[::-1], budget=other, batch_size=2, progress=False)
    assert engine.decode._cache_size() == decode
    assert engine.refill._cache_size() == refill  # one refill program per prompt bucket


def test_sweep_on_continuous_batching(model, tok, monkeypatch):
    """Branches run in a row's slot before it is refilled, several per slot, alongside other questions' rows; with
    eight slots the batch shrinks to four as rows finish, carrying the sweep's snapshots along."""
    from s1jax.inference import scheduler

    budgets = [0, 6, 28]
    base = s1jax.Budget(num_ignore=1, max_answer_tokens=7)
    sweep = s1jax.generate_budget_sweep(model, tok, QUESTIONS, budgets, budget=base, batch_size=2, progress=False)
    stats: list[scheduler.RunStats] = []
    run = scheduler.run
    monkeypatch.setattr(scheduler, "run", lambda *a, **kw: stats.append(run(*a, **kw)) or stats[-1])
    monkeypatch.setattr(scheduler, "shrink_floor", lambda backend=None: 4)  # the CPU floor is 16 rows
    wide = s1jax.generate_budget_sweep(model, tok, QUESTIONS, budgets, budget=base, batch_size=8, progress=False)
    assert stats[0].slots == 8 and stats[0].shrinks == 1
    assert all([w.to_dict() for w in wide[b]] == [s.to_dict() for s in sweep[b]] for b in budgets)
    for b in budgets:
        single = s1jax.generate(model, tok, QUESTIONS, budget=dataclasses.replace(base, max_thinking_tokens=b),
                                batch_size=2, progress=False)
        assert [s.token_ids for s in sweep[b]] == [r.token_ids for r in single], b
        assert [(s.thinking_tokens, s.num_ignored, s.hit_max_budget) for s in sweep[b]] == [
            (r.thinking_tokens, r.num_ignored, r.hit_max_budget) for r in single]


def test_sampled_tokens_do_not_depend_on_the_slot(model, tok):
    # the budget and sampling structure of test_sampling: the same compiled programs in one session
    budget = s1jax.Budget(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=6)
    s = s1jax.Sampling(temperature=1.0, top_p=0.9, seed=11)
    runs = [s1jax.generate(model, tok, QUESTIONS, budget=budget, sampling=s, batch_size=n, progress=False)
            for n in (1, 4)]
    ids = [[r.token_ids for r in run] for run in runs]
    assert ids[0] == ids[1]
    other_seed = s1jax.generate(model, tok, QUESTIONS, budget=budget, sampling=dataclasses.replace(s, seed=12),
                                batch_size=4, progress=False)
    assert [r.token_ids for r in other_seed] != ids[0]


def test_bad_input_names_the_numbers(model, tok):
    with pytest.raises(ValueError, match=r"2 row slots x \d+ cache slots need .* GiB"):
        s1jax.generate(model, tok, QUESTIONS[:2], max_cache_len=1 << 40, progress=False)
    short = dataclasses.replace(model, config=dataclasses.replace(model.config, max_position_embeddings=16))
    with pytest.raises(ValueError, match=r"a prompt has \d+ tokens but the model's context is 16"):
        s1jax.generate(short, tok, QUESTIONS[:1], budget=s1jax.Budget(max_thinking_tokens=4), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        s1jax.generate(model, tok, QUESTIONS[:1], batch_size=-3, progress=False)
    with pytest.raises(ValueError, match="stream=7"):
        s1jax.generate(model, tok, QUESTIONS[:2], stream=7, progress=False)
