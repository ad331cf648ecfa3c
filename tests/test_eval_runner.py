"""End-to-end sweep runner with fake generation: JSONL, summary, Markdown, PNG, resume after a kill; loaders; CLI."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import pytest

import s1jax
from s1jax.eval import scaling as sc
from s1jax.eval.benchmarks import load_benchmark
from s1jax.eval.report import MAJORITY, ResultsWriter, load_records, summarize, write_reports

BUDGETS = [512, 1024, 2048]
NATURAL = [300, 700, 1500, 2500, 3000]  # tokens each item would think if unconstrained
NEEDS = [0, 500, 1000, 2000, 5000]  # budget each item needs to be answered correctly


@dataclasses.dataclass
class FakeResult:
    """The fields of GenerationResult (docs/contracts.md)."""

    prompt: str
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    num_ignored: int
    hit_max_budget: bool
    token_ids: list


class FakeSweep:
    """Deterministic stand-in for a budget sweep (s1jax.generate_sweep over caps); raises after ``fail_after`` calls (a kill)."""

    def __init__(self, items, fail_after=None):
        self.by_prompt = {it.prompt_text: (i, it) for i, it in enumerate(items)}
        self.calls = 0
        self.generated = []
        self.fail_after = fail_after

    def result(self, prompt, budget):
        i, it = self.by_prompt[prompt]
        right = budget >= NEEDS[i]
        ans = it.answer if right else str((int(it.answer) + 1) % 1000)
        toks = min(budget, NATURAL[i])
        return FakeResult(prompt, "hmm " * toks, f"\nFinal Answer: $\\boxed{{{ans}}}$", toks, 9, 0,
                          toks == budget, [1, 2, 3])

    def __call__(self, prompts, budgets):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        self.generated.extend(prompts)
        return {b: [self.result(p, b) for p in prompts] for b in budgets}

    def by_level(self, prompts, levels):
        """As a generate_sweep_fn taking (max_thinking_tokens, num_ignore) levels besides caps (one call); a level
        answers as its cap does (the fake ignores num_ignore)."""
        cap = lambda lv: lv[0] if isinstance(lv, tuple) else lv  # noqa: E731
        out = self(prompts, sorted({cap(lv) for lv in levels}))
        return {lv: out[cap(lv)] for lv in levels}

    by_level.takes_levels = True  # type: ignore[attr-defined]


@pytest.fixture()
def items(shared_data_dir):
    return load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"), limit=5)


def test_budget_sweep_end_to_end_with_resume(items, tmp_path):
    path = str(tmp_path / "results.jsonl")
    killed = FakeSweep(items, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        sc.run_budget_sweep(items, killed, BUDGETS, writer=ResultsWriter(path), batch_size=1,
                            call_size=1, progress=False)
    assert len(load_records(path)) == 2 * len(BUDGETS)  # two items finished before the kill
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"method": "budget_forcing", "point": "max=5')  # torn line from a kill mid-write

    resumed = FakeSweep(items)
    recs = sc.run_budget_sweep(items, resumed, BUDGETS, writer=ResultsWriter(path), batch_size=1,
                            call_size=1, progress=False)
    assert resumed.calls == 3  # only the 3 unfinished items
    assert set(resumed.generated) == {it.prompt_text for it in items[2:]}
    assert len(recs) == 15 and len(load_records(path)) == 15
    assert len({(r["point"], r["item_id"]) for r in recs}) == 15

    again = FakeSweep(items)
    sc.run_budget_sweep(items, again, BUDGETS, writer=ResultsWriter(path), batch_size=1,
                            call_size=1, progress=False)
    assert again.calls == 0  # everything done

    paths = write_reports(load_records(path), str(tmp_path), title="fake")
    summary = json.load(open(paths["summary"]))
    (bf,) = summary["methods"]
    assert [p["accuracy"] for p in bf["points"]] == pytest.approx([40.0, 60.0, 80.0])
    toks = [(300 + 4 * 512) / 5, (300 + 700 + 3 * 1024) / 5, (300 + 700 + 1500 + 2 * 2048) / 5]
    assert [p["avg_thinking_tokens"] for p in bf["points"]] == pytest.approx(toks)
    assert bf["control"] == 1.0 and bf["control_per_sample"] == 1.0
    slopes = [(60 - 40) / (toks[1] - toks[0]), (80 - 40) / (toks[2] - toks[0]), (80 - 60) / (toks[2] - toks[1])]
    assert bf["scaling_pp_per_token"] == pytest.approx(sum(slopes) / 3)
    assert bf["scaling_pp_per_1k_tokens"] == pytest.approx(1000 * sum(slopes) / 3)
    assert bf["performance"] == 80.0

    md = open(paths["markdown"]).read()
    assert "| budget_forcing | 100.0% |" in md and "| max=2048 | 2048 | 5 | 80.0 |" in md
    png = open(paths["plot"], "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(paths["plot"])
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def _fake_generate(items, log):
    """Fake s1jax.generate: greedy calls think NATURAL (+200 per "Wait"); sampled calls (temperature set) think
    2*NATURAL // (c + 1) on their c-th draw of that prompt, so rejection sampling needs a known number of tries."""
    by_prompt = {it.prompt_text: (i, it) for i, it in enumerate(items)}
    draws: dict = {}

    def generate_fn(prompts, *, max_thinking_tokens, num_ignore=0, temperature=None, seed=None):
        log.append({"n": len(prompts), "max": max_thinking_tokens, "ignore": num_ignore, "temp": temperature,
                    "seed": seed, "prompts": list(prompts)})
        out = []
        for p in prompts:
            i, it = next(v for k, v in by_prompt.items() if p.startswith(k))
            if temperature is None:
                natural = NATURAL[i] + 200 * num_ignore
            else:
                c = draws[(p, max_thinking_tokens)] = draws.get((p, max_thinking_tokens), -1) + 1
                natural = 2 * NATURAL[i] // (c + 1)
            toks = min(natural, max_thinking_tokens)
            ans = it.answer if toks >= NEEDS[i] else "999"
            out.append({"prompt": p, "thinking": "", "answer": f"Final Answer: {ans}", "thinking_tokens": toks,
                        "answer_tokens": 3, "num_ignored": num_ignore, "hit_max_budget": toks == max_thinking_tokens,
                        "token_ids": []})
        return out

    return generate_fn


def test_num_ignore_conditional_rejection_and_majority(items, tmp_path):
    log: list = []
    gen = _fake_generate(items, log)
    w = ResultsWriter(str(tmp_path / "r.jsonl"))
    kw = {"writer": w, "batch_size": 8, "progress": False}
    sc.run_num_ignore_sweep(items, gen, [0, 2], max_thinking_tokens=4096, **kw)
    assert [(e["max"], e["ignore"]) for e in log] == [(4096, 0), (4096, 2)]

    log.clear()
    pts = sc.conditional_points("token", [512, 1024], budget_forcing=False, uncapped_tokens=32768)
    sc.run_points(items, gen, pts, method="token_conditional", **kw)
    assert all(p.endswith("\n\nThink for up to 512 tokens.") for p in log[0]["prompts"]) and log[0]["max"] == 32768
    steps = sc.conditional_points("step", [4], budget_forcing=True, uncapped_tokens=32768, tokens_per_step=100)
    assert steps[0].budget == 400 and steps[0].gen_kwargs["max_thinking_tokens"] == 400
    assert [p.label for p in sc.conditional_points("class", [], budget_forcing=True, uncapped_tokens=1)] == ["short", "long"]

    log.clear()
    sc.run_rejection_sampling(items, gen, [1000], uncapped_tokens=32768, max_tries=4, **kw)
    assert all(e["temp"] == 1.0 and e["max"] == 32768 for e in log)
    rs = [r for r in w.records if r["method"] == "rejection_sampling"]
    assert len(rs) == 5
    by_item = {r["item_id"]: r for r in rs}
    # draws think 2N, N, 2N/3, N/2: item0 fits at once, item1 on the 2nd, item2 on the 3rd, items 3-4 never
    assert [by_item[it.id]["tries"] for it in items] == [1, 2, 3, 4, 4]
    assert [by_item[it.id]["thinking_tokens"] for it in items] == [600, 700, 1000, 1250, 1500]

    sc.run_majority_vote(items, gen, 4, max_thinking_tokens=8192, seed=1, **kw)
    summary = summarize(w.records)
    names = [m["method"] for m in summary["methods"]]
    assert names == ["num_ignore", "token_conditional", "rejection_sampling", MAJORITY]
    tc = summary["methods"][1]
    # unconstrained thinking overshoots: 512 -> items 1..4 exceed (avg 1600 > 512); 1024 -> avg 1600 > 1024
    assert tc["control"] == 0.0 and tc["control_per_sample"] == pytest.approx((1 / 5 + 2 / 5) / 2)
    rej = summary["methods"][2]
    assert rej["control_per_sample"] == pytest.approx(0.6)
    maj = summary["methods"][3]
    assert [p["point"] for p in maj["points"]] == ["maj@1", "maj@2", "maj@4"]
    # compute of maj@k = the k votes' thinking summed: sample s thinks 2N // (s + 1)
    assert maj["points"][0]["avg_thinking_tokens"] == pytest.approx(sum(2 * n for n in NATURAL) / 5)
    assert maj["points"][1]["avg_thinking_tokens"] == pytest.approx(sum(3 * n for n in NATURAL) / 5)
    # maj@4: item4 (needs 5000; draws 6000, 3000, 2000, 1500) is outvoted 3:1 -> wrong; item3 (needs 2000; draws
    # 5000, 2500, 1666, 1250) ties 2:2 and keeps the first-seen right answer
    assert [p["accuracy"] for p in maj["points"]] == [100.0, 100.0, 80.0]
    assert maj["control"] is None


def test_make_generate_fns_replaces_budget_fields(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Budget:
        max_thinking_tokens: int = 4000
        num_ignore: int = 0

    @dataclasses.dataclass(frozen=True)
    class Sampling:
        temperature: float = 0.0
        seed: int = 0

    seen = {}

    def generate(model, tok, qs, budget, sampling, system=None):
        seen["gen"] = (budget, sampling, system)
        return ["r"] * len(qs)

    def generate_sweep(model, tok, qs, levels, budget, sampling):
        seen["sweep"] = levels
        return {lv: [f"r{lv}"] * len(qs) for lv in levels}

    monkeypatch.setitem(vars(s1jax), "generate", generate)
    monkeypatch.setitem(vars(s1jax), "generate_sweep", generate_sweep)
    gen, sweep = sc.make_generate_fns("m", "t", Budget(), Sampling())
    assert gen(["q"], max_thinking_tokens=512, num_ignore=2, temperature=1.0, seed=3) == ["r"]
    assert seen["gen"] == ([Budget(512, 2)], Sampling(1.0, 3), None)
    # per-prompt budget fields (run_points merges the num_ignore sweep's points into shared calls)
    assert gen(["a", "b"], max_thinking_tokens=64, num_ignore=[1, 2]) == ["r", "r"]
    assert seen["gen"] == ([Budget(64, 1), Budget(64, 2)], Sampling(), None) and gen.per_prompt_budgets
    # a cap is a level at the base budget's num_ignore; a (cap, num_ignore) pair is passed as it is
    assert sweep(["a", "b"], [1, 2]) == {1: ["r(1, 0)"] * 2, 2: ["r(2, 0)"] * 2} and seen["sweep"] == [(1, 0), (2, 0)]
    assert sweep(["a"], [8, (8, 2)]) == {8: ["r(8, 0)"], (8, 2): ["r(8, 2)"]} and sweep.takes_levels


def test_num_ignore_points_share_generate_calls(items, tmp_path):
    """A generate_fn that takes per-prompt budgets gets every (num_ignore, item) pair in calls of call_size; the
    records are those of one call per point, and a resumed run generates only the missing pairs."""
    calls: list[tuple[list[str], dict]] = []

    def gen(prompts, **kw):
        calls.append((list(prompts), kw))
        ignores = kw["num_ignore"] if isinstance(kw["num_ignore"], list) else [kw["num_ignore"]] * len(prompts)
        return [{"thinking_tokens": 10 * (1 + n), "answer": "\\boxed{0}", "num_ignored": n} for n in ignores]

    gen.per_prompt_budgets = True
    path = str(tmp_path / "r.jsonl")
    recs = sc.run_num_ignore_sweep(items, gen, [1, 2, 3], writer=ResultsWriter(path), max_thinking_tokens=64,
                                   batch_size=2, call_size=6, progress=False)
    pairs = 3 * len(items)
    assert [len(p) for p, _ in calls] == [6] * (pairs // 6) + ([pairs % 6] if pairs % 6 else [])
    assert calls[0][1]["max_thinking_tokens"] == [64] * 6 and calls[0][1]["num_ignore"][:len(items)] == [1] * len(items)
    assert len(recs) == pairs and {(r["point"], r["item_id"]) for r in recs} == {
        (f"ignore={n}", it.id) for n in (1, 2, 3) for it in items}
    assert all(r["num_ignored"] == r["x"] and r["thinking_tokens"] == 10 * (1 + r["x"]) for r in recs)
    calls.clear()
    sc.run_num_ignore_sweep(items, gen, [1, 2, 3, 4], writer=ResultsWriter(path), max_thinking_tokens=64,
                            batch_size=2, call_size=6, progress=False)
    assert sum(len(p) for p, _ in calls) == len(items) and calls[0][1]["num_ignore"] == [4] * len(items)
    # without per-prompt support: one call per point and chunk, each with scalar fields
    calls.clear()
    plain = lambda prompts, **kw: gen(prompts, **kw)  # noqa: E731
    sc.run_num_ignore_sweep(items, plain, [5, 6], writer=ResultsWriter(str(tmp_path / "p.jsonl")),
                            max_thinking_tokens=64, batch_size=2, call_size=6, progress=False)
    assert [kw["num_ignore"] for _, kw in calls] == [5] * -(-len(items) // 6) + [6] * -(-len(items) // 6)


def test_cli_end_to_end_with_fake_engine(monkeypatch, tmp_path, shared_data_dir):
    from s1jax.cli import eval as cli

    items = load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"), limit=3)
    fake = FakeSweep(items)

    @dataclasses.dataclass(frozen=True)
    class Budget:
        max_thinking_tokens: int
        num_ignore: int
        ignore_str: str
        max_answer_tokens: int

    @dataclasses.dataclass(frozen=True)
    class Sampling:
        temperature: float
        top_p: float
        top_k: int
        seed: int

    monkeypatch.setitem(vars(s1jax), "load_model", lambda path, **kw: "model")
    monkeypatch.setitem(vars(s1jax), "load_tokenizer", lambda path, **kw: "tok")
    monkeypatch.setitem(vars(s1jax), "Budget", Budget)
    monkeypatch.setitem(vars(s1jax), "Sampling", Sampling)
    monkeypatch.setitem(vars(s1jax), "generate_sweep",
                        lambda m, t, qs, levels, budget, sampling, **kw: fake.by_level(qs, levels))
    out = tmp_path / "run"
    config = pathlib.Path(__file__).resolve().parents[1] / "configs" / "eval" / "aime24.py"
    (tmp_path / "fake").mkdir()  # the model path must exist (loading it is faked)
    argv = [f"--config={config}", f"--config.model.path={tmp_path / 'fake'}", "--config.limit=3",
            f"--config.output_dir={out}", "--config.budgets=[512, 2048]", "--config.progress=false"]
    assert cli.main(argv) == 0
    assert fake.calls == 1
    assert len(load_records(str(out / "results.jsonl"))) == 6
    summary = json.load(open(out / "summary.json"))
    assert [p["accuracy"] for p in summary["methods"][0]["points"]] == pytest.approx([200 / 3, 100.0])
    assert cli.main(argv) == 0 and fake.calls == 1  # rerun: resumed, nothing regenerated
    assert (out / "scaling.png").stat().st_size > 1000 and (out / "results.md").exists()


def test_gpqa_loader_generic_loader_and_errors(tmp_path):
    rows = [{"Question": f"Q{i}?", "Correct Answer": f"right{i}", "Incorrect Answer 1": "w1",
             "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3", "Record ID": f"rec{i}"} for i in range(6)]
    p = tmp_path / "gpqa.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, b = load_benchmark("gpqa", str(p)), load_benchmark("gpqa_diamond", str(p))
    assert [x.prompt_text for x in a] == [x.prompt_text for x in b]  # fixed seed per item
    for it in a:
        assert it.kind == "gpqa" and it.answer in "ABCD"
        assert f"{it.answer}) right{it.id[3:]}\n" in it.prompt_text + "\n"
        assert it.prompt_text.startswith(f"Q{it.id[3:]}?\n\nA) ")
    assert len({x.answer for x in a}) > 1  # the correct answer is not always in the same slot
    assert load_benchmark("gpqa", str(p), gpqa_ask_letter=True)[0].prompt_text.endswith("(A, B, C or D) of the correct choice.")

    g = tmp_path / "mine.jsonl"
    g.write_text(json.dumps({"question": "1+1?", "answer": 2}) + "\n")
    (it,) = load_benchmark("jsonl", str(g))
    assert (it.problem, it.answer, it.kind, it.prompt_text) == ("1+1?", "2", "math", "1+1?")

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "no answer column"}) + "\n")
    with pytest.raises(KeyError, match="answer"):
        load_benchmark("jsonl", str(bad))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_benchmark("math500", str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("mmlu", str(g))


def test_math500_loader(shared_data_dir):
    items = load_benchmark("math500", str(shared_data_dir / "math500.jsonl"))
    assert len(items) == 500 and items[0].id == "test/precalculus/807.json"
    assert items[0].prompt_text == items[0].problem and items[0].kind == "math"
