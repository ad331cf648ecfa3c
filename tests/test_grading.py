"""Grading: agreement with MATH500 / AIME24 references, extraction variants, and hostile model text."""

from __future__ import annotations

import json
import time

import pytest

from s1jax.eval import grading
from s1jax.eval.benchmarks import load_benchmark
from s1jax.eval.grading import extract_answer, grade, grade_response, last_boxed, normalize_answer


@pytest.fixture(scope="module")
def math500(shared_data_dir):
    return [json.loads(line) for line in open(shared_data_dir / "math500.jsonl", encoding="utf-8")]


@pytest.fixture(scope="module")
def aime(shared_data_dir):
    return load_benchmark("aime24", str(shared_data_dir / "aime24.jsonl"))


def test_last_boxed_balanced_and_fbox():
    assert last_boxed(r"a \boxed{1} b \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert last_boxed(r"\fbox{7} then cut \boxed{\frac{1}{") == "7"  # truncated last box: take the earlier one
    assert last_boxed(r"so \boxed 5$") == "5"
    assert last_boxed("no box") is None


def test_extraction_prefers_answer_phase():
    resp = r"think \boxed{1} ...<|im_start|>answer" + "\nFinal Answer: The answer is 7"
    assert extract_answer(resp, "math") == "The answer is 7"
    assert grade(resp, "7", "math")
    assert not grade(resp, "1", "math")  # the box inside the thinking does not count
    assert extract_answer("Answer:\n\n  42\n", "aime") == "42"


def test_math500_reference_solutions_agree(math500):
    t0 = time.time()
    agree = sum(grade(r["solution"], r["answer"], "math") for r in math500)
    rate = agree / len(math500)
    print(f"\nMATH500 boxed-solution vs answer agreement: {agree}/{len(math500)} = {rate:.2%} ({time.time() - t0:.1f}s)")
    assert rate >= 0.99


def test_math500_other_items_answers_graded_wrong(math500):
    n = len(math500)
    pairs = [(r, math500[(i + 1) % n]["answer"]) for i, r in enumerate(math500)
             if normalize_answer(r["answer"], "math") != normalize_answer(math500[(i + 1) % n]["answer"], "math")]
    wrong = sum(not grade(r["solution"], other, "math") for r, other in pairs)
    print(f"\nMATH500 cross-item answers graded wrong: {wrong}/{len(pairs)} = {wrong / len(pairs):.2%}")
    assert len(pairs) >= 490
    assert wrong / len(pairs) >= 0.97


def test_aime_variants_and_cross(aime):
    for i, it in enumerate(aime):
        a = int(it.answer)
        for variant in (f"\\boxed{{{a:03d}}}", f"Final Answer: {a}", f"<|im_start|>answer\nFinal Answer: $\\boxed{{{a}}}$.",
                        f"Answer: {a:03d}", f"The final answer is \\boxed{{{a}}}"):
            assert grade(variant, it.answer, "aime"), (variant, it.answer)
        other = aime[(i + 1) % len(aime)].answer
        if int(other) != a:
            assert not grade(f"\\boxed{{{other}}}", it.answer, "aime")
            assert not grade(f"Final Answer: {other}", it.answer, "aime")


def test_math_equivalences():
    cases = [(r"\boxed{\dfrac{1}{2}}", r"\frac12"), (r"\boxed{0.5}", r"\frac{1}{2}"),
             (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3,\frac{\pi}{2})"), (r"\boxed{30^\circ}", "30"),
             (r"\boxed{[2, 5)}", "[2,5)"), (r"\boxed{2\sqrt{3}}", r"2 \sqrt 3"), (r"\boxed{\text{Evelyn}}", "Evelyn")]
    for resp, ref in cases:
        assert grade(resp, ref, "math"), (resp, ref)
    assert not grade(r"\boxed{(2,5)}", "[2,5)", "math")
    assert not grade(r"\boxed{\sqrt{2}}", "2", "math")


def test_gpqa_letters():
    assert grade("<|im_start|>answer\nAnswer: (B)", "B", "gpqa")
    assert grade(r"\boxed{C}", "C", "gpqa")
    assert grade("**Final Answer:** D) 42 kJ", "D", "gpqa")
    assert not grade("Answer: A", "B", "gpqa")
    assert normalize_answer("(c)", "gpqa") == "C"


def test_hostile_inputs_run_nothing_and_fail_fast(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    hostile = [
        rf"\boxed{{{code}}}",
        f"Final Answer: {code}",
        f"Answer: import os; os.system('touch {marker}')",
        "```python\nimport os\nos.system('touch " + str(marker) + "')\n```\nFinal Answer: " + code,
        r"\boxed{10^{10^{10}}}",
        "Final Answer: 10^10^10",
        r"\boxed{9^{99999999}}",
        r"\boxed{(9^{9999})^{9999}}",  # passes the pre-checks: stopped by the worker's hard time limit
        r"\boxed{" + "(" * 10_000 + ")" * 10_000 + "}",
        r"\boxed{" + "{" * 10_000 + "}" * 10_000 + "}",
        "x" * (1 << 20) + r"\boxed{5}",
        r"\boxed{" + "1" * (1 << 20) + "}",
    ]
    for text in hostile:
        t0 = time.time()
        g = grade_response(text, "5", "math", timeout_s=2.0)
        assert not g.correct
        assert time.time() - t0 < 4.0, text[:60]
    assert not marker.exists()


def test_worker_hard_timeout_kills_and_recovers():
    t0 = time.time()
    status, _ = grading._WORKER.call(("sleep", 30), timeout_s=0.5)
    assert status == "timeout"
    assert time.time() - t0 < 5.0
    assert grade(r"\boxed{\frac{2}{4}}", r"\frac12", "math")  # a fresh worker takes over


def test_math500_math_verify_path_alone_agrees(math500):
    """The fast path settles every item above; check the symbolic path on its own (no string shortcut)."""
    t0 = time.time()
    agree = 0
    for r in math500:
        status, ok = grading._WORKER.call(("verify", r["answer"], last_boxed(r["solution"]), 5), 10.0)
        agree += status == "ok" and bool(ok)
    print(f"\nMATH500 math_verify-only agreement: {agree}/{len(math500)} ({time.time() - t0:.1f}s)")
    assert agree / len(math500) >= 0.99
