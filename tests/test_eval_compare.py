"""lm-eval compatible files (checked against a schema fixture written from lm-eval's source), uncertainty numbers,
and `s1jax compare` on synthetic runs whose agreement table is known. Pure Python, no model."""

from __future__ import annotations

import json
import math
import pathlib
import re

import numpy as np
import pytest

from s1jax.eval.benchmarks import EvalItem
from s1jax.eval.compare import compare_runs, load_lmeval_samples, load_run, thinking_text
from s1jax.eval.lmeval_files import hash_string, write_lmeval_files
from s1jax.eval.report import ResultsWriter, summarize
from s1jax.eval.stats import bootstrap_scaling_ci, mean_stderr, paired_bootstrap_diff

LAYOUT = json.loads((pathlib.Path(__file__).parent / "fixtures" / "lmeval_layout.json").read_text())
TYPES = {"str": str, "number": (int, float), "bool": bool, "list": list, "dict": dict, "null": type(None)}


def _check(obj, spec, where):
    for key, types in spec.items():
        assert key in obj, f"{where}: missing {key!r}"
        allowed = tuple(TYPES[t] for t in types.split("|"))
        value = obj[key]
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed and "number" in types)
        assert ok, f"{where}.{key}: {type(value).__name__} is not {types}"


# 10 items; A right on the first 6, B right on items 3..8: both 3 (3,4,5), only A 3 (0,1,2), only B 3 (6,7,8),
# both wrong 1 (9).
A_RIGHT = {0, 1, 2, 3, 4, 5}
B_RIGHT = {3, 4, 5, 6, 7, 8}
ITEMS = [EvalItem(f"item-{i}", f"Problem {i}: what is {i} + {i}?", str(2 * i), "math", f"Problem {i}: what is "
                  f"{i} + {i}?") for i in range(10)]


def _record(i, budget, correct, tokens, method="budget_forcing"):
    it = ITEMS[i]
    return {"method": method, "point": f"max={budget}", "x": budget, "budget": budget, "item_id": it.id, "sample": 0,
            "kind": "math", "reference": it.answer, "prompt": it.prompt_text, "thinking": "t " * tokens,
            "answer": f"Final Answer: {it.answer if correct else -1}", "thinking_tokens": tokens, "answer_tokens": 5,
            "num_ignored": 0, "hit_max_budget": tokens == budget, "tries": 1,
            "extracted": it.answer if correct else "-1", "correct": correct, "grade_reason": "test"}


@pytest.fixture()
def run_a(tmp_path):
    out = tmp_path / "a"
    w = ResultsWriter(str(out / "results.jsonl"), stamp={"fingerprint": "aaaa"})
    w.append([_record(i, b, i in A_RIGHT if b == 512 else i < 8, 100 + i) for b in (512, 1024) for i in range(10)])
    return out


def test_lmeval_files_match_the_layout(run_a, tmp_path):
    recs = [json.loads(x) for x in (run_a / "results.jsonl").read_text().splitlines()]
    paths = write_lmeval_files(recs, ITEMS, str(run_a), benchmark="math500",
                               settings={"temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_answer_tokens": 64,
                                         "batch_size": 8},
                               model_name="runs/s1/hf", model_args="pretrained=runs/s1/hf,dtype=bfloat16",
                               system=None, versions={"s1jax": "0.1.0", "git_commit": "abcdef0123"}, fingerprint="f",
                               limit=None, seed=0, bootstrap_samples=100)
    res_path = pathlib.Path(paths.pop("results"))
    assert re.fullmatch(LAYOUT["results_filename"], res_path.name), res_path.name
    res = json.loads(res_path.read_text())
    _check(res, LAYOUT["results_top_level"], "results")
    _check(res["config"], LAYOUT["config_keys"], "config")
    tasks = ["openai_math_budget_forcing_max512", "openai_math_budget_forcing_max1024"]
    assert list(res["results"]) == tasks and res["group_subtasks"] == {"openai_math": tasks}
    for name in tasks:
        _check(res["results"][name], LAYOUT["results_per_task"], name)
        _check(res["configs"][name], LAYOUT["task_config_keys"], f"configs.{name}")
        _check(res["n-samples"][name], LAYOUT["n_samples_keys"], f"n-samples.{name}")
        assert name in res["versions"] and name in res["n-shot"] and name in res["higher_is_better"]
    r512 = res["results"][tasks[0]]
    assert r512["exact_match,none"] == pytest.approx(0.6)
    assert r512["exact_match_stderr,none"] == pytest.approx(math.sqrt(0.6 * 0.4 / 9))  # lm-eval's mean_stderr
    assert res["configs"][tasks[1]]["generation_kwargs"]["max_tokens_thinking"] == 1024

    assert set(paths) == set(tasks)
    for name, path in paths.items():
        m = re.fullmatch(LAYOUT["samples_filename"], pathlib.Path(path).name)
        assert m and m["task"] == name and res_path.name == f"results_{m['date']}.json"
        rows = [json.loads(x) for x in pathlib.Path(path).read_text().splitlines()]
        assert [r["doc_id"] for r in rows] == list(range(10))
        for row in rows:
            _check(row, LAYOUT["sample_keys"], f"{name} sample")
            assert all(re.fullmatch(LAYOUT["sample_arguments_key"], k) for k in row["arguments"])
            assert all(re.fullmatch(LAYOUT["sample_argument_entry_key"], k) for k in row["arguments"]["gen_args_0"])
            assert row["doc_hash"] == hash_string(json.dumps(row["doc"], indent=2, ensure_ascii=False))
            assert row["target_hash"] == hash_string(row["target"])
            assert row["resps"][0][0] == row["filtered_resps"][0] and row["exact_match"] in (0, 1)
        assert res["task_hashes"][name] == hash_string("".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"]
                                                               for r in rows))


def test_stderr_and_bootstrap():
    assert mean_stderr([1.0]) is None and mean_stderr([0, 100, 100, 0]) == pytest.approx(100 * math.sqrt(0.25 / 3))
    # every item flips from wrong to right with compute: Scaling is exactly 100 pp per 1K tokens in every draw
    correct = np.array([[0.0, 1.0]] * 20)
    tokens = np.array([[1000.0, 2000.0]] * 20)
    lo, hi = bootstrap_scaling_ci(correct, tokens, iters=50)
    assert lo == pytest.approx(100.0) and hi == pytest.approx(100.0)
    d, (lo, hi) = paired_bootstrap_diff([0, 100] * 10, [100, 100] * 10, iters=500)
    assert d == 50.0 and lo < 50.0 < hi and 0.0 <= lo and hi <= 100.0
    recs = [_record(i, b, (i < 3) if b == 512 else (i < 7), b // 2) for b in (512, 1024) for i in range(10)]
    (m,) = summarize(recs, bootstrap_samples=300)["methods"]
    assert [p["accuracy_stderr"] for p in m["points"]] == pytest.approx([100 * math.sqrt(0.21 / 9),
                                                                         100 * math.sqrt(0.21 / 9)])
    lo, hi = m["scaling_pp_per_1k_tokens_ci"]
    assert lo <= m["scaling_pp_per_1k_tokens"] <= hi


def _lmeval_samples(path, right, text_only=False, tok=None):
    """An lm-eval samples file as s1's fork writes it: integer doc ids, the problem in doc, 0/1 exact_match."""
    with open(path, "w") as f:
        for i, it in enumerate(ITEMS):
            doc = {"problem": "  " + it.problem.replace(" ", "  ") if text_only else it.problem, "answer": it.answer}
            if not text_only:
                doc["id"] = it.id
            row = {"doc_id": i, "doc": doc, "target": it.answer, "arguments": {"gen_args_0": {"arg_0": it.problem}},
                   "resps": [["..."]], "filtered_resps": ["..."], "filter": "none", "metrics": ["exact_match"],
                   "exact_match": int(i in right)}
            if tok is not None:
                row["tok_think@1"] = tok
            f.write(json.dumps(row) + "\n")


def test_compare_known_agreement_table(run_a, tmp_path):
    b = tmp_path / "samples_openai_math_2025-02-01T00-00-00.000001.jsonl"
    _lmeval_samples(b, B_RIGHT, text_only=True, tok=300)  # ids differ: matched by (whitespace-normalised) text
    (tmp_path / "results_2025-02-01T00-00-00.000001.json").write_text(json.dumps(
        {"results": {}, "configs": {"openai_math": {"generation_kwargs": {"max_tokens_thinking": 512}}}}))
    result = compare_runs(load_run(str(run_a)), load_run(str(b)), bootstrap_samples=2000)
    (row,) = result["rows"]  # B's budget (512, from its results json) is matched to A's 512
    assert (row["budget_a"], row["budget_b"], row["n"], row["matched_by"]) == (512, 512, 10, "problem text")
    assert (row["both_right"], row["only_a"], row["only_b"], row["both_wrong"]) == (3, 3, 3, 1)
    assert row["accuracy_a"] == row["accuracy_b"] == 60.0 and row["difference"] == 0.0
    assert row["stderr_a"] == pytest.approx(100 * math.sqrt(0.24 / 9))
    lo, hi = row["difference_ci"]
    assert lo < 0.0 < hi
    assert row["thinking_tokens_a"] == pytest.approx(104.5) and row["thinking_tokens_b"] == 300.0

    # an unknown budget is compared against every budget of the other run; ids match when both use them
    b2 = tmp_path / "other" / "samples_openai_math_2025-02-01T00-00-00.jsonl"
    b2.parent.mkdir()
    _lmeval_samples(b2, B_RIGHT)
    rows = compare_runs(load_run(str(run_a)), load_run(str(b2)), bootstrap_samples=200)["rows"]
    assert [(r["budget_a"], r["budget_b"], r["matched_by"]) for r in rows] == [(512, None, "id"), (1024, None, "id")]
    assert (rows[1]["both_right"], rows[1]["only_a"], rows[1]["only_b"], rows[1]["both_wrong"]) == (5, 3, 1, 1)
    assert rows[0]["thinking_tokens_b"] is None

    # without tok_think@1, a tokenizer counts the thinking part of the response (before s1's answer marker)
    b3 = tmp_path / "other" / "samples_openai_math_2025-03-01T00-00-00.jsonl"
    _lmeval_samples(b3, B_RIGHT)
    response = '"resps": [["one two three<|im_start|>answer\\nFinal Answer: 4"]]'
    b3.write_text(b3.read_text().replace('"resps": [["..."]]', response))

    class WordTokenizer:
        def encode(self, s):
            return s.split()

    run = load_lmeval_samples(str(b3), tokenizer=WordTokenizer())
    assert {x.thinking_tokens for x in run.points[None]} == {3.0}
    assert thinking_text("a</think>b") == "a" and thinking_text("no marker") is None


def test_compare_cli(run_a, tmp_path, capsys):
    from s1jax.cli.main import main

    b = tmp_path / "samples_openai_math_2025-02-01T00-00-00.jsonl"
    _lmeval_samples(b, B_RIGHT)
    out = tmp_path / "cmp"
    assert main(["compare", str(run_a), str(b), f"--config.output_dir={out}", "--config.b_budget=1024",
                 "--config.bootstrap_samples=200"]) == 0
    text = capsys.readouterr().out
    assert "| 1024 | 1024 | 10 | 80.0 ± 13.3 | 60.0 ± 16.3 | -20.0 [" in text
    assert json.loads((out / "comparison.json").read_text())["rows"][0]["only_a"] == 3
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    for argv, needle in (([str(run_a)], "give two runs"), ([str(run_a), str(tmp_path / "nope")], "does not exist"),
                         ([str(run_a), str(b), "--config.match=fuzzy"], "match"),
                         ([str(run_a), str(b), "--config.method=majority_vote"], "no 'majority_vote' records")):
        capsys.readouterr()
        rc = main(["compare", *argv, f"--config.output_dir={tmp_path / 'bad'}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and needle in err[0], (argv, err)
    assert not (tmp_path / "bad").exists()


def test_lmeval_reads_our_results_when_installed(run_a):
    """lm-eval's own table printer on our results file (skipped unless lm_eval and pytablewriter are installed;
    the schema test above covers the layout either way)."""
    utils = pytest.importorskip("lm_eval.utils")
    pytest.importorskip("pytablewriter")
    recs = [json.loads(x) for x in (run_a / "results.jsonl").read_text().splitlines()]
    paths = write_lmeval_files(recs, ITEMS, str(run_a), benchmark="aime24_nofigures", settings={}, model_name="m")
    files = [str(p) for p in run_a.iterdir()]
    assert utils.get_results_filenames(files) == [paths["results"]]
    samples = utils.get_sample_results_filenames(files)
    assert sorted(utils.get_file_task_name(pathlib.Path(f).name) for f in samples) == sorted(k for k in paths
                                                                                              if k != "results")
    table = utils.make_table(json.loads(pathlib.Path(paths["results"]).read_text()))
    assert "aime24_nofigures_budget_forcing_max512" in table and "exact_match" in table
