"""Curation stages that run a language model, through the real generation engine with the tiny test model:
the difficulty stage (reference-model solvers via make_model_solver -> s1jax.generate, graded, trace lengths from the
tokenizer) and the LM domain classifier (build_domain_classifier loading a saved HF dir). Checks the shape of the
path (who sees which question, what is recorded, what is kept), not accuracy."""

from __future__ import annotations

import pytest

import s1jax
from gen_fixtures import QUESTIONS, load_tok, tiny_model, tokenizer_dir
from s1jax.curation import difficulty as cd
from s1jax.curation.solvers import make_default_grade_fn, make_model_solver
from s1jax.curation.pipeline import build_domain_classifier, default_config
from s1jax.curation.diversity import KeywordDomainClassifier, LMDomainClassifier
from s1jax.curation.text import trace_text

BATCH = 4
BUDGET = {"max_thinking_tokens": 12, "max_answer_tokens": 6, "temperature": 0.0, "batch_size": BATCH}
NEVER = "\u2400 no response contains this \u2400"


class Spy:
    """Counts s1jax.generate calls (questions per call) around the real function."""

    def __init__(self, real):
        self.real, self.batches = real, []

    def __call__(self, model, tok, questions, **kwargs):
        self.batches.append(list(questions))
        return self.real(model, tok, questions, **kwargs)


@pytest.fixture()
def spy(monkeypatch):
    from s1jax.inference.generate import generate

    s = Spy(generate)
    monkeypatch.setitem(vars(s1jax), "generate", s)
    return s


def _rows(solutions, col_a):
    rows = []
    for i, (q, sol) in enumerate(zip(QUESTIONS, solutions)):
        trace = f"step {i}: " + "Wait, " * i + q
        row = {"_row_id": i, "question": q, "solution": sol, "thinking_trajectories": [trace]}
        if col_a[i] is not None:
            row["a_correct"] = col_a[i]
        rows.append(row)
    return rows


def test_difficulty_stage_through_the_engine(spy):
    tok = load_tok()
    solver_a = make_model_solver("unused", budget_cfg=BUDGET, model=tiny_model(), tokenizer=tok)
    solver_b = make_model_solver("unused", budget_cfg=dict(BUDGET, max_cache_len=256),
                                    model=tiny_model(seed=1), tokenizer=tok)
    # model A has a precomputed grade for rows 0 (solved) and 5 (not); rows 1-4 go to its solver
    col_a = [True, None, None, None, None, "No"]
    unknown_a = QUESTIONS[1:5]

    # what each reference model answers (greedy: the same text again inside the stage)
    resp_a = dict(zip(unknown_a, solver_a(unknown_a)))
    resp_b = dict(zip(QUESTIONS, solver_b(QUESTIONS)))
    direct = s1jax.generate(tiny_model(), tok, unknown_a, budget=s1jax.Budget(max_thinking_tokens=12,
                                                                              max_answer_tokens=6), progress=False)
    assert [resp_a[q] for q in unknown_a] == [f"{r.thinking}\n{r.answer}" for r in direct]
    assert spy.batches[:3] == [unknown_a, QUESTIONS[:BATCH], QUESTIONS[BATCH:]]  # solver_b: chunks of batch_size

    # references: row 2 is answered by model A's own response, row 4 by model B's; the rest by nothing
    solutions = [NEVER] * len(QUESTIONS)
    solutions[2], solutions[4] = resp_a[QUESTIONS[2]], resp_b[QUESTIONS[4]]
    assert resp_b[QUESTIONS[4]] not in resp_a[QUESTIONS[4]]

    graded = []

    def grade_fn(response, reference):
        verdict = reference in response
        graded.append((response, reference, verdict))
        return verdict

    count = cd.make_token_counter(tokenizer_dir())
    models = [cd.ReferenceModel("tiny-a", column="a_correct", solver=solver_a),
              cd.ReferenceModel("tiny-b", solver=solver_b)]

    for short_circuit in (False, True):
        rows = _rows(solutions, col_a)
        spy.batches.clear()
        graded.clear()
        kept, drops, stats = cd.apply_difficulty(rows, models, grade_fn, count, short_circuit=short_circuit)

        # trace length from the tokenizer, on every row
        assert [r["trace_tokens"] for r in rows] == [len(tok.encode(trace_text(r))) for r in rows]

        # who generated what: A only for rows without a column value; B for every row (or, short-circuited, for
        # the rows A did not solve), each in batches of at most BATCH through s1jax.generate
        solved_a = {0} | {i for i in range(1, 5) if solutions[i] in resp_a[QUESTIONS[i]]}
        assert solved_a == {0, 2}
        seen_b = [q for i, q in enumerate(QUESTIONS) if not (short_circuit and i in solved_a)]
        expected_batches = [unknown_a] + [seen_b[i:i + BATCH] for i in range(0, len(seen_b), BATCH)]
        assert spy.batches == expected_batches

        # every solver response was graded against its row's reference, and is the model's deterministic output
        ref = {q: solutions[i] for i, q in enumerate(QUESTIONS)}
        assert graded == ([(resp_a[q], ref[q], QUESTIONS.index(q) in solved_a) for q in unknown_a]
                          + [(resp_b[q], ref[q], ref[q] in resp_b[q]) for q in seen_b])
        solved_b = {QUESTIONS.index(q) for q in seen_b if solutions[QUESTIONS.index(q)] in resp_b[q]}
        assert 4 in solved_b

        # solve info per reference model on every row; kept = solved by nobody; drops name the solvers
        for i, r in enumerate(rows):
            assert r["solved_by"] == [name for name, s in (("tiny-a", solved_a), ("tiny-b", solved_b)) if i in s]
        assert [r["_row_id"] for r in kept] == [i for i in range(len(QUESTIONS)) if i not in solved_a | solved_b]
        assert {d.row_id: d.detail for d in drops} == {
            i: "solved by " + ", ".join(rows[i]["solved_by"]) for i in sorted(solved_a | solved_b)}
        assert all(d.stage == "difficulty" and d.rule == "solved_by_reference" for d in drops)
        assert stats["tiny-a"] == {"checked": 6, "from_column": 2, "from_solver": 4, "solved": len(solved_a)}
        assert stats["tiny-b"] == {"checked": len(seen_b), "from_column": 0, "from_solver": len(seen_b),
                                   "solved": len(solved_b)}


def test_lm_domain_classifier_through_the_engine(spy, tmp_path):
    model_dir = tmp_path / "tiny_hf"
    s1jax.save_model(tiny_model(), str(model_dir), format="hf", tokenizer_path=tokenizer_dir())
    cfg = default_config()
    cfg.diversity.classifier = "lm"
    cfg.diversity.domain_label = "code_name"
    cfg.diversity.lm.model_path = str(model_dir)
    cfg.diversity.lm.budget = {"max_thinking_tokens": 4, "max_answer_tokens": 4, "temperature": 0.0,
                               "batch_size": BATCH, "dtype": "float32"}
    clf = build_domain_classifier(cfg)
    assert isinstance(clf, LMDomainClassifier)

    questions = QUESTIONS[:BATCH]
    labels = clf(questions)
    assert spy.batches == [[clf.prompt(q) for q in questions]]  # one batched generate over the classifier prompts
    keywords = KeywordDomainClassifier(label="code_name")
    valid = {keywords.label_of(code) for code, _ in keywords.codes}
    assert len(labels) == len(questions) and set(labels) <= valid
    assert 0 <= clf.fallbacks <= len(questions)
    # a response without a valid code falls back to the keyword rules for that question
    parsed = [clf.parse(r) for r in _answers(model_dir, [clf.prompt(q) for q in questions])]
    for q, code, label in zip(questions, parsed, labels):
        assert label == keywords.label_of(code if code is not None else keywords.classify_code(q))
    assert clf.fallbacks == sum(code is None for code in parsed)


def _answers(model_dir, prompts):
    """The answer-phase text the classifier saw, regenerated from the same saved model (greedy)."""
    model = s1jax.load_model(str(model_dir), dtype="float32")
    tok = s1jax.load_tokenizer(str(model_dir))
    budget = s1jax.Budget(max_thinking_tokens=4, max_answer_tokens=4)
    return [r.answer for r in s1jax.generate(model, tok, prompts, budget=budget, progress=False)]
