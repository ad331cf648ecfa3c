"""Diversity stage of s1K curation: domain labels (MSC) and the paper's Algorithm 1.

s1 labels every remaining question with a Mathematics Subject Classification domain (Claude in the paper) and then
samples: keep a pre-selected set (correct AIME/GPQA items, long MATH traces), then repeatedly pick a *domain* uniformly
at random and, inside it, a question with weight ``2^-rank`` where rank 0 is the longest reasoning trace. Uniform
domains give breadth; the steep power law gives difficulty (long traces) inside each domain.

Domain labels come from a column when the pool has one, else from a pluggable classifier: the deterministic
keyword rules over ``msc.json`` (offline default) or :class:`LMDomainClassifier`, which prompts a model through an
injected ``generate_fn`` (see ``make_model_solver`` for the s1jax.generate adapter).
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from s1jax.curation.difficulty import solved_value

__all__ = [
    "load_msc",
    "KeywordDomainClassifier",
    "LMDomainClassifier",
    "is_preselected",
    "select_diverse",
    "DomainClassifier",
]

DomainClassifier = Callable[[list[str]], list[str]]
_MSC_PATH = os.path.join(os.path.dirname(__file__), "msc.json")


@functools.lru_cache(maxsize=4)
def _load_msc_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_msc(path: str | None = None) -> dict[str, Any]:
    """The MSC table: ``{"default_code": "00", "codes": [{"code", "name", "keywords"}, ...]}`` (codes 00-97)."""
    return _load_msc_file(path or _MSC_PATH)


def _keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str]:
    # One alternation, longest first, so a phrase ("perfect square") wins over its parts ("square"); alphanumeric
    # look-arounds instead of \b so keywords ending in ")" or "'" still match; optional plural s/es.
    alternatives = sorted({re.escape(k.lower()) for k in keywords}, key=len, reverse=True)
    return re.compile(r"(?<![0-9a-z])(" + "|".join(alternatives) + r")(?:s|es)?(?![0-9a-z])")


class KeywordDomainClassifier:
    """Deterministic offline domain labels: the MSC code whose keywords cover the most words of the question.

    The text is scanned once for all keywords (longest match wins where they overlap); a code's score is the total
    word count of its *distinct* matched keywords, so specific phrases beat single generic words ("perfect square"
    -> number theory, not geometry). Ties go to the lower code; no match at all goes
    to ``default_code`` (00, "General and overarching topics"). The result is a reproducible approximation of the
    paper's Claude labels, good enough for uniform-over-domains sampling, not a substitute for an LM classifier.
    """

    def __init__(self, msc: Mapping[str, Any] | None = None, default_code: str | None = None, label: str = "name"):
        msc = msc or load_msc()
        self.codes: list[tuple[str, str]] = [(c["code"], c["name"]) for c in msc["codes"]]
        self.names = dict(self.codes)
        self.default_code = default_code or msc.get("default_code", "00")
        if self.default_code not in self.names:
            raise ValueError(f"default MSC code {self.default_code!r} is not in the MSC table")
        if label not in ("name", "code", "code_name"):
            raise ValueError(f"domain label must be 'name', 'code' or 'code_name', got {label!r}")
        self.label = label
        self._codes_of: dict[str, list[str]] = collections.defaultdict(list)
        for c in msc["codes"]:
            for k in c.get("keywords", []):
                self._codes_of[k.lower()].append(c["code"])
        self._order = {code: i for i, (code, _) in enumerate(self.codes)}
        self._pattern = _keyword_pattern(self._codes_of)

    def label_of(self, code: str) -> str:
        """The domain string written to the ``domain`` column for an MSC code."""
        if self.label == "code":
            return code
        if self.label == "code_name":
            return f"{code} {self.names[code]}"
        return self.names[code]

    def classify_code(self, text: str) -> str:
        scores: dict[str, int] = collections.Counter()
        for keyword in {m.group(1) for m in self._pattern.finditer(text.lower())}:
            for code in self._codes_of[keyword]:
                scores[code] += len(keyword.split())
        if not scores:
            return self.default_code
        return min(scores, key=lambda code: (-scores[code], self._order[code]))  # ties: the lower code

    def __call__(self, questions: list[str]) -> list[str]:
        return [self.label_of(self.classify_code(q)) for q in questions]


_PROMPT = (
    "Classify the question below into exactly one top-level Mathematics Subject Classification (MSC2020) code. "
    "The codes also cover physics, chemistry and biology (92), economics (91) and computer science (68).\n\n"
    "{codes}\n\nQuestion:\n{question}\n\nReply with the two-digit code only."
)


class LMDomainClassifier:
    """Domain labels from a language model prompted with the MSC code list (the paper used Claude 3.5 Sonnet).

    ``generate_fn(prompts) -> responses`` is injected (``make_model_solver(..., response="answer")`` wraps
    s1jax.generate), so this class is testable without a model. The first valid two-digit code in a response wins;
    a response without one falls back to the keyword classifier and is counted in ``fallbacks``.
    """

    def __init__(self, generate_fn: Callable[[list[str]], list[str]], msc: Mapping[str, Any] | None = None, label: str = "name"):
        self.generate_fn = generate_fn
        self.keywords = KeywordDomainClassifier(msc, label=label)
        self.code_list = "\n".join(f"{code} {name}" for code, name in self.keywords.codes)
        self.fallbacks = 0

    def prompt(self, question: str) -> str:
        return _PROMPT.format(codes=self.code_list, question=question)

    def parse(self, response: str) -> str | None:
        for m in re.finditer(r"(?<!\d)(\d{2})(?!\d)", response or ""):
            if m.group(1) in self.keywords.names:
                return m.group(1)
        return None

    def __call__(self, questions: list[str]) -> list[str]:
        responses = self.generate_fn([self.prompt(q) for q in questions])
        if len(responses) != len(questions):
            raise ValueError(f"domain classifier returned {len(responses)} responses for {len(questions)} questions")
        labels = []
        for q, r in zip(questions, responses):
            code = self.parse(r)
            if code is None:
                self.fallbacks += 1
                code = self.keywords.classify_code(q)
            labels.append(self.keywords.label_of(code))
        return labels


def is_preselected(row: Mapping[str, Any], rules: Sequence[Mapping[str, Any]], require_correct_column: str = "") -> bool:
    """Whether a row belongs to Algorithm 1's pre-selected set.

    A rule matches when ``source_type`` contains one of ``source_contains`` (case-insensitive) and the trace has at
    least ``min_trace_tokens`` tokens. s1: all AIME and GPQA items, plus MATH items with traces over 5,600 tokens,
    each only if the teacher's attempt was correct (``require_correct_column`` names that column, if the pool has it).
    """
    if require_correct_column:
        if solved_value(row.get(require_correct_column)) is not True:
            return False
    source = str(row.get("source_type") or "").lower()
    for rule in rules:
        subs = [s.lower() for s in rule.get("source_contains", [])]
        if subs and not any(s in source for s in subs):
            continue
        if int(row.get("trace_tokens", 0)) >= int(rule.get("min_trace_tokens", 0)):
            return True
    return False


def select_diverse(
    preselected: Sequence[dict[str, Any]], candidates: Sequence[dict[str, Any]], num_select: int, seed: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Algorithm 1 of the s1 paper: fill the pre-selected set up to ``num_select`` by domain-uniform sampling.

    Each round: choose a domain uniformly among those with candidates left; rank that domain's remaining questions by
    descending ``trace_tokens`` (rank 0 = longest; ties broken by pool order so the run is reproducible); draw one
    with probability proportional to ``2^-rank``; remove it. A seeded ``numpy.random.Generator`` drives both draws.
    Returns (selected rows in selection order, the domain drawn in each round).
    """
    if num_select <= 0:
        raise ValueError(f"num_select must be positive, got {num_select}")
    if len(preselected) > num_select:
        raise ValueError(f"{len(preselected)} pre-selected questions exceed num_select={num_select}")
    if len(preselected) + len(candidates) < num_select:
        raise ValueError(
            f"num_select={num_select} is larger than the pool: only {len(preselected)} pre-selected + "
            f"{len(candidates)} candidate questions are left after filtering"
        )
    by_domain: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in candidates:
        by_domain[str(row["domain"])].append(row)
    for rows in by_domain.values():
        rows.sort(key=lambda r: (-int(r["trace_tokens"]), r["_row_id"]))
    rng = np.random.default_rng(seed)
    selected = list(preselected)
    drawn: list[str] = []
    while len(selected) < num_select:
        domains = sorted(d for d, rows in by_domain.items() if rows)
        domain = domains[int(rng.integers(len(domains)))]
        pool = by_domain[domain]
        weights = np.exp2(-np.arange(len(pool), dtype=np.float64))
        pick = int(rng.choice(len(pool), p=weights / weights.sum()))
        selected.append(pool.pop(pick))
        drawn.append(domain)
    return selected, drawn
