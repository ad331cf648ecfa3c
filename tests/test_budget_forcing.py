"""Budget forcing: the jitted engine against a deliberately simple reference written the way the s1 evaluation code
works (one vLLM-style generate call per thinking segment, full forward pass per token, strings appended between
calls), with greedy decoding on a tiny random model that emits the stop token now and then."""

from __future__ import annotations

import math

import numpy as np
import pytest

import s1jax
from gen_fixtures import model_fixture, QUESTIONS, tok_fixture  # noqa: F401 - model_fixture, tok_fixture: the "model", "tok" fixtures


def _greedy(model, tok, ctx: list[int], banned: set[int]) -> int:
    """Argmax of the next-token logits from a full forward pass (left-padded to a fixed width: one compile)."""
    width = 256
    assert len(ctx) <= width
    ids = np.zeros((1, width), np.int32)
    mask = np.zeros((1, width), np.int32)
    ids[0, width - len(ctx):] = ctx
    mask[0, width - len(ctx):] = 1
    logits = np.array(s1jax.forward(model, ids, mask)[0, -1])
    logits[tok.vocab_size:] = -np.inf
    for t in banned:
        logits[t] = -np.inf
    return int(np.argmax(logits))


def reference(model, tok, prompt: str, b: s1jax.Budget) -> dict:
    """s1 budget forcing, token level, as the lm-evaluation-harness / README loop does it."""
    enc = tok.encode
    eos = [[e] for e in tok.eos_token_ids]
    answer_stops = ([enc(b.answer_stop)] if b.answer_stop else []) + eos
    think_stops = [enc(b.stop_thinking)] + answer_stops
    singles = {s[0] for s in think_stops if len(s) == 1}
    ignore_ids = enc(b.ignore_str) if b.ignore_str else []
    cap = math.inf if b.max_thinking_tokens is None else b.max_thinking_tokens
    ctx = enc(prompt)
    thinking: list[int] = []
    ignored, min_tokens, hit_max = 0, 0, False
    while True:  # one generate call per thinking segment: until a stop or the remaining budget
        gen: list[int] = []
        stopped = None
        while len(thinking) + len(gen) < cap:
            gen.append(_greedy(model, tok, ctx + gen, singles if len(gen) < min_tokens else set()))
            stopped = next((s for s in think_stops if gen[-len(s):] == s), None)
            if stopped:
                break
        if stopped is None:  # finish_reason == "length"
            thinking += gen
            ctx += gen
            ends_nl = bool(thinking) and tok.decode([thinking[-1]]).endswith("\n")
            forced = ([] if ends_nl else enc("\n")) + enc(b.thinking_end + "\n" + b.final_answer_str)
            hit_max = True
            break
        gen = gen[: len(gen) - len(stopped)]  # drop the stop
        thinking += gen
        ctx += gen
        if ignored < b.num_ignore or len(thinking) < b.min_thinking_tokens:
            ignored += 1
            room = cap - len(thinking)
            wait = ignore_ids[: int(min(room, len(ignore_ids)))]
            thinking += wait
            ctx += wait
            min_tokens = 1
            continue
        forced = enc(b.thinking_end)
        break
    ctx += forced
    answer: list[int] = []
    while len(answer) < b.max_answer_tokens:
        answer.append(_greedy(model, tok, ctx + answer, set()))
        if any(answer[-len(s):] == s for s in answer_stops):
            break
    return dict(token_ids=thinking + forced + answer, thinking_tokens=len(thinking), num_ignored=ignored,
                hit_max_budget=hit_max)


def _prompts(tok, questions):
    return [tok.chat.render_prefix(q) + "<|im_start|>think" for q in questions]


def _check_same(model, tok, questions, budgets):
    results = s1jax.generate(model, tok, questions, budget=budgets, progress=False)
    budgets = budgets if isinstance(budgets, list) else [budgets] * len(questions)
    for q, p, b, r in zip(questions, _prompts(tok, questions), budgets, results):
        ref = reference(model, tok, p, b)
        assert r.prompt == p
        assert r.token_ids == ref["token_ids"], (q, b)
        assert r.thinking_tokens == ref["thinking_tokens"]
        assert r.num_ignored == ref["num_ignored"]
        assert r.hit_max_budget == ref["hit_max_budget"]
    return results


COMBOS = [
    s1jax.Budget(max_thinking_tokens=24, num_ignore=0, max_answer_tokens=12),
    s1jax.Budget(max_thinking_tokens=40, num_ignore=2, ignore_str="Wait", max_answer_tokens=10),
    s1jax.Budget(max_thinking_tokens=30, num_ignore=2, ignore_str="", max_answer_tokens=8),
    s1jax.Budget(max_thinking_tokens=36, min_thinking_tokens=20, ignore_str=" Hmm, let me check", max_answer_tokens=8),
]


@pytest.mark.parametrize("budget", COMBOS, ids=["cap", "ignore2", "ignore-empty", "min-tokens"])
def test_engine_matches_reference(model, tok, budget):
    results = _check_same(model, tok, QUESTIONS[:4], budget)
    assert all(r.thinking_tokens <= budget.max_thinking_tokens for r in results)


def test_stop_token_is_exercised(model, tok):
    """The fixture model must actually try to stop, or the tests above prove little."""
    results = s1jax.generate(model, tok, QUESTIONS, budget=s1jax.Budget(max_thinking_tokens=40, num_ignore=50,
                                                                          max_answer_tokens=2), progress=False)
    assert sum(r.num_ignored for r in results) >= len(QUESTIONS)
    results = s1jax.generate(model, tok, QUESTIONS, budget=s1jax.Budget(max_thinking_tokens=80, max_answer_tokens=2),
                             progress=False)
    assert any(not r.hit_max_budget for r in results), "no row stopped thinking by itself"


def test_rows_with_different_budgets(model, tok):
    budgets = [
        s1jax.Budget(max_thinking_tokens=8, max_answer_tokens=5),
        s1jax.Budget(max_thinking_tokens=30, num_ignore=3, max_answer_tokens=12),
        s1jax.Budget(max_thinking_tokens=0, max_answer_tokens=6),
        s1jax.Budget(max_thinking_tokens=45, num_ignore=1, min_thinking_tokens=12, max_answer_tokens=0),
        s1jax.Budget(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=9),
    ]
    results = _check_same(model, tok, QUESTIONS[:5], budgets)
    assert results[2].thinking_tokens == 0 and results[2].hit_max_budget
    assert results[3].answer_tokens == 0


def test_multi_token_stop_string(model, tok):
    """A stop string of several tokens ("Wait" = 2 tokens here), dropped from the cache when it completes."""
    stop = "Wait"
    assert len(tok.encode(stop)) >= 2
    for b in (
        s1jax.Budget(max_thinking_tokens=40, num_ignore=2, stop_thinking=stop, ignore_str="Let", max_answer_tokens=6),
        s1jax.Budget(max_thinking_tokens=30, num_ignore=1, stop_thinking=stop, ignore_str="", max_answer_tokens=6),
    ):
        results = _check_same(model, tok, QUESTIONS[:4], b)
        assert any(r.num_ignored > 0 for r in results), "the multi-token stop never fired"


def test_control_budget_and_num_ignore(model, tok):
    """Over random prompts and budgets: thinking never exceeds the budget, num_ignore is honoured."""
    rng = np.random.default_rng(0)
    words = "think answer Wait Final the sum of two numbers is 20 Hmm check raspberry 1 2 3".split()
    questions = [" ".join(rng.choice(words, size=rng.integers(1, 8))) for _ in range(24)]
    budgets = [s1jax.Budget(max_thinking_tokens=int(rng.integers(0, 60)), num_ignore=int(rng.integers(0, 4)),
                            max_answer_tokens=4) for _ in questions]
    results = s1jax.generate(model, tok, questions, budget=budgets, batch_size=8, progress=False)
    for b, r in zip(budgets, results):
        assert r.thinking_tokens <= b.max_thinking_tokens
        assert r.num_ignored <= b.num_ignore
        if not r.hit_max_budget:
            assert r.num_ignored == b.num_ignore
        assert r.answer_tokens <= b.max_answer_tokens
    assert sum(r.hit_max_budget for r in results) not in (0, len(results))


def test_sweep_equals_independent_runs(model, tok):
    budgets = [0, 6, 15, 28]
    base = s1jax.Budget(num_ignore=1, max_answer_tokens=7)
    questions = QUESTIONS[:5]
    sweep = s1jax.generate_budget_sweep(model, tok, questions, budgets, budget=base, progress=False)
    assert sorted(sweep) == budgets
    for b in budgets:
        single = s1jax.generate(model, tok, questions, budget=_with_max(base, b), progress=False)
        for q, s, r in zip(questions, sweep[b], single):
            assert s.token_ids == r.token_ids, (q, b)
            assert (s.thinking_tokens, s.num_ignored, s.hit_max_budget) == (r.thinking_tokens, r.num_ignored,
                                                                             r.hit_max_budget)
            assert s.thinking_tokens <= b


def _with_max(b, m):
    import dataclasses

    return dataclasses.replace(b, max_thinking_tokens=m)
