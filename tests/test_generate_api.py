"""The public generation API: result fields, input validation, chunking/streaming, and the CLI."""

from __future__ import annotations

import json

import pytest

import s1jax
from gen_fixtures import model_fixture, QUESTIONS, tok_fixture, tokenizer_dir  # noqa: F401 - model_fixture, tok_fixture: the "model", "tok" fixtures

BUDGET = s1jax.Budget(max_thinking_tokens=24, num_ignore=1, max_answer_tokens=8)


def test_result_fields_consistent(model, tok):
    results = s1jax.generate(model, tok, QUESTIONS, budget=BUDGET, progress=False)
    assert len(results) == len(QUESTIONS)
    end = tok.encode(BUDGET.thinking_end)
    for q, r in zip(QUESTIONS, results):
        assert r.prompt == tok.chat.render_prefix(q) + BUDGET.thinking_start
        ids = r.token_ids
        assert tok.decode(ids[: r.thinking_tokens]) == r.thinking
        full = tok.decode(ids)
        assert full.startswith(r.thinking)
        assert r.answer in full[len(r.thinking):]
        assert BUDGET.thinking_end in full[len(r.thinking):]
        after = ids[r.thinking_tokens:]
        if r.hit_max_budget:
            assert r.thinking_tokens == BUDGET.max_thinking_tokens
            assert "Final Answer:" in r.answer
        else:
            assert after[: len(end)] == end
        assert r.answer_tokens <= BUDGET.max_answer_tokens
        assert r.num_ignored <= BUDGET.num_ignore
        assert r.finish_reason in ("stop", "length")
        assert set(r.to_dict()) >= {"prompt", "thinking", "answer", "thinking_tokens", "answer_tokens",
                                    "num_ignored", "hit_max_budget", "token_ids"}


def test_chunks_and_system_override(model, tok):
    whole = s1jax.generate(model, tok, QUESTIONS, budget=BUDGET, progress=False)
    chunked = s1jax.generate(model, tok, QUESTIONS, budget=BUDGET, batch_size=4, progress=True)
    assert [r.token_ids for r in whole] == [r.token_ids for r in chunked]
    custom = s1jax.generate(model, tok, QUESTIONS[:1], budget=BUDGET, system="Be brief.", progress=False)
    assert "Be brief." in custom[0].prompt and tok.chat.system_message not in custom[0].prompt
    none = s1jax.generate(model, tok, QUESTIONS[:1], budget=BUDGET, system="", progress=False)
    assert "system" not in none[0].prompt


def test_stream_prints_the_text(model, tok, capsys):
    results = s1jax.generate(model, tok, QUESTIONS[:2], budget=BUDGET, stream=1, progress=False)
    printed = capsys.readouterr().out
    plain = s1jax.generate(model, tok, QUESTIONS[:2], budget=BUDGET, progress=False)
    assert [r.token_ids for r in results] == [r.token_ids for r in plain]
    assert tok.decode(results[1].token_ids).strip()[-10:] in printed


def test_bad_inputs(model, tok):
    with pytest.raises(ValueError, match="empty"):
        s1jax.generate(model, tok, [], budget=BUDGET)
    with pytest.raises(ValueError, match="max_thinking_tokens"):
        s1jax.Budget(max_thinking_tokens=-1)
    with pytest.raises(ValueError, match="num_ignore"):
        s1jax.Budget(num_ignore=-2)
    with pytest.raises(ValueError, match="does not fit"):
        s1jax.generate(model, tok, ["a very long question " * 20], budget=BUDGET, max_cache_len=64)
    with pytest.raises(ValueError, match="single string"):
        s1jax.generate(model, tok, "one question", budget=BUDGET)
    with pytest.raises(ValueError, match="budgets"):
        s1jax.generate(model, tok, QUESTIONS[:2], budget=[BUDGET])
    with pytest.raises(ValueError, match=">= 0"):
        s1jax.generate_budget_sweep(model, tok, QUESTIONS[:1], [-5, 10], budget=BUDGET)
    with pytest.raises(ValueError, match="batch_size"):
        s1jax.generate(model, tok, QUESTIONS[:1], budget=BUDGET, batch_size=0)


def test_cache_full_is_reported(model, tok):
    """A cache too small for the budget ends rows with finish_reason='cache_full' instead of failing."""
    r = s1jax.generate(model, tok, QUESTIONS[:1], budget=s1jax.Budget(max_thinking_tokens=500), max_cache_len=128,
                       progress=False)[0]
    n_prompt = len(tok.encode(r.prompt))
    assert r.finish_reason == "cache_full"
    assert len(r.token_ids) <= 128 - n_prompt + 1


def test_cli_writes_jsonl(tmp_path):
    from s1jax.cli.main import main

    qfile = tmp_path / "q.jsonl"
    lines = [json.dumps({"problem" if i % 2 else "question": q}) for i, q in enumerate(QUESTIONS[:3])]
    qfile.write_text("\n".join(lines))
    out = tmp_path / "out.jsonl"
    argv = ["generate", "--config=configs/generate/default.py", f"--config.model.tokenizer={tokenizer_dir()}",
            "--config.model.dtype=float32", f"--config.questions_file={qfile}", f"--config.output={out}",
            "--config.budget.max_thinking_tokens=16", "--config.budget.num_ignore=1",
            "--config.budget.max_answer_tokens=6", "--config.progress=false"]
    assert main(argv) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question"] for r in recs] == QUESTIONS[:3]
    assert all(r["thinking_tokens"] <= 16 and isinstance(r["token_ids"], list) for r in recs)

    sweep_out = tmp_path / "sweep.jsonl"
    argv = argv[:-5] + [f"--config.output={sweep_out}", "--config.sweep_budgets=(4, 12)",
                        "--config.budget.max_answer_tokens=4", "--config.progress=false"]
    argv = [a for a in argv if not a.startswith("--config.questions_file")] + ["--config.prompt=What is 1 + 2?"]
    assert main(argv) == 0
    recs = [json.loads(line) for line in sweep_out.read_text().splitlines()]
    assert sorted(r["budget"] for r in recs) == [4, 12]
    assert main(["generate", "--config=configs/generate/default.py"]) == 2  # no prompt / tokenizer


class _Bar:
    """Stands in for tqdm: records what the decode loop reports."""

    def __init__(self, **kwargs):
        self.kwargs, self.n, self.total, self.updates, self.postfix = kwargs, 0, kwargs.get("total"), [], []

    def update(self, k):
        self.updates.append(k)
        self.n += k

    def set_postfix_str(self, s, refresh=True):
        self.postfix.append(s)

    def refresh(self):
        pass

    def close(self):
        pass


def test_progress_over_questions(model, tok, monkeypatch):
    """progress=True syncs every PROGRESS_CHUNK steps (same program, same tokens) and advances a bar of questions
    with the token rate."""
    import numpy as np

    from s1jax.inference import budget as bf
    from s1jax.inference import scheduler
    from s1jax.inference.engine import get_engine

    bars: list[_Bar] = []
    monkeypatch.setattr(scheduler, "_tqdm", lambda **kw: bars.append(_Bar(**kw)) or bars[-1])
    monkeypatch.setattr(scheduler, "PROGRESS_CHUNK", 8)
    qs = QUESTIONS[:3]
    plain = s1jax.generate(model, tok, qs, budget=BUDGET, progress=False)
    engine = get_engine(model.config, np.dtype(model.dtype).name, model.attention_impl,
                        bf.ForcingSpec.build(BUDGET, tok), s1jax.Sampling())
    compiled = engine.decode._cache_size()
    shown = s1jax.generate(model, tok, qs, budget=BUDGET, progress=True)
    assert [r.token_ids for r in shown] == [r.token_ids for r in plain]
    assert engine.decode._cache_size() == compiled  # max_steps is traced: no new program
    (bar,) = bars
    assert bar.kwargs["unit"] == "q" and bar.total == len(qs) and bar.n == len(qs)
    assert len(bar.postfix) > 1 and all("tok/s" in p for p in bar.postfix)
    # every row done; the batch (4 slots for 3 questions) shrank as rows finished, so it ends with 1, 2 or 4 slots
    assert bar.postfix[-1].rsplit(" ", 1)[-1] in ("0/1", "0/2", "0/4")

    bars.clear()
    plain_sweep = s1jax.generate_budget_sweep(model, tok, qs, [4, 12], budget=BUDGET, progress=False)
    shown_sweep = s1jax.generate_budget_sweep(model, tok, qs, [4, 12], budget=BUDGET, progress=True)
    for b in (4, 12):
        assert [r.token_ids for r in shown_sweep[b]] == [r.token_ids for r in plain_sweep[b]]
    assert [x.kwargs["desc"] for x in bars] == ["sweep"] and bars[0].n == len(qs)
