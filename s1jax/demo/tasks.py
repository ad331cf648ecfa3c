"""An offline generator of s1K-format reasoning problems for the demo, where thinking is what makes them solvable.

Every problem is a chain of small integer operations (1 to ``max_steps`` of them). The thinking trace writes one
operation per line with its intermediate result, so the trace grows with the chain and the final answer needs every
line: a model that is cut off after k lines has only the first k intermediate results. Three task families give
the diversity stage its domains:

* ``arithmetic``: "Compute 13 + 5 - 8 + 7 from left to right." -> "13 + 5 = 18.\\n18 - 8 = 10.\\n10 + 7 = 17."
* ``word_problem``: a person gains and loses objects ("Mia has 12 marbles. She finds 7 more, and then gives away 5.
  How many marbles does Mia have now?"), one sentence per event in the trace.
* ``multi_op``: start from a number and apply doublings / triplings / additions / subtractions.

Rows have the s1K columns (question, solution, cot_type, source_type, metadata, thinking_trajectories, attempt);
the attempt is ``\\boxed{answer}``. :func:`make_demo_data` builds a held-out eval set first, then a training pool
with no question in common with it, then plants a few defective rows (one per quality rule the demo exercises) and
a few copies of eval questions (for decontamination), so each curation stage has something real to do. Everything
is a pure function of the seed.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from typing import Any

from s1jax.curation.decontam import build_ngram_index
from s1jax.curation.text import normalize_text, normalize_words, word_ngrams

__all__ = ["DOMAINS", "Task", "make_task", "make_tasks", "DemoData", "make_demo_data", "PLANTED_RULES"]

DOMAINS: tuple[str, ...] = ("arithmetic", "word_problem", "multi_op")

_NAMES = ("Mia", "Tom", "Ava", "Leo", "Sara", "Omar", "Nina", "Ben", "Lucy", "Ravi", "Emma", "Jack")
_PRONOUN = {"Mia": "She", "Tom": "He", "Ava": "She", "Leo": "He", "Sara": "She", "Omar": "He", "Nina": "She",
            "Ben": "He", "Lucy": "She", "Ravi": "He", "Emma": "She", "Jack": "He"}
_OBJECTS = ("marbles", "apples", "coins", "stickers", "books", "pencils", "cards", "shells", "stamps", "cookies")
_GAIN = ("finds {n} more", "buys {n} more", "gets {n} more from a friend", "wins {n} more")
_LOSE = ("gives away {n}", "loses {n}", "sells {n}", "gives {n} to a neighbour")
_MULTI_OPEN = ("Start with {x}.", "Take the number {x}.", "Begin at {x}.")
_MULTI_CLOSE = ("What number do you get?", "What is the result?", "What is the final number?")


@dataclasses.dataclass(frozen=True)
class Task:
    """One problem: its question, one line of thinking per operation, and the integer answer."""

    id: str
    domain: str
    question: str
    steps: tuple[str, ...]  # the lines of the thinking trace
    answer: int
    num_ops: int  # operations in the chain (word problems add an opening and a closing line to the trace)

    @property
    def thinking(self) -> str:
        return "\n".join(self.steps)

    @property
    def attempt(self) -> str:
        return f"\\boxed{{{self.answer}}}"

    def s1k_row(self) -> dict[str, Any]:
        """The task as an s1K row (the columns of simplescaling/s1K)."""
        return {
            "question": self.question,
            "solution": f"{self.thinking}\nThe answer is $\\boxed{{{self.answer}}}$.",
            "cot_type": "math",
            "source_type": f"s1jax-demo/{self.domain}",
            "metadata": json.dumps({"id": self.id, "domain": self.domain, "num_ops": self.num_ops}),
            "thinking_trajectories": [self.thinking],
            "attempt": self.attempt,
            "domain": self.domain,
            "id": self.id,
        }

    def eval_row(self) -> dict[str, Any]:
        """The task as an evaluation row (``problem`` / ``answer``, as MATH500 names them)."""
        return {"id": self.id, "problem": self.question, "answer": str(self.answer), "domain": self.domain,
                "num_ops": self.num_ops}


def _chain(rng: random.Random, start: int, n: int, *, allow_mul: bool, hi: int) -> list[tuple[str, int, int]]:
    """``n`` operations (op, operand, result) from ``start``: operands 1-9 (x2 / x3 for products), results in
    [0, hi]. Single-digit operands keep every line within what a 135M model can compute; the chain is the hard part."""
    ops: list[tuple[str, int, int]] = []
    x = start
    for _ in range(n):
        choices = ["+", "-"] + (["*"] if allow_mul and 2 * x <= hi else [])
        op = rng.choice(choices)
        if op == "-" and x < 2:
            op = "+"
        if op == "+" and x >= hi:
            op = "-"
        if op == "+":
            v = rng.randint(1, min(9, hi - x))
            y = x + v
        elif op == "-":
            v = rng.randint(1, min(9, x))
            y = x - v
        else:
            v = rng.choice([2, 3]) if 3 * x <= hi else 2
            y = x * v
        ops.append((op, v, y))
        x = y
    return ops


def _arithmetic(rng: random.Random, n: int) -> tuple[str, list[str], int]:
    x0 = rng.randint(2, 20)
    ops = _chain(rng, x0, n, allow_mul=False, hi=50)
    expr = " ".join([str(x0)] + [f"{op} {v}" for op, v, _ in ops])
    question = rng.choice((
        f"Compute {expr} from left to right.",
        f"What is {expr}? Work from left to right.",
        f"Evaluate {expr}, one operation at a time.",
    ))
    steps, x = [], x0
    for op, v, y in ops:
        steps.append(f"{x} {op} {v} = {y}.")
        x = y
    return question, steps, x


def _word_problem(rng: random.Random, n: int) -> tuple[str, list[str], int]:
    name, obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    pron = _PRONOUN[name]
    x0 = rng.randint(3, 20)
    ops = _chain(rng, x0, n, allow_mul=False, hi=50)
    events = [rng.choice(_GAIN if op == "+" else _LOSE).format(n=v) for op, v, _ in ops]
    if len(events) == 1:
        story = f"{pron} {events[0]}."
    else:
        story = f"{pron} " + ", then ".join(events[:-1]) + f", and then {events[-1]}."
    question = f"{name} has {x0} {obj}. {story} How many {obj} does {name} have now?"
    steps, x = [f"{name} starts with {x0} {obj}."], x0
    for (op, v, y), ev in zip(ops, events):
        steps.append(f"{pron} {ev}: {x} {op} {v} = {y}.")
        x = y
    steps.append(f"So {name} has {x} {obj}.")
    return question, steps, x


def _multi_op(rng: random.Random, n: int) -> tuple[str, list[str], int]:
    x0 = rng.randint(2, 12)
    ops = _chain(rng, x0, n, allow_mul=True, hi=60)
    words = {"+": "add {v}", "-": "subtract {v}", "*": "multiply by {v}"}
    parts = [words[op].format(v=v) for op, v, _ in ops]
    if len(parts) > 1:
        parts[-1] = "then " + parts[-1]
    instr = ", ".join(parts)
    question = f"{rng.choice(_MULTI_OPEN).format(x=x0)} {instr[0].upper() + instr[1:]}. {rng.choice(_MULTI_CLOSE)}"
    steps, x = [], x0
    for op, v, y in ops:
        steps.append(f"{x} {op} {v} = {y}.")
        x = y
    return question, steps, x


_FAMILIES = {"arithmetic": _arithmetic, "word_problem": _word_problem, "multi_op": _multi_op}


def make_task(domain: str, num_steps: int, rng: random.Random, task_id: str) -> Task:
    if domain not in _FAMILIES:
        raise ValueError(f"unknown demo task domain {domain!r}; available: {DOMAINS}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    question, steps, answer = _FAMILIES[domain](rng, num_steps)
    return Task(task_id, domain, question, tuple(steps), int(answer), num_steps)


def _key(question: str) -> str:
    return normalize_text(question)


def make_tasks(
    n: int, *, seed: int, prefix: str, min_steps: int = 1, max_steps: int = 5,
    domains: Sequence[str] = DOMAINS, exclude: set[str] | None = None,
) -> list[Task]:
    """``n`` distinct tasks, domains in rotation, step counts uniform in [min_steps, max_steps].

    Questions whose normalised text is in ``exclude`` (or already generated) are redrawn, so the pool and the eval
    set never share a question by accident.
    """
    rng = random.Random(f"s1jax-demo:{prefix}:{seed}")
    seen = set(exclude or ())
    tasks: list[Task] = []
    tries = 0
    while len(tasks) < n:
        tries += 1
        if tries > 50 * n + 100:
            raise RuntimeError(f"could not draw {n} distinct demo tasks (got {len(tasks)})")
        domain = domains[len(tasks) % len(domains)]
        t = make_task(domain, rng.randint(min_steps, max_steps), rng, f"{prefix}-{domain}-{len(tasks):04d}")
        k = _key(t.question)
        if k in seen:
            continue
        seen.add(k)
        tasks.append(t)
    return tasks


# Quality rules of s1jax.curation.quality that the planted rows trip, one row each.
PLANTED_RULES: tuple[str, ...] = ("api_error", "image_reference", "unbalanced_delimiters", "exact_duplicate")


@dataclasses.dataclass
class DemoData:
    """The demo's raw pool (with planted defects and eval copies) and its held-out eval set."""

    pool: list[dict[str, Any]]
    eval_tasks: list[Task]
    planted: dict[str, list[str]]  # quality rule or "contamination" -> ids of the rows planted to trip it

    @property
    def eval_rows(self) -> list[dict[str, Any]]:
        return [t.eval_row() for t in self.eval_tasks]


def _shares_ngram(question: str, index: set[tuple[str, ...]], n: int) -> bool:
    words = normalize_words(question)
    return len(words) >= n and any(g in index for g in word_ngrams(words, n))


def _planted_defects(rng: random.Random, clean: list[Task], eval_tasks: list[Task], ngram: int
                     ) -> list[tuple[str, dict[str, Any]]]:
    """Rows that a careful curator must drop, as ``(rule, row)``; built from clean tasks and then broken.

    The tasks they are built from share no ``ngram``-gram with an eval question, so decontamination (which runs
    first) cannot take the row before the rule it was planted for sees it.
    """
    index = build_ngram_index([t.question for t in eval_tasks], ngram)
    eligible = [t for t in clean if not _shares_ngram(t.question, index, ngram)]
    out = []
    base = [t.s1k_row() for t in rng.sample(eligible, 4)]
    r = dict(base[0], thinking_trajectories=["Error: 429 Too Many Requests (rate limit exceeded)"])
    out.append(("api_error", r))
    r = dict(base[1], question=base[1]["question"] + " Use the numbers shown in the figure below.")
    out.append(("image_reference", r))
    r = dict(base[2], attempt=base[2]["attempt"][:-1])  # "\boxed{63" - the closing brace was lost
    out.append(("unbalanced_delimiters", r))
    out.append(("exact_duplicate", dict(base[3])))
    return out


def make_demo_data(
    *, num_pool: int, num_eval: int, seed: int = 0, min_steps: int = 1, max_steps: int = 5,
    eval_min_steps: int = 2, eval_max_steps: int = 5, num_contaminated: int = 3, ngram: int = 8,
) -> DemoData:
    """Eval set first, then a disjoint training pool, then planted defects and eval copies, shuffled together.

    Pool rows get unique ids ``{prefix}-{domain}-{index}``; planted rows get ``planted-{rule}-{k}``. Eval copies
    are word problems (long enough to share an 8-gram with their original; short arithmetic questions are below
    the decontamination n-gram length, as in s1).
    """
    eval_tasks = make_tasks(num_eval, seed=seed, prefix="eval", min_steps=eval_min_steps, max_steps=eval_max_steps)
    eval_keys = {_key(t.question) for t in eval_tasks}
    clean = make_tasks(num_pool, seed=seed, prefix="train", min_steps=min_steps, max_steps=max_steps,
                       exclude=eval_keys)
    rng = random.Random(f"s1jax-demo:plant:{seed}")
    rows = [t.s1k_row() for t in clean]
    planted: dict[str, list[str]] = {}
    for k, (rule, row) in enumerate(_planted_defects(rng, clean, eval_tasks, ngram)):
        row = dict(row, id=f"planted-{rule}-{k}")
        planted.setdefault(rule, []).append(row["id"])
        rows.append(row)
    long_evals = [t for t in eval_tasks if t.domain == "word_problem"] or list(eval_tasks)
    for k, t in enumerate(rng.sample(long_evals, min(num_contaminated, len(long_evals)))):
        # A copy with a different trace and the question's spacing/case changed: only n-gram matching catches it.
        row = dict(t.s1k_row(), id=f"planted-contamination-{k}", question=t.question.replace(". ", ".  ").lower())
        planted.setdefault("contamination", []).append(row["id"])
        rows.append(row)
    rng.shuffle(rows)
    # Duplicates are dropped as "keep the first occurrence": the copy goes last so the original is the one kept.
    dup = [r for r in rows if r["id"].startswith("planted-exact_duplicate")]
    rows = [r for r in rows if not r["id"].startswith("planted-exact_duplicate")] + dup
    return DemoData(pool=rows, eval_tasks=eval_tasks, planted=planted)
