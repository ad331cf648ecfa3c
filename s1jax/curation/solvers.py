"""The curation package's bridge to models and graders: reference-model solvers over :func:`s1jax.generate`,
a grader over :mod:`s1jax.eval.grading`, and benchmark questions for decontamination from
:mod:`s1jax.eval.benchmarks`. The only curation module that uses ``inference`` / ``eval``: every stage takes these
as injected callables, so the stages stay testable without a model.

Models are reached through the public API (``s1jax.generate``, ``s1jax.load_model``, ...), resolved when a solver
runs: building a pipeline never pays for JAX, and the public API is the one seam tests replace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import s1jax
from s1jax.curation.difficulty import GradeFn, Solver
from s1jax.eval.benchmarks import load_benchmark

__all__ = ["make_default_grade_fn", "make_model_solver", "benchmark_questions"]

_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "seed")
_ADAPTER_KEYS = ("batch_size", "dtype", "system", "max_cache_len")


def make_default_grade_fn(kind: str = "math") -> GradeFn:
    """``grade_fn`` backed by ``s1jax.eval.grading`` (imported on the first call: it brings math-verify and a grading
    process pool, which a run whose pool carries precomputed grades never needs).

    Pool ``solution`` cells are full worked solutions, so the reference answer is first extracted from them
    (``extract_answer(solution, kind)``, e.g. the last ``\\boxed{}``); a solution with no extractable answer is used
    whole.
    """

    def grade_fn(response: str, reference: str) -> bool:
        from s1jax.eval.grading import extract_answer, grade  # heavy: see the docstring

        answer = extract_answer(reference, kind) or reference.strip()
        return bool(grade(response, answer, kind))

    return grade_fn


def make_model_solver(
    model_path: str,
    tokenizer_path: str | None = None,
    budget_cfg: Mapping[str, Any] | None = None,
    *,
    response: str = "full",
    model: Any = None,
    tokenizer: Any = None,
) -> Solver:
    """A ``solver(questions) -> responses`` that runs s1jax.generate on a reference model.

    ``budget_cfg`` holds ``s1jax.Budget`` fields (max_thinking_tokens, max_answer_tokens, num_ignore, ...),
    ``s1jax.Sampling`` fields (temperature, top_p, top_k, seed) and adapter fields (batch_size, dtype, system,
    max_cache_len: KV-cache slots, 0/absent = sized from the budget).
    ``response="full"`` returns thinking + answer (what a grader should see: the final answer comes last);
    ``"answer"`` only the text after the thinking delimiter (for the LM domain classifier). Pass an already loaded
    ``model``/``tokenizer`` to reuse them (tests, notebooks); otherwise both are loaded on the first call.
    """
    if response not in ("full", "answer"):
        raise ValueError(f"response must be 'full' or 'answer', got {response!r}")
    cfg = dict(budget_cfg or {})
    batch_size = int(cfg.get("batch_size", 8))
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    state: dict[str, Any] = {"model": model, "tok": tokenizer}

    def solver(questions: list[str]) -> list[str]:
        if state["tok"] is None:
            state["tok"] = s1jax.load_tokenizer(tokenizer_path or model_path)
        if state["model"] is None:
            state["model"] = s1jax.load_model(model_path, dtype=cfg.get("dtype", "bfloat16"))
        budget = s1jax.Budget(**{k: v for k, v in cfg.items() if k not in _SAMPLING_KEYS + _ADAPTER_KEYS})
        sampling = s1jax.Sampling(**{k: v for k, v in cfg.items() if k in _SAMPLING_KEYS})
        extra = {"max_cache_len": int(cfg["max_cache_len"])} if cfg.get("max_cache_len") else {}
        out: list[str] = []
        for start in range(0, len(questions), batch_size):
            chunk = list(questions[start : start + batch_size])
            results = s1jax.generate(
                state["model"], state["tok"], chunk, budget=budget, sampling=sampling, system=cfg.get("system"),
                **extra,
            )
            for r in results:
                out.append(r.answer if response == "answer" else f"{r.thinking}\n{r.answer}")
        return out

    return solver


def benchmark_questions(name: str) -> list[str] | None:
    """The questions of benchmark ``name`` (``s1jax.eval.benchmarks.load_benchmark``), or None when it cannot be
    loaded (unknown name, or the hub is unreachable offline): decontamination then reports the set as missing."""
    try:
        items = load_benchmark(name)
    except Exception:  # noqa: BLE001 - unavailable offline or unknown name: the caller decides
        return None
    return [it.problem for it in items if it.problem] or None
