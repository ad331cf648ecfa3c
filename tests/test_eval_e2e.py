"""End-to-end eval of a tiny model through the real CLI path: HF dir on disk -> ``s1jax eval`` main() ->
s1jax.generate_sweep (the real jitted engine) -> grading -> JSONL + summary.json + results.md + scaling.png,
killed after the first batch and resumed without regenerating finished items."""

from __future__ import annotations

import json
import pathlib

import pytest

import s1jax
from gen_fixtures import tiny_model, tokenizer_dir
from s1jax.eval.benchmarks import load_benchmark
from s1jax.eval.report import load_records

BUDGETS = [8, 16, 32]
LIMIT = 5
BATCH = 2  # 5 items -> batches of 2, 2, 1: the kill lands after the first one
CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "eval" / "aime24.py"
RECORD_FIELDS = {"method", "point", "x", "budget", "item_id", "sample", "kind", "reference", "prompt", "thinking",
                 "answer", "thinking_tokens", "answer_tokens", "num_ignored", "hit_max_budget", "tries", "extracted",
                 "correct", "grade_reason"}


class Kill(BaseException):
    """A simulated kill (BaseException, like KeyboardInterrupt, so nothing on the way catches it)."""


class CountingSweep:
    """Wraps the real s1jax.generate_sweep: counts calls and prompts, raises after ``kill_after`` calls."""

    def __init__(self, real, kill_after=None):
        self.real, self.kill_after = real, kill_after
        self.calls, self.prompts, self.kwargs = 0, [], []

    def __call__(self, model, tok, questions, **kwargs):
        if self.kill_after is not None and self.calls >= self.kill_after:
            raise Kill("simulated kill after the first batch")
        self.calls += 1
        self.prompts += list(questions)
        self.kwargs.append({k: v for k, v in kwargs.items() if k not in ("budget", "sampling")})
        return self.real(model, tok, questions, **kwargs)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The gen_fixtures tiny model + tokenizer saved as a HF dir, so the CLI loads them like a real checkpoint."""
    out = tmp_path_factory.mktemp("tiny_hf") / "model"
    s1jax.save_model(tiny_model(), str(out), format="hf", tokenizer_path=tokenizer_dir())
    return out


def _argv(model_dir, out, **extra):
    args = {"model.path": str(model_dir), "model.dtype": "float32", "limit": LIMIT, "output_dir": str(out),
            "budgets": str(BUDGETS), "batch_size": BATCH, "call_size": BATCH, "progress": "false", "budget.max_answer_tokens": 12}
    args.update(extra)
    return [f"--config={CONFIG}"] + [f"--config.{k}={v}" for k, v in args.items()]


def test_cli_eval_tiny_model_end_to_end_with_kill_and_resume(model_dir, tmp_path, monkeypatch, shared_data_dir):
    from s1jax.cli import eval as cli
    from s1jax.inference.generate import generate_sweep as real_sweep

    items = load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"), limit=LIMIT)
    prompts = [it.prompt_text for it in items]
    out = tmp_path / "run"
    argv = _argv(model_dir, out, data_path=shared_data_dir / "aime24.jsonl")
    results = out / "results.jsonl"

    # 1. killed after the first batch: its records are on disk, nothing else
    killed = CountingSweep(real_sweep, kill_after=1)
    monkeypatch.setitem(vars(s1jax), "generate_sweep", killed)
    with pytest.raises(Kill):
        cli.main(argv)
    assert killed.calls == 1 and killed.prompts == prompts[:BATCH]
    assert killed.kwargs[0]["levels"] == [(b, 0) for b in BUDGETS] and killed.kwargs[0]["batch_size"] == BATCH
    assert "max_cache_len" not in killed.kwargs[0]  # 0 in the config = sized from the budget
    first = results.read_text(encoding="utf-8")
    assert len(load_records(str(results))) == BATCH * len(BUDGETS)
    assert not (out / "summary.json").exists()

    # 2. rerun (with an explicit KV-cache size): only the unfinished items are generated; finished records are
    #    left untouched
    resumed = CountingSweep(real_sweep)
    monkeypatch.setitem(vars(s1jax), "generate_sweep", resumed)
    # (640: the size the first call derived, so its compiled decode / branch programs are reused)
    assert cli.main(argv + ["--config.max_cache_len=640"]) == 0
    assert resumed.calls == 2 and resumed.prompts == prompts[BATCH:]
    assert all(kw["max_cache_len"] == 640 and kw["batch_size"] == BATCH for kw in resumed.kwargs)
    text = results.read_text(encoding="utf-8")
    assert text.startswith(first)
    recs = [json.loads(line) for line in text.splitlines()]
    assert len(recs) == LIMIT * len(BUDGETS)
    assert {(r["point"], r["item_id"]) for r in recs} == {(f"max={b}", it.id) for b in BUDGETS for it in items}
    by_item = {it.id: it for it in items}
    for r in recs:
        assert RECORD_FIELDS <= set(r), RECORD_FIELDS - set(r)
        assert r["method"] == "budget_forcing" and r["kind"] == "aime"
        assert r["reference"] == by_item[r["item_id"]].answer
        assert r["budget"] == r["x"] and r["prompt"] == by_item[r["item_id"]].prompt_text
        assert 0 <= r["thinking_tokens"] <= r["budget"]  # the real engine enforces the cap
        assert 0 <= r["answer_tokens"] <= 12 and isinstance(r["correct"], bool) and isinstance(r["grade_reason"], str)
        assert r["extracted"] is None or isinstance(r["extracted"], str)
        if r["hit_max_budget"]:
            assert r["thinking_tokens"] == r["budget"]
            assert r["answer"].lstrip("\n").startswith("Final Answer:")
    # rows that stopped by themselves before a budget answer the same at every larger budget (shared prefix)
    for it in items:
        per = {r["budget"]: r for r in recs if r["item_id"] == it.id}
        for lo, hi in zip(BUDGETS, BUDGETS[1:]):
            if not per[lo]["hit_max_budget"]:
                assert (per[hi]["thinking"], per[hi]["answer"]) == (per[lo]["thinking"], per[lo]["answer"])

    # 3. reports: summary per budget, Markdown, PNG
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["num_records"] == len(recs)
    (m,) = summary["methods"]
    assert m["method"] == "budget_forcing" and m["num_points"] == len(BUDGETS)
    assert m["control"] == 1.0 and m["control_per_sample"] == 1.0
    assert 0.0 <= m["performance"] <= 100.0
    assert [p["budget"] for p in m["points"]] == BUDGETS
    for p in m["points"]:
        mine = [r for r in recs if r["budget"] == p["budget"]]
        assert p["n"] == LIMIT and p["accuracy"] == pytest.approx(100.0 * sum(r["correct"] for r in mine) / LIMIT)
        assert p["avg_thinking_tokens"] == pytest.approx(sum(r["thinking_tokens"] for r in mine) / LIMIT)
        assert p["avg_thinking_tokens"] <= p["budget"]
    assert "budget_forcing" in (out / "results.md").read_text(encoding="utf-8")
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # 4. a third run has nothing left to generate and rewrites the same summary
    idle = CountingSweep(real_sweep)
    monkeypatch.setitem(vars(s1jax), "generate_sweep", idle)
    assert cli.main(argv) == 0 and idle.calls == 0
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary
