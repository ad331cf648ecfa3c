"""A deterministic synthetic question pool in the s1 59K schema, with planted defects.

Why: the real pool (simplescaling/data_ablation_full59K) needs the hub, so the offline sample recipe, the docs'
stage report and the tests run on this instead. Clean rows are built from domain topic sentences (each contains
three keywords of one MSC domain, so the keyword classifier recovers the intended domain) plus random filler words
(so no two clean rows are near-duplicates), with reasoning traces of varied length and precomputed reference-model
grades. ``planted`` names, for each quality rule, the ``_row_id``s built to trip exactly that rule.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from s1jax.curation.text import normalize_words

__all__ = ["SyntheticPool", "make_synthetic_pool", "SYNTHETIC_DOMAINS"]

# (MSC code, source_type, cot_type, topic sentences with {a} {b} numbers). Keywords of exactly one domain each.
SYNTHETIC_DOMAINS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("11", "qfq/openaimath/Number Theory", "math", (
        "Let $p$ be a prime and let $d$ be a divisor of ${a}$ taken modulo ${b}$.",
        "Each prime factor of ${a}$ leaves a remainder when reduced modulo ${b}$, and every divisor counts.",
    )),
    ("05", "AI-MO/NuminaMath-CoT/olympiads", "math", (
        "A permutation of ${a}$ tokens is chosen, and the pigeonhole principle bounds how many ways exist with ${b}$ boxes.",
        "Count how many ways a permutation of ${a}$ cards avoids ${b}$ fixed positions, using pigeonhole reasoning.",
    )),
    ("51", "qfq/openaimath/Geometry", "math", (
        "In triangle $ABC$ with side ${a}$, a circle is tangent to $AB$ and a perpendicular is dropped of length ${b}$.",
        "A circle of radius ${a}$ passes through a triangle vertex, and the perpendicular from the center has length ${b}$.",
    )),
    ("60", "simplescaling/s1-prob", "math", (
        "Two dice are rolled ${a}$ times, and the probability that the expected value exceeds ${b}$ is required.",
        "A fair coin is tossed ${a}$ times; find the probability of a run of ${b}$ heads and its expected value.",
    )),
    ("12", "AI-MO/NuminaMath-CoT/aops_forum", "math", (
        "The polynomial $x^3 - {a}x + {b}$ has roots $r, s, t$ with integer coefficients.",
        "A monic polynomial with coefficients summing to ${a}$ has real roots bounded by ${b}$.",
    )),
    ("70", "TIGER-Lab/TheoremQA/float", "science", (
        "A block of mass ${a}$ kg slides with friction while a force of ${b}$ N sets its velocity.",
        "A projectile leaves the ground with velocity ${a}$ m/s against a drag force of ${b}$ N and friction.",
    )),
    ("92", "GAIR/OlympicArena/Chemistry", "science", (
        "A molecule undergoes a reaction catalysed by an enzyme at ${a}$ K over ${b}$ seconds.",
        "An enzyme lowers the barrier of a reaction in which each molecule loses ${a}$ protons per ${b}$ steps.",
    )),
    ("81", "daman1209arora/jeebench/phy", "science", (
        "An electron with spin one half evolves under the Hamiltonian $H = {a}\\sigma_z + {b}\\sigma_x$.",
        "The Hamiltonian of an electron in a trap has spin coupling ${a}$ and level spacing ${b}$.",
    )),
    ("91", "qfq/quant", "math", (
        "A firm sets the price of a good at ${a}$ dollars and its profit depends on a market of ${b}$ buyers.",
        "In a market with ${a}$ sellers the price falls until profit per unit is ${b}$.",
    )),
)

# Neutral filler: no MSC keyword, no rule trigger (checked by the tests).
_FILLER = (
    "amber willow lantern meadow quartz harbor cinder velvet orchard falcon tundra saffron marble thistle cobalt "
    "juniper hollow ember garnet lagoon pewter raven sorrel bramble cascade dune fjord glacier heron ivory jasper "
    "kestrel linen maple nettle onyx pebble quill russet sable topaz umber vale wicker yarrow zinnia acorn birch "
    "clover dahlia fennel ginger hazel iris jade kelp lilac moss nutmeg olive poppy reed sage tansy violet wren "
    "basil canyon delta fern grove hedge inlet knoll ledge mesa nook oasis prairie ridge shoal thicket"
).split()
_QUESTION_ENDS = (
    "What is the smallest possible value of $k$?",
    "Determine the value of $k$ that results.",
    "Find $k$ and justify each step.",
    "How large can $k$ be?",
)

_DEFECT_RULES = (
    "missing_text", "api_error", "image_reference", "empty_asy", "ascii_art",
    "unbalanced_delimiters", "ends_mid_sentence", "exact_duplicate", "near_duplicate",
)


@dataclasses.dataclass
class SyntheticPool:
    """Rows in the s1 59K schema (plus ``isqwen7bcorrect``/``isqwen32bcorrect`` grade columns) and the planted
    defects: rule name -> ``_row_id``s; ``contaminated`` lists rows copied from eval questions."""

    rows: list[dict[str, Any]]
    planted: dict[str, list[int]]
    contaminated: list[int]


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(_FILLER[i] for i in rng.integers(0, len(_FILLER), size=n))


def _trace(rng: np.random.Generator, n_words: int) -> str:
    parts, left = [], n_words
    while left > 0:
        k = int(min(left, rng.integers(8, 20)))
        parts.append(_words(rng, k).capitalize() + ".")
        left -= k
    return "Let me think about this carefully. " + " ".join(parts) + " So the answer follows."


def _clean_row(rng: np.random.Generator, index: int) -> dict[str, Any]:
    code, source, cot_type, topics = SYNTHETIC_DOMAINS[index % len(SYNTHETIC_DOMAINS)]
    a, b = int(rng.integers(3, 999)), int(rng.integers(2, 99))
    topic = topics[int(rng.integers(len(topics)))].format(a=a, b=b)
    question = f"{topic} {_words(rng, int(rng.integers(14, 26))).capitalize()}. {_QUESTION_ENDS[index % len(_QUESTION_ENDS)]}"
    answer = int(rng.integers(1, 1000))
    # Long-tailed trace lengths (like real traces): most a few hundred words, some several thousand.
    n_words = int(np.clip(rng.lognormal(mean=6.0, sigma=0.8), 40, 6000))
    if rng.random() < 0.06:  # a few contest items, as in the real pool: Algorithm 1 pre-selects these
        source = "qq8933/AIME_1983_2024" if cot_type == "math" else "Idavidrein/gpqa"
    p7 = rng.random() < 0.35
    return {
        "question": question,
        "solution": f"Working through the cases gives $k = {answer}$, so the answer is $\\boxed{{{answer}}}$.",
        "cot_type": cot_type,
        "source_type": source,
        "metadata": json.dumps({"synthetic_domain": code, "index": index}),
        "cot": None,
        "thinking_trajectories": [_trace(rng, n_words)],
        "attempt": f"Combining the steps, $k = {answer}$. The answer is $\\boxed{{{answer}}}$.",
        "isqwen7bcorrect": bool(p7),
        "isqwen32bcorrect": bool(p7 or rng.random() < 0.25),
    }


def _plant(rule: str, row: dict[str, Any], earlier: dict[str, Any], variant: int) -> None:
    """Edit ``row`` in place so that ``rule`` (and no earlier rule) drops it; ``earlier`` is a clean row to copy."""
    q = row["question"]
    if rule == "missing_text":
        row["thinking_trajectories" if variant % 2 == 0 else "attempt"] = [""] if variant % 2 == 0 else "  "
    elif rule == "api_error":
        if variant % 2 == 0:
            row["attempt"] = "Error: 429 the upstream model could not be reached."
        else:
            row["thinking_trajectories"] = ["Partial reasoning. Rate limit exceeded for this project, retry later."]
    elif rule == "image_reference":
        row["question"] = ("As shown in the figure, " if variant % 2 == 0 else "![sketch](sketch.png) ") + q
    elif rule == "empty_asy":
        row["question"] = (q + " [asy][/asy]") if variant % 2 == 0 else ("[asy] unitsize(1cm); " + q)
    elif rule == "ascii_art":
        row["question"] = "+---+---+\n|   | * |\n+---+---+\n" + q
    elif rule == "unbalanced_delimiters":
        row["question"] = q + (" Assume $k > 0." if variant % 2 == 0 else " Use the bound {k}} here.")
    elif rule == "ends_mid_sentence":
        if variant % 2 == 0:
            row["question"] = q.rstrip("?.") + " and the"
        else:
            row["attempt"] = "Combining the steps, we see that the answer is,"
    elif rule == "exact_duplicate":
        row["question"] = "  " + earlier["question"].upper().replace(" ", "   ")
    elif rule == "near_duplicate":
        row["question"] = earlier["question"] + " Explain briefly."
    else:
        raise ValueError(f"unknown defect rule {rule!r}")


def make_synthetic_pool(
    num_rows: int = 600,
    seed: int = 0,
    *,
    defects_per_rule: int = 2,
    eval_questions: Sequence[str] = (),
) -> SyntheticPool:
    """Build ``num_rows`` rows (same seed -> same pool): clean rows, ``defects_per_rule`` planted rows per quality
    rule, and one contaminated row per eval question given (its middle 12 words copied, the rest rewritten)."""
    n_defects = defects_per_rule * len(_DEFECT_RULES) + len(eval_questions)
    if num_rows < n_defects + 2 * len(SYNTHETIC_DOMAINS):
        raise ValueError(f"num_rows={num_rows} is too small for {n_defects} planted rows plus clean rows")
    rng = np.random.default_rng(seed)
    rows = [_clean_row(rng, i) for i in range(num_rows)]
    # Plant defects in the second half so every duplicate has a clean original earlier in the pool.
    slots = iter(rng.permutation(np.arange(num_rows // 2, num_rows)).tolist())
    planted: dict[str, list[int]] = {r: [] for r in _DEFECT_RULES}
    used: set[int] = set()
    for rule in _DEFECT_RULES:
        for v in range(defects_per_rule):
            i = next(slots)
            earlier = rows[int(rng.integers(0, num_rows // 2))]
            _plant(rule, rows[i], earlier, v)
            planted[rule].append(i)
            used.add(i)
    contaminated: list[int] = []
    for q in eval_questions:
        i = next(slots)
        words = normalize_words(q)
        mid = max(0, len(words) // 2 - 6)
        rows[i]["question"] = "Reworded from a contest: " + " ".join(words[mid : mid + 12]) + " Find the answer."
        contaminated.append(i)
    for i, row in enumerate(rows):
        row["_row_id"] = i
    return SyntheticPool(rows=rows, planted=planted, contaminated=contaminated)
