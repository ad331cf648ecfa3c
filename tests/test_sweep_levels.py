"""Shared-prefix sweeps over (max_thinking_tokens, num_ignore) levels: every level equals its own run.

The budget sweep branches where a level reaches its cap; the "Wait" sweep branches where a level accepts a stop that
the trunk (the most ignored stops) ignores. Greedy decoding on the tiny model that emits the stop token every few
dozen tokens (gen_fixtures), compared token for token with one ``generate`` call holding every (level, question)
pair as a per-question budget.
"""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

import s1jax
from gen_fixtures import model_fixture, QUESTIONS, tok_fixture  # noqa: F401 - model_fixture, tok_fixture: the "model", "tok" fixtures

# the budget sweep's levels (num_ignore 0 at several caps) and the Wait sweep's (num_ignore 1, 2 at one cap), in
# one sweep: the trunk is (40, 2)
LEVELS = [(0, 0), (6, 0), (15, 0), (40, 0), (40, 1), (15, 2), (40, 2)]


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
    # snapshot slots are padded to 8 levels: a sweep with another number of branch levels (here 1) and the same
    # trunk runs the programs compiled above
    from s1jax.inference import budget as bf
    from s1jax.inference.engine import get_engine
    from s1jax.inference.sweep import make_recorder

    spec = bf.ForcingSpec.build(base, tok)
    engine = get_engine(model.config, "float32", model.attention_impl, spec, s1jax.Sampling(), make_recorder(spec))
    compiled = (engine.decode._cache_size(), engine.branch._cache_size(), engine.refill._cache_size())
    again = s1jax.generate_budget_sweep(model, tok, QUESTIONS, [6, 40], budget=dataclasses.replace(base, num_ignore=2),
                                        batch_size=4, progress=False)
    assert (engine.decode._cache_size(), engine.branch._cache_size(), engine.refill._cache_size()) == compiled
    assert [_fields(r) for r in again[40]] == [_fields(r) for r in sweep[(40, 2)]]


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


def test_sampled_levels_draw_what_their_own_runs_draw(model, tok):
    """Draws are keyed per question and counted per row, so a branch continues the trunk's draws: with sampling too
    every level equals its own ``generate`` call (same question order, so the same keys)."""
    levels = [(8, 0), (20, 0), (20, 1)]
    s = s1jax.Sampling(temperature=1.0, top_p=0.9, seed=11)  # test_engine_continuous' sampling: shared programs
    base = s1jax.Budget(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=6)
    sweep = s1jax.generate_sweep(model, tok, QUESTIONS, levels, budget=base, sampling=s, batch_size=4,
                                 progress=False)
    for lv in levels:
        own = s1jax.generate(model, tok, QUESTIONS, budget=dataclasses.replace(base, max_thinking_tokens=lv[0],
                                                                                 num_ignore=lv[1]),
                             sampling=s, batch_size=4, progress=False)
        assert [_fields(r) for r in sweep[lv]] == [_fields(r) for r in own], lv
    assert len({tuple(r.token_ids) for lv in levels for r in sweep[lv]}) > len(QUESTIONS)  # the levels differ


def test_bad_levels_are_refused_before_any_work(model, tok):
    for levels, match in (([], "no levels"), ([(10,)], r"\(max_thinking_tokens, num_ignore\)"),
                          ([(10, -1)], "num_ignore must be an int >= 0"), ([(1.5, 0)], "max_thinking_tokens")):
        with pytest.raises(ValueError, match=match):
            s1jax.generate_sweep(model, tok, QUESTIONS[:1], levels, progress=False)


# ------------------------------------------------------------------------------ the eval runner over sweep levels


class LevelSweep:
    """A fake ``generate_sweep_fn`` taking (cap, num_ignore) levels: an item thinks ``20 * (i + 1)`` tokens before
    its first stop and 10 more after each Wait; it is right once it thinks 40 tokens or more."""

    takes_levels = True

    def __init__(self, items):
        self.index = {it.prompt_text: i for i, it in enumerate(items)}
        self.answers = {it.prompt_text: it.answer for it in items}
        self.calls: list[list] = []

    def result(self, prompt, cap, ignore):
        natural = 20 * (self.index[prompt] + 1) + 10 * ignore
        tokens = min(cap, natural)
        ans = self.answers[prompt] if tokens >= 40 else "-1"
        return {"thinking": "t " * tokens, "answer": f"\\boxed{{{ans}}}", "thinking_tokens": tokens,
                "num_ignored": ignore, "hit_max_budget": natural > cap}

    def __call__(self, prompts, levels):
        self.calls.append(list(levels))
        out = {}
        for lv in levels:
            cap, ignore = lv if isinstance(lv, tuple) else (lv, 0)
            out[lv] = [self.result(p, cap, ignore) for p in prompts]
        return out


def test_budget_and_wait_points_in_one_runner_call_with_resume(shared_data_dir, tmp_path):
    from s1jax.eval import scaling as sc
    from s1jax.eval.benchmarks import load_benchmark
    from s1jax.eval.report import ResultsWriter

    items = load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"), limit=4)
    fake = LevelSweep(items)
    path = str(tmp_path / "r.jsonl")
    kw = dict(batch_size=2, progress=False, method="bf", num_ignore_method="wait", num_ignore_max_tokens=64)
    recs = sc.run_budget_sweep(items, fake, [16, 64], writer=ResultsWriter(path), num_ignores=[0, 2], **kw)
    # one call per 8 items (4 x batch_size), every budget and Wait point in it (s1jax.generate_sweep runs the
    # levels 64 and (64, 0) once: the base budget has num_ignore 0)
    assert fake.calls == [[16, 64, (64, 0), (64, 2)]]
    got = {(r["method"], r["point"], r["item_id"]): r for r in recs}
    assert len(got) == len(recs) == 4 * 4
    for it in items:
        assert got[("wait", "ignore=0", it.id)]["thinking_tokens"] == got[("bf", "max=64", it.id)]["thinking_tokens"]
        assert got[("wait", "ignore=2", it.id)]["budget"] == 64 and got[("wait", "ignore=2", it.id)]["x"] == 2
    assert [got[("wait", "ignore=2", it.id)]["thinking_tokens"] for it in items] == [40, 60, 64, 64]
    assert [got[("bf", "max=16", it.id)]["correct"] for it in items] == [False] * 4
    assert [got[("wait", "ignore=2", it.id)]["correct"] for it in items] == [True] * 4
    # resume: a new Wait point generates only what is missing, in one call, and keeps the old records
    fake.calls.clear()
    recs = sc.run_budget_sweep(items, fake, [16, 64], writer=ResultsWriter(path), num_ignores=[0, 1, 2], **kw)
    assert fake.calls == [[16, 64, (64, 0), (64, 1), (64, 2)]] and len(recs) == 4 * 5
    fake.calls.clear()
    sc.run_budget_sweep(items, fake, [16, 64], writer=ResultsWriter(path), num_ignores=[0, 1, 2], **kw)
    assert fake.calls == []
    # the Wait sweep alone, and the two ways to ask for it wrongly
    sc.run_budget_sweep(items, fake, [], writer=ResultsWriter(str(tmp_path / "w.jsonl")), num_ignores=[3], **kw)
    assert fake.calls == [[(64, 3)]]
    plain = lambda prompts, budgets: {b: [] for b in budgets}  # noqa: E731 - a sweep fn that takes caps only
    with pytest.raises(ValueError, match="takes \\(max_thinking_tokens, num_ignore\\) levels"):
        sc.run_budget_sweep(items, plain, [16], writer=ResultsWriter(str(tmp_path / "x.jsonl")), num_ignores=[1],
                            **kw)
    with pytest.raises(ValueError, match="num_ignore_max_tokens"):
        sc.run_budget_sweep(items, fake, [16], writer=ResultsWriter(str(tmp_path / "y.jsonl")), num_ignores=[1],
                            **{**kw, "num_ignore_max_tokens": None})


def test_eval_cli_runs_budget_and_wait_points_in_one_sweep(monkeypatch, tmp_path, shared_data_dir):
    """``s1jax eval`` with budget_forcing and num_ignore_sweep: one generate_sweep call holds both methods' levels."""
    from s1jax.cli import eval as cli
    from s1jax.eval.benchmarks import load_benchmark
    from s1jax.eval.report import load_records

    items = load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"), limit=3)
    fake = LevelSweep(items)
    seen = []

    def generate_sweep(m, t, qs, levels, budget, sampling, **kw):
        seen.append((list(levels), budget.num_ignore))
        return fake(qs, [tuple(lv) for lv in levels])

    monkeypatch.setitem(vars(s1jax), "load_model", lambda path, **kw: "model")
    monkeypatch.setitem(vars(s1jax), "load_tokenizer", lambda path, **kw: "tok")
    monkeypatch.setitem(vars(s1jax), "generate_sweep", generate_sweep)
    (tmp_path / "fake").mkdir()
    out = tmp_path / "run"
    argv = ["--config=configs/eval/aime24.py", f"--config.model.path={tmp_path / 'fake'}", "--config.limit=3",
            f"--config.output_dir={out}", "--config.budgets=[16, 64]", "--config.num_ignore_sweep=true",
            "--config.num_ignore=[0, 1, 2]", "--config.num_ignore_max_tokens=64", "--config.progress=false"]
    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
    assert cli.main(argv) == 0
    assert seen == [([(16, 0), (64, 0), (64, 0), (64, 1), (64, 2)], 0)]
    recs = load_records(str(out / "results.jsonl"))
    assert sorted({(r["method"], r["point"]) for r in recs}) == [
        ("budget_forcing", "max=16"), ("budget_forcing", "max=64"),
        ("num_ignore", "ignore=0"), ("num_ignore", "ignore=1"), ("num_ignore", "ignore=2")]
    assert len(recs) == 3 * 5
