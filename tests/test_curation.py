"""s1K curation: quality rules, difficulty (injected solvers/grader), Algorithm 1, decontamination, outputs, CLI."""

from __future__ import annotations

import collections
import json
import pathlib
import sys
import types

import numpy as np
import pytest

from s1jax.curation import difficulty as cd
from s1jax.curation.solvers import make_default_grade_fn, make_model_solver
from s1jax.curation.pipeline import OUTPUT_COLUMNS, default_config, run_curation, validate_pool
from s1jax.curation.decontam import build_ngram_index, decontaminate, load_eval_questions, read_eval_questions
from s1jax.curation.difficulty import ReferenceModel, apply_difficulty, make_token_counter, solved_value
from s1jax.curation.diversity import (
    KeywordDomainClassifier,
    LMDomainClassifier,
    is_preselected,
    load_msc,
    select_diverse,
)
from s1jax.curation.io import format_report, write_outputs
from s1jax.curation.quality import QUALITY_RULES, apply_quality, default_quality_config
from s1jax.curation.text import normalize_words
from s1jax.curation.synthetic_pool import _FILLER, SYNTHETIC_DOMAINS, make_synthetic_pool

REPO = pathlib.Path(__file__).resolve().parents[1]
RULES = [name for name, _, _ in QUALITY_RULES]


def _row(question: str, trace: str = "Some careful reasoning.", attempt: str = "The answer is $\\boxed{3}$.", **kw):
    row = {
        "question": question,
        "solution": "$\\boxed{3}$",
        "cot_type": "math",
        "source_type": "test/source",
        "metadata": "{}",
        "thinking_trajectories": [trace],
        "attempt": attempt,
    }
    row.update(kw)
    return row


def _with_ids(rows):
    for i, r in enumerate(rows):
        r["_row_id"] = i
    return rows


@pytest.fixture(scope="module")
def pool():
    return make_synthetic_pool(400, seed=1)


# ------------------------------------------------------------------------------------------------------------ quality


def test_synthetic_pool_is_deterministic_and_schema_complete():
    a, b = make_synthetic_pool(200, seed=3), make_synthetic_pool(200, seed=3)
    assert a.rows == b.rows and a.planted == b.planted
    assert make_synthetic_pool(200, seed=4).rows != a.rows
    validate_pool(a.rows)
    assert set(a.planted) == set(RULES)


def test_each_quality_rule_drops_exactly_its_planted_rows(pool):
    kept, drops, after = apply_quality([dict(r) for r in pool.rows], default_quality_config())
    by_rule = collections.defaultdict(set)
    for d in drops:
        by_rule[d.rule].add(d.row_id)
    for rule in RULES:
        assert by_rule[rule] == set(pool.planted[rule]), rule
    assert len(drops) == len({d.row_id for d in drops}) == sum(len(v) for v in pool.planted.values())
    assert len(kept) == len(pool.rows) - len(drops)
    assert after["dedup"] == len(kept) and after["api_errors"] >= after["formatting"] >= after["dedup"]


@pytest.mark.parametrize("rule", RULES)
def test_disabling_a_rule_stops_only_that_rule(pool, rule):
    cfg = default_quality_config()
    cfg[rule].enabled = False
    _, drops, _ = apply_quality([dict(r) for r in pool.rows], cfg)
    fired = collections.Counter(d.rule for d in drops)
    assert fired[rule] == 0
    for other in RULES:
        if other != rule and not (rule == "exact_duplicate" and other == "near_duplicate"):
            assert fired[other] == len(pool.planted[other]), other
    if rule == "exact_duplicate":  # an exact copy is also a near copy (Jaccard 1): the next rule catches it
        assert fired["near_duplicate"] == len(pool.planted["near_duplicate"]) + len(pool.planted["exact_duplicate"])


def test_quality_rules_leave_legitimate_text_alone():
    rows = _with_ids([
        _row("In the diagram, find $AB$. [asy]draw((0,0)--(1,1));[/asy]"),  # the asy code is the figure
        _row("A shirt costs \\$5 and a hat \\$7. Find the total"),  # escaped dollars, no final period
        _row("Compute $\\left\\{ x \\right\\}$ for $x = 2.5$.",
             trace="First try. Error: that step was wrong, let me redo it. Done."),  # "Error:" mid-trace is fine
        _row("Which is largest?\n(A) 1\n(B) 2\n(C) 3\n(D) 4"),
        _row("Evaluate $\\frac{1}{2} + \\frac{1}{3}$."),
    ])
    kept, drops, _ = apply_quality(rows, default_quality_config())
    assert drops == [] and len(kept) == 5


def test_api_error_and_truncation_details_name_the_field():
    rows = _with_ids([
        _row("Find $x$.", trace="error: upstream returned 503"),
        _row("Find $x$ such that", attempt="ok."),
        _row("Let $f(x) = {x + 1$. Find $f(2)$."),
    ])
    _, drops, _ = apply_quality(rows, default_quality_config())
    by_row = {d.row_id: d for d in drops}
    assert {i: d.rule for i, d in by_row.items()} == {0: "api_error", 1: "ends_mid_sentence", 2: "unbalanced_delimiters"}
    assert "thinking_trajectories" in by_row[0].detail and "question" in by_row[1].detail and "braces" in by_row[2].detail


def test_near_duplicate_threshold_and_keep_first():
    rng = np.random.default_rng(0)
    base = " ".join(rng.choice(_FILLER, size=40))
    rows = _with_ids([_row(base + "?"), _row(base + " indeed?"), _row(" ".join(rng.choice(_FILLER, size=40)) + "?")])
    kept, drops, _ = apply_quality(rows, default_quality_config())
    assert [d.row_id for d in drops] == [1] and drops[0].rule == "near_duplicate" and "row 0" in drops[0].detail
    cfg = default_quality_config()
    cfg.near_duplicate.threshold = 0.99
    _, drops, _ = apply_quality(_with_ids([dict(r) for r in rows]), cfg)
    assert drops == []


# --------------------------------------------------------------------------------------------------------- difficulty


def test_solved_value_parses_grade_formats():
    assert [solved_value(v) for v in (True, False, 1, 0, 0.25, 0.0, "Yes", "No", "correct", None, float("nan"), "??")] == [
        True, False, True, False, True, False, True, False, True, None, None, None]


def test_difficulty_from_precomputed_columns_records_trace_tokens():
    rows = _with_ids([
        _row("q0", trace="a b c", a=True, b=False),
        _row("q1", trace="a b c d e", a="No", b="No"),
        _row("q2", trace="a", a=0.0, b=0.5),
        _row("q3", trace="x y", a=0, b="no"),
    ])
    models = [ReferenceModel("small", column="a"), ReferenceModel("big", column="b")]
    kept, drops, stats = apply_difficulty(rows, models, None, cd.whitespace_token_count)
    assert [r["question"] for r in kept] == ["q1", "q3"]
    assert [r["trace_tokens"] for r in rows] == [3, 5, 1, 2]
    assert {d.row_id: d.detail for d in drops} == {0: "solved by small", 2: "solved by big"}
    assert stats["small"]["solved"] == 1 and stats["big"]["checked"] == 3  # short-circuit: q0 not re-checked


def test_difficulty_with_injected_solvers_and_grader():
    rows = _with_ids([_row(f"question {i}", solution=str(i)) for i in range(6)])
    calls = collections.defaultdict(list)

    def solver(name, knows):
        def run(questions):
            calls[name].append(list(questions))
            return [f"\\boxed{{{q.split()[-1]}}}" if int(q.split()[-1]) in knows else "\\boxed{-1}" for q in questions]
        return run

    def grade_fn(response, reference):
        return response == f"\\boxed{{{reference}}}"

    models = [ReferenceModel("7b", solver=solver("7b", {0, 1})), ReferenceModel("32b", solver=solver("32b", {1, 2, 3}))]
    kept, drops, stats = apply_difficulty(rows, models, grade_fn, lambda t: len(t))
    assert [r["question"] for r in kept] == ["question 4", "question 5"]
    assert calls["7b"] == [[f"question {i}" for i in range(6)]]
    assert calls["32b"] == [[f"question {i}" for i in range(2, 6)]]  # only what 7b failed, in one batched call
    assert stats["32b"] == {"checked": 4, "from_column": 0, "from_solver": 4, "solved": 2}
    assert all(r["trace_tokens"] == len("Some careful reasoning.") for r in rows)


def test_difficulty_partial_column_uses_solver_only_for_unknown_rows():
    rows = _with_ids([_row("q0", g=True), _row("q1", g=None), _row("q2")])
    seen = []
    model = ReferenceModel("m", column="g", solver=lambda qs: seen.extend(qs) or ["right"] * len(qs))
    kept, _, stats = apply_difficulty(rows, [model], lambda resp, ref: False, cd.whitespace_token_count)
    assert seen == ["q1", "q2"] and [r["question"] for r in kept] == ["q1", "q2"]
    assert stats["m"]["from_column"] == 1 and stats["m"]["from_solver"] == 2


def test_difficulty_without_solve_info_is_an_error():
    rows = _with_ids([_row("q0")])
    with pytest.raises(ValueError, match="'qwen-7b'.*isqwen7bcorrect"):
        apply_difficulty(rows, [ReferenceModel("qwen-7b", column="isqwen7bcorrect")], None, len)


def test_model_solver_adapter_batches_through_s1jax_generate(monkeypatch):
    import s1jax

    log = {}

    class Result:
        def __init__(self, q):
            self.thinking, self.answer = f"think {q}", f"answer {q}"

    def fake_generate(model, tok, questions, budget, sampling, system=None):
        log.setdefault("batches", []).append(list(questions))
        log["budget"], log["sampling"], log["model"], log["tok"] = budget, sampling, model, tok
        return [Result(q) for q in questions]

    # vars(): s1jax resolves these lazily, and getattr on an unbuilt module would import it
    monkeypatch.setitem(vars(s1jax), "generate", fake_generate)
    monkeypatch.setitem(vars(s1jax), "Budget", lambda **kw: ("budget", kw))
    monkeypatch.setitem(vars(s1jax), "Sampling", lambda **kw: ("sampling", kw))
    monkeypatch.setitem(vars(s1jax), "load_model", lambda path, dtype: f"model:{path}:{dtype}")
    monkeypatch.setitem(vars(s1jax), "load_tokenizer", lambda path: f"tok:{path}")
    solver = make_model_solver(
        "/m", "/t", {"max_thinking_tokens": 64, "temperature": 0.0, "batch_size": 2, "dtype": "float32"}
    )
    assert solver(["a", "b", "c"]) == ["think a\nanswer a", "think b\nanswer b", "think c\nanswer c"]
    assert log["batches"] == [["a", "b"], ["c"]]
    assert log["budget"] == ("budget", {"max_thinking_tokens": 64}) and log["sampling"] == ("sampling", {"temperature": 0.0})
    assert log["model"] == "model:/m:float32" and log["tok"] == "tok:/t"
    answer_only = make_model_solver("/m", budget_cfg={}, response="answer", model="M", tokenizer="T")
    assert answer_only(["z"]) == ["answer z"] and log["model"] == "M"


def test_default_grade_fn_and_token_counter_adapters(monkeypatch):
    fake = types.ModuleType("s1jax.eval.grading")
    fake.extract_answer = lambda text, kind: text.split("boxed{")[-1].rstrip("}$.") if "boxed{" in text else None
    fake.grade = lambda response, reference, kind: reference in response and kind == "math"
    monkeypatch.setitem(sys.modules, "s1jax.eval.grading", fake)
    grade_fn = make_default_grade_fn("math")
    assert grade_fn("so 17", "Thus $\\boxed{17}$.") and not grade_fn("so 18", "Thus $\\boxed{17}$.")
    assert make_token_counter("")("one two  three\nfour") == 4

    import s1jax

    class Tok:
        def encode(self, text):
            return list(text.encode())

    monkeypatch.setitem(vars(s1jax), "load_tokenizer", lambda path: Tok())
    assert make_token_counter("/tok")("abc") == 3


# ---------------------------------------------------------------------------------------------------------- diversity


def _candidates(sizes: dict[str, int], start: int = 0):
    rows, i = [], start
    for domain, n in sizes.items():
        for k in range(n):
            rows.append({"_row_id": i, "domain": domain, "trace_tokens": 1000 - 7 * k, "question": f"{domain}{k}"})
            i += 1
    return rows


def test_algorithm1_is_seeded_and_never_exceeds_n():
    cands = _candidates({"a": 30, "b": 5, "c": 40})
    s1, d1 = select_diverse([], cands, 25, seed=7)
    s2, d2 = select_diverse([], cands, 25, seed=7)
    s3, _ = select_diverse([], cands, 25, seed=8)
    assert [r["_row_id"] for r in s1] == [r["_row_id"] for r in s2] and d1 == d2
    assert [r["_row_id"] for r in s1] != [r["_row_id"] for r in s3]
    for n in (1, 10, 75):
        sel, _ = select_diverse([], cands, n, seed=0)
        assert len(sel) == n and len({r["_row_id"] for r in sel}) == n


def test_algorithm1_covers_every_domain_and_exhausts_small_ones():
    cands = _candidates({"tiny": 2, "small": 3, "a": 50, "b": 50, "c": 50, "d": 50})
    pre = _candidates({"pre": 4}, start=1000)
    sel, drawn = select_diverse(pre, cands, 100, seed=0)
    assert sel[:4] == pre and len(sel) == 100 and len(drawn) == 96
    counts = collections.Counter(r["domain"] for r in sel[4:])
    assert set(counts) == {"tiny", "small", "a", "b", "c", "d"}
    assert counts["tiny"] == 2 and counts["small"] == 3  # exhausted domains leave the draw


def test_algorithm1_weights_are_two_to_the_minus_rank():
    cands = _candidates({"only": 20})
    first = collections.Counter(select_diverse([], cands, 1, seed=s)[0][0]["_row_id"] for s in range(3000))
    # rank 0 (longest) ~ 1/2, rank 1 ~ 1/4, rank 2 ~ 1/8: binomial sd at n=3000 is < 0.01
    assert abs(first[0] / 3000 - 0.5) < 0.03 and abs(first[1] / 3000 - 0.25) < 0.03 and abs(first[2] / 3000 - 0.125) < 0.025
    # over 5-item selections, selection frequency falls with rank: longer traces are chosen more often
    freq = collections.Counter(r["_row_id"] for s in range(400) for r in select_diverse([], cands, 5, seed=s)[0])
    series = [freq[i] for i in range(8)]
    # the longest is missed only if five draws in a row skip rank 0: (1/2)^5 of the runs
    assert series[0] >= 370 and all(a >= b for a, b in zip(series, series[1:])) and series[7] < series[0] / 4
    assert sum(freq[i] for i in range(12, 20)) < 10  # the short tail is almost never reached


def test_algorithm1_bad_sizes_raise():
    cands = _candidates({"a": 3})
    with pytest.raises(ValueError, match="larger than the pool"):
        select_diverse([], cands, 4, seed=0)
    with pytest.raises(ValueError, match="pre-selected"):
        select_diverse(_candidates({"p": 3}), cands, 2, seed=0)


def test_preselect_rules():
    rules = [{"source_contains": ["aime", "gpqa"], "min_trace_tokens": 0}, {"source_contains": ["openaimath"], "min_trace_tokens": 5601}]
    assert is_preselected({"source_type": "qq8933/AIME_1983_2024", "trace_tokens": 10}, rules)
    assert is_preselected({"source_type": "qfq/openaimath/Algebra", "trace_tokens": 6000}, rules)
    assert not is_preselected({"source_type": "qfq/openaimath/Algebra", "trace_tokens": 5600}, rules)
    assert not is_preselected({"source_type": "AI-MO/NuminaMath-CoT/olympiads", "trace_tokens": 9999}, rules)
    graded = {"source_type": "Idavidrein/gpqa", "trace_tokens": 1, "ok": "No"}
    assert not is_preselected(graded, rules, "ok") and is_preselected({**graded, "ok": "Yes"}, rules, "ok")


def test_msc_table_and_keyword_classifier():
    msc = load_msc()
    codes = [c["code"] for c in msc["codes"]]
    assert codes[0] == "00" and codes[-1] == "97" and len(codes) == 63 and codes == sorted(codes)
    clf = KeywordDomainClassifier()
    assert clf(["Find all primes p such that p^2 + 2 is a perfect square modulo 7."]) == ["Number theory"]
    assert clf.classify_code("In triangle ABC the circle is tangent to BC.") == "51"
    assert clf.classify_code("An electron with spin 1/2 in a Hamiltonian H.") == "81"
    assert clf.classify_code("zzz qqq") == "00"
    for word in _FILLER:  # synthetic filler must not vote for any domain
        assert clf.classify_code(word) == "00", word
    pool = make_synthetic_pool(200, seed=2)
    clean = [r for r in pool.rows if r["_row_id"] not in {i for v in pool.planted.values() for i in v}]
    for r in clean:
        assert clf.classify_code(r["question"]) == json.loads(r["metadata"])["synthetic_domain"], r["question"]
    assert len({c for c, *_ in SYNTHETIC_DOMAINS}) == len(SYNTHETIC_DOMAINS)


def test_lm_domain_classifier_parses_codes_and_falls_back():
    prompts = []

    def generate_fn(ps):
        prompts.extend(ps)
        return ["11", "The answer is 92.", "I am not sure", "code 99 then 60"]

    clf = LMDomainClassifier(generate_fn, label="code_name")
    qs = ["q about primes", "q about enzymes", "A circle and a triangle.", "dice"]
    assert clf(qs) == ["11 Number theory", "92 Biology and other natural sciences", "51 Geometry",
                       "60 Probability theory and stochastic processes"]
    assert clf.fallbacks == 1 and "97 Mathematics education" in prompts[0] and prompts[0].rstrip().endswith("code only.")


# ------------------------------------------------------------------------------------------------------ decontamination


def test_decontamination_catches_paraphrases_of_real_eval_problems(shared_data_dir):
    counts, questions = load_eval_questions(["aime24", "math500"], str(shared_data_dir))
    assert counts == {"aime24": 30, "math500": 500}
    index = build_ngram_index(questions, 8)
    aime = read_eval_questions(str(shared_data_dir / "aime24.jsonl"))[0]
    math = read_eval_questions(str(shared_data_dir / "math500.jsonl"))[10]
    aw, mw = normalize_words(aime), normalize_words(math)
    pool = make_synthetic_pool(120, seed=5)
    clean = [dict(r) for r in pool.rows[:100]]
    planted = [
        _row("Paraphrased: " + " ".join(aw[5:14]).upper() + " -- what is the total time in minutes?"),
        _row("A friend asked: " + " ".join(mw[2:11]) + ". Answer carefully."),
        _row(" ".join(aw[5:12]) + " plus unrelated words here."),  # only 7 shared words: not contamination
    ]
    rows = _with_ids(clean + planted)
    kept, drops = decontaminate(rows, index, 8)
    assert sorted(d.row_id for d in drops) == [100, 101]
    assert {r["_row_id"] for r in kept} == set(range(100)) | {102}
    assert all(d.stage == "decontamination" and d.rule == "eval_ngram_overlap" for d in drops)


def test_decontamination_short_eval_question_and_missing_sets(tmp_path):
    f = tmp_path / "tiny.jsonl"
    f.write_text(json.dumps({"question": "Simplify $\\sqrt{242}$."}) + "\n")
    counts, qs = load_eval_questions([str(f)])
    rows = _with_ids([_row("Please simplify $\\sqrt{242}$ now."), _row("Please simplify $\\sqrt{243}$ now.")])
    kept, drops = decontaminate(rows, build_ngram_index(qs, 8, min_words=3), 8)
    assert [d.row_id for d in drops] == [0] and len(kept) == 1
    with pytest.raises(ValueError, match="'nope' not found"):
        load_eval_questions(["nope"], str(tmp_path), use_benchmarks=False)
    assert load_eval_questions(["nope"], str(tmp_path), skip_missing=True, use_benchmarks=False) == ({"nope": -1}, [])


# ----------------------------------------------------------------------------------------------- pipeline and outputs


def _sample_cfg(tmp_path, n=40):
    cfg = default_config()
    cfg.decontam.enabled = True
    cfg.diversity.num_select = n
    cfg.diversity.preselect.rules = [{"source_contains": ["aime", "gpqa"], "min_trace_tokens": 0}]
    cfg.output.dir = str(tmp_path / "out")
    return cfg


def test_pipeline_outputs_parse_and_counts_add_up(tmp_path):
    pool = make_synthetic_pool(300, seed=0, eval_questions=["Every morning Aya goes for a nine kilometer long walk and stops"])
    cfg = _sample_cfg(tmp_path)
    result = run_curation(pool.rows, cfg, eval_questions=["Every morning Aya goes for a nine kilometer long walk and stops"])
    names = [s for s, _ in result.stages]
    assert names == ["loaded", "decontaminated", "quality:api_errors", "quality:formatting", "quality:dedup", "difficulty", "diversity"]
    counts = [n for _, n in result.stages]
    assert counts[0] == 300 and counts[-1] == 40 and counts == sorted(counts, reverse=True)
    table = result.drop_table()
    assert sum(sum(v.values()) for v in table.values()) == 300 - 40
    assert table["decontamination"] == {"eval_ngram_overlap": 1}
    assert sum(table["quality"].values()) == counts[1] - counts[4]
    paths = write_outputs(result, cfg.output.dir, "sel")
    import pyarrow.parquet as pq

    table_pq = pq.read_table(paths["parquet"])
    assert table_pq.column_names == list(OUTPUT_COLUMNS) and table_pq.num_rows == 40
    first = table_pq.slice(0, 1).to_pylist()[0]
    assert isinstance(first["thinking_trajectories"], list) and first["trace_tokens"] > 0 and first["domain"]
    lines = [json.loads(x) for x in pathlib.Path(paths["jsonl"]).read_text().splitlines()]
    assert [x["question"] for x in lines] == table_pq.column("question").to_pylist()
    report = json.loads(pathlib.Path(paths["report"]).read_text())
    assert [s["rows"] for s in report["stages"]] == counts and sum(report["domains_after_selection"].values()) == 40
    assert pathlib.Path(paths["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drops = [json.loads(x) for x in pathlib.Path(paths["drops"]).read_text().splitlines()]
    assert len(drops) == 260 and len({d["row_id"] for d in drops}) == 260
    assert "quality:near_duplicate" in format_report(result)
    from s1jax.data.s1k import load_s1k_rows  # the SFT loader reads the selection like hub s1K

    assert len(load_s1k_rows(paths["parquet"])) == 40 and len(load_s1k_rows(paths["jsonl"])) == 40


def test_pipeline_uses_domain_column_and_injected_classifier(tmp_path):
    pool = make_synthetic_pool(200, seed=0)
    rows = [dict(r, domain="fixed" if i % 2 else "") for i, r in enumerate(pool.rows)]
    cfg = _sample_cfg(tmp_path, n=20)
    cfg.decontam.enabled = False
    seen = []
    result = run_curation(rows, cfg, domain_classifier=lambda qs: seen.extend(qs) or ["injected"] * len(qs))
    assert set(result.domains_before) == {"fixed", "injected"} and result.details["domains_classified"] == len(seen)
    again = run_curation(rows, cfg, domain_classifier=lambda qs: ["injected"] * len(qs))
    assert [r["_row_id"] for r in again.selected] == [r["_row_id"] for r in result.selected]


def test_bad_inputs_raise_clear_errors(tmp_path):
    cfg = _sample_cfg(tmp_path)
    cfg.decontam.enabled = False
    with pytest.raises(ValueError, match="pool is empty"):
        run_curation([], cfg)
    bad = [{k: v for k, v in _row("q").items() if k not in ("attempt", "solution")}]
    with pytest.raises(ValueError, match=r"missing required columns \['solution', 'attempt'\]"):
        run_curation(bad, cfg)
    cfg.diversity.num_select = 10_000
    with pytest.raises(ValueError, match="num_select=10000 is larger than the pool"):
        run_curation(make_synthetic_pool(120, seed=0).rows, cfg)
    cfg.diversity.num_select = 5
    cfg.diversity.preselect.rules = [{"source_contains": [], "min_trace_tokens": 0}]  # everything is pre-selected
    with pytest.raises(ValueError, match="match diversity.preselect"):
        run_curation(make_synthetic_pool(120, seed=0).rows, cfg)
    cfg.diversity.preselect.on_overflow = "truncate"
    assert len(run_curation(make_synthetic_pool(120, seed=0).rows, cfg).selected) == 5


def test_cli_sample_config_runs_offline(tmp_path, capsys):
    from s1jax.cli.curate import main

    out = tmp_path / "cli"
    rc = main([f"--config={REPO / 'configs/curate/sample.py'}", f"--config.output.dir={out}", "--config.diversity.num_select=50"])
    text = capsys.readouterr().out
    assert rc == 0 and "quality:formatting" in text and "diversity" in text
    assert (out / "s1k_sample.parquet").is_file() and (out / "domains.png").is_file()
    report = json.loads((out / "stage_report.json").read_text())
    assert report["stages"][-1] == {"stage": "diversity", "rows": 50}
    rc = main([f"--config={REPO / 'configs/curate/sample.py'}", f"--config.pool.source={tmp_path / 'missing.jsonl'}"])
    assert rc == 2 and "cannot load pool" in capsys.readouterr().err


def test_s1k_config_is_the_paper_recipe():
    from s1jax.config import load_config_file

    cfg = load_config_file(str(REPO / "configs/curate/s1k.py"))
    assert cfg.pool.source == "simplescaling/data_ablation_full59K" and cfg.diversity.num_select == 1000
    assert cfg.decontam.ngram == 8 and set(cfg.decontam.eval_sets) == {"aime24", "math500", "gpqa_diamond"}
    assert [m["name"] for m in cfg.difficulty.models] == ["qwen2.5-7b-instruct", "qwen2.5-32b-instruct"]
