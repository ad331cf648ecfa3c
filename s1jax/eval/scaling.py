"""Test-time-scaling sweeps: budget forcing, "Wait" extrapolation, the paper's baselines, majority voting.

Generation is injected, so every sweep runs (and is tested) without a model:

* ``generate_sweep_fn(prompts, budgets) -> {budget: [result per prompt]}``: think once up to max(budgets) and branch an
  answer at each budget (``s1jax.generate_sweep``). One whose ``takes_levels`` attribute is true also takes
  ``(max_thinking_tokens, num_ignore)`` pairs among the budgets, so the "Wait" points share the run.
* ``generate_fn(prompts, *, max_thinking_tokens, num_ignore=0, temperature=None, seed=None) -> [result]``
  (``s1jax.generate`` with the budget / sampling fields replaced).

A result is anything with the fields of ``GenerationResult`` (docs/contracts.md), as attributes or dict keys.
Every graded generation goes through a :class:`~s1jax.eval.report.ResultsWriter`, which makes sweeps resumable:
items whose records all exist are not generated again.

Baselines (s1 Sec. 5.1 / Table 3) are prompt and budget transforms of the same generate function:
token-conditional ("Think for up to N tokens."), step-conditional ("Think for up to N steps."; s1 observes ~100
tokens per step, ``tokens_per_step`` turns a step budget into the token budget used for Control and forcing),
class-conditional (a short and a long instruction), each with or without budget forcing (the budget as a hard
cap vs. an uncapped context), and rejection sampling (temperature 1, resample until the thinking fits the budget).
s1's token-conditional runs also inserted "N tokens left" reminders while thinking; that needs the generation loop
and is not reproduced here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import s1jax
from s1jax.eval.benchmarks import EvalItem
from s1jax.eval.grading import grade_response
from s1jax.eval.report import MAJORITY, ResultsWriter

__all__ = ["SweepPoint", "run_budget_sweep", "run_points", "run_num_ignore_sweep", "conditional_points",
           "run_rejection_sampling", "run_majority_vote", "make_generate_fns", "TOKEN_PROMPT", "STEP_PROMPT",
           "CLASS_PROMPTS", "majority_point"]

GenerateSweepFn = Callable[[list[str], list[int]], dict[int, list[Any]]]
GenerateFn = Callable[..., list[Any]]

TOKEN_PROMPT = "\n\nThink for up to {n} tokens."
STEP_PROMPT = "\n\nThink for up to {n} steps."
CLASS_PROMPTS = {
    "short": "\n\nThink briefly: answer as soon as you are reasonably confident, without double-checking.",
    "long": "\n\nThink carefully and at length: explore several approaches and double-check every step before answering.",
}


@dataclass(frozen=True)
class SweepPoint:
    """One run of a method: a prompt suffix, generation overrides, and the budget its Control is judged against."""

    label: str
    x: float | None
    budget: int | None
    prompt_suffix: str = ""
    gen_kwargs: dict[str, Any] = field(default_factory=dict)


def _field(result: Any, name: str, default: Any = None) -> Any:
    if isinstance(result, dict):
        return result.get(name, default)
    return getattr(result, name, default)


def _record(item: EvalItem, method: str, point: str, x: Any, budget: int | None, sample: int, prompt: str,
            result: Any, timeout_s: float, save_token_ids: bool, tries: int = 1) -> dict[str, Any]:
    """One JSONL record: the generation, what was extracted from its answer phase, and the verdict."""
    answer = _field(result, "answer", "") or ""
    g = grade_response(answer, item.answer, item.kind, timeout_s)
    rec = {
        "method": method, "point": point, "x": x, "budget": budget, "item_id": item.id, "sample": sample,
        "kind": item.kind, "reference": item.answer, "prompt": prompt,
        "thinking": _field(result, "thinking", ""), "answer": answer,
        "thinking_tokens": int(_field(result, "thinking_tokens", 0) or 0),
        "answer_tokens": int(_field(result, "answer_tokens", 0) or 0),
        "num_ignored": int(_field(result, "num_ignored", 0) or 0),
        "hit_max_budget": bool(_field(result, "hit_max_budget", False)),
        "tries": tries, "extracted": g.extracted, "correct": g.correct, "grade_reason": g.reason,
    }
    if save_token_ids:
        rec["token_ids"] = list(_field(result, "token_ids", []) or [])
    return rec


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A bar drawn by process 0 only (every host runs the same loop)."""
    import jax
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled or jax.process_index() != 0, dynamic_ncols=True)


def _check_len(out: Sequence[Any], n: int, what: str) -> None:
    if len(out) != n:
        raise ValueError(f"{what} returned {len(out)} results for {n} prompts")


CALLS_PER_BATCH = 4  # default questions per generate call, in row slots: refills keep the slots busy between checkpoints
BUDGET_FIELDS = frozenset({"max_thinking_tokens", "num_ignore"})  # generate_fn fields that may differ per prompt


def _call_size(batch_size: int, call_size: int | None) -> int:
    """Questions per generate call (and per JSONL append): ``call_size``, else ``CALLS_PER_BATCH`` x the row slots.
    More questions than slots let continuous batching refill a finished row's slot instead of idling it until the
    call's longest question ends; the call is also the unit of resume (a killed run redoes at most one call)."""
    size = int(call_size) if call_size else CALLS_PER_BATCH * int(batch_size)
    if size < 1:
        raise ValueError(f"call_size must be >= 1, got {size}")
    return size


def _mergeable(a: SweepPoint, b: SweepPoint, generate_fn: Any) -> bool:
    """Points that may share generate calls: same prompt suffix, overrides only of per-prompt budget fields, and a
    generate_fn that takes per-prompt lists of them (``make_generate_fns``' does)."""
    return (bool(getattr(generate_fn, "per_prompt_budgets", False)) and a.prompt_suffix == b.prompt_suffix
            and set(a.gen_kwargs) == set(b.gen_kwargs) and set(a.gen_kwargs) <= BUDGET_FIELDS)


def run_budget_sweep(
    items: Sequence[EvalItem], generate_sweep_fn: GenerateSweepFn, budgets: Sequence[int], *,
    writer: ResultsWriter, method: str = "budget_forcing", batch_size: int = 8, prompt_suffix: str = "",
    grade_timeout_s: float = 5.0, progress: bool = True, save_token_ids: bool = False, call_size: int | None = None,
    num_ignores: Sequence[int] = (), num_ignore_max_tokens: int | None = None, num_ignore_method: str = "num_ignore",
) -> list[dict[str, Any]]:
    """Budget forcing at every budget: one thinking pass per question, one answer branched per budget.

    With ``num_ignores``, the "Wait" extrapolation (``run_num_ignore_sweep``'s points, capped at
    ``num_ignore_max_tokens``, recorded as ``num_ignore_method``) shares that pass: the question thinks once with
    the most ignored stops, and each level branches where it would stop (``s1jax.generate_sweep``; the sweep
    function must take ``(max_thinking_tokens, num_ignore)`` levels, as ``make_generate_fns``' does).
    Records are written per generate call (``call_size`` questions, see ``_call_size``); items with every point
    already recorded are skipped (resume). Returns the records of ``method`` (and ``num_ignore_method``).
    """
    points: dict[Any, list[tuple[str, str, int, int]]] = {}  # sweep level -> (method, label, x, budget) recorded
    for b in sorted({int(b) for b in budgets}):
        points.setdefault(b, []).append((method, f"max={b}", b, b))
    if num_ignores:
        if num_ignore_max_tokens is None:
            raise ValueError("run_budget_sweep: num_ignores needs num_ignore_max_tokens (the Wait sweep's cap)")
        if not getattr(generate_sweep_fn, "takes_levels", False):
            raise ValueError("run_budget_sweep: num_ignores needs a generate_sweep_fn that takes (max_thinking_tokens, "
                             "num_ignore) levels (make_generate_fns' does)")
        cap = int(num_ignore_max_tokens)
        for n in sorted({int(n) for n in num_ignores}):
            points.setdefault((cap, n), []).append((num_ignore_method, f"ignore={n}", n, cap))
    if not points:
        raise ValueError("run_budget_sweep needs at least one budget or num_ignore")
    levels = list(points)
    todo = [it for it in items if not all(writer.done(m, label, it.id) for recs in points.values()
                                          for m, label, _, _ in recs)]
    methods = list(dict.fromkeys(m for recs in points.values() for m, _, _, _ in recs))
    bar = _progress(len(items), " + ".join(methods), progress)
    bar.update(len(items) - len(todo))
    size = _call_size(batch_size, call_size)
    for start in range(0, len(todo), size):
        batch = todo[start:start + size]
        prompts = [it.prompt_text + prompt_suffix for it in batch]
        out = generate_sweep_fn(prompts, levels)
        missing = [lv for lv in levels if lv not in out]
        if missing:
            raise ValueError(f"generate_sweep_fn returned no results for levels {missing}")
        recs = []
        for lv in levels:
            _check_len(out[lv], len(batch), "generate_sweep_fn")
            for m, label, x, cap in points[lv]:
                for it, prompt, res in zip(batch, prompts, out[lv]):
                    if not writer.done(m, label, it.id):
                        recs.append(_record(it, m, label, x, cap, 0, prompt, res, grade_timeout_s, save_token_ids))
        writer.append(recs)
        bar.update(len(batch))
    bar.close()
    return [r for r in writer.records if r["method"] in methods]


def run_points(
    items: Sequence[EvalItem], generate_fn: GenerateFn, points: Sequence[SweepPoint], *, writer: ResultsWriter,
    method: str, batch_size: int = 8, grade_timeout_s: float = 5.0, progress: bool = True,
    save_token_ids: bool = False, call_size: int | None = None,
) -> list[dict[str, Any]]:
    """Generic sweep: for each point, generate every pending item with the point's suffix and overrides.

    Consecutive points that differ only in budget fields (the num_ignore sweep: same prompt, other ``num_ignore``)
    share generate calls, each prompt with its own budget: one continuous-batching run over every (point, item)
    pair instead of one run per point, each ending with a tail of idle slots."""
    groups: list[list[SweepPoint]] = []
    for pt in points:
        if groups and _mergeable(groups[-1][0], pt, generate_fn):
            groups[-1].append(pt)
        else:
            groups.append([pt])
    size = _call_size(batch_size, call_size)
    for group in groups:
        todo = [(pt, it) for pt in group for it in items if not writer.done(method, pt.label, it.id)]
        total = len(group) * len(items)
        desc = f"{method} {group[0].label}" + (f" .. {group[-1].label}" if len(group) > 1 else "")
        bar = _progress(total, desc, progress)
        bar.update(total - len(todo))
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            prompts = [it.prompt_text + pt.prompt_suffix for pt, it in chunk]
            if len(group) == 1:
                out = generate_fn(prompts, **group[0].gen_kwargs)
            else:  # per-prompt budgets
                out = generate_fn(prompts, **{k: [pt.gen_kwargs[k] for pt, _ in chunk] for k in group[0].gen_kwargs})
            _check_len(out, len(chunk), "generate_fn")
            writer.append([_record(it, method, pt.label, pt.x, pt.budget, 0, p, r, grade_timeout_s, save_token_ids)
                           for (pt, it), p, r in zip(chunk, prompts, out)])
            bar.update(len(chunk))
        bar.close()
    return [r for r in writer.records if r["method"] == method]


def run_num_ignore_sweep(
    items: Sequence[EvalItem], generate_fn: GenerateFn, num_ignores: Sequence[int], *, writer: ResultsWriter,
    max_thinking_tokens: int, method: str = "num_ignore", **kwargs: Any,
) -> list[dict[str, Any]]:
    """Extrapolation by suppressing the end of thinking N times ("Wait"), capped at ``max_thinking_tokens``."""
    points = [SweepPoint(f"ignore={n}", n, max_thinking_tokens, "",
                         {"max_thinking_tokens": max_thinking_tokens, "num_ignore": int(n)}) for n in num_ignores]
    return run_points(items, generate_fn, points, writer=writer, method=method, **kwargs)


def conditional_points(
    kind: str, budgets: Sequence[int], *, budget_forcing: bool, uncapped_tokens: int, tokens_per_step: int = 100,
    class_budgets: tuple[int, int] = (2048, 8192),
) -> list[SweepPoint]:
    """Points of a prompt-conditional baseline (``kind``: "token" | "step" | "class").

    Without budget forcing the model is only asked (thinking capped at ``uncapped_tokens``, the context limit);
    with it, the requested budget is also the hard cap. For "step", ``budgets`` are step counts; for "class" they
    are ignored and ``class_budgets`` (short, long) are the token budgets Control is judged against.
    """
    def cap(tokens: int) -> dict[str, Any]:
        return {"max_thinking_tokens": int(tokens) if budget_forcing else int(uncapped_tokens), "num_ignore": 0}

    if kind == "token":
        return [SweepPoint(f"tokens={n}", n, int(n), TOKEN_PROMPT.format(n=n), cap(n)) for n in budgets]
    if kind == "step":
        return [SweepPoint(f"steps={n}", n, int(n) * tokens_per_step, STEP_PROMPT.format(n=n), cap(n * tokens_per_step))
                for n in budgets]
    if kind == "class":
        return [SweepPoint(name, i, int(b), CLASS_PROMPTS[name], cap(b))
                for i, (name, b) in enumerate(zip(("short", "long"), class_budgets))]
    raise ValueError(f"unknown conditional control {kind!r}; expected token, step or class")


def run_rejection_sampling(
    items: Sequence[EvalItem], generate_fn: GenerateFn, budgets: Sequence[int], *, writer: ResultsWriter,
    uncapped_tokens: int, max_tries: int = 64, temperature: float = 1.0, seed: int = 0,
    method: str = "rejection_sampling", batch_size: int = 8, grade_timeout_s: float = 5.0, progress: bool = True,
    save_token_ids: bool = False, call_size: int | None = None,
) -> list[dict[str, Any]]:
    """Sample at ``temperature`` until the thinking fits each budget (at most ``max_tries`` per item).

    An item that never fits keeps its last sample (recorded with ``tries == max_tries``), so Control shows it.
    """
    for b in sorted({int(b) for b in budgets}):
        label = f"max={b}"
        todo = [it for it in items if not writer.done(method, label, it.id)]
        bar = _progress(len(items), f"{method} {label}", progress)
        bar.update(len(items) - len(todo))
        size = _call_size(batch_size, call_size)
        for start in range(0, len(todo), size):
            pending = list(todo[start:start + size])
            last: dict[str, tuple[Any, int]] = {}
            for t in range(max_tries):
                if not pending:
                    break
                prompts = [it.prompt_text for it in pending]
                out = generate_fn(prompts, max_thinking_tokens=uncapped_tokens, num_ignore=0,
                                  temperature=temperature, seed=seed + 7919 * b + t)
                _check_len(out, len(pending), "generate_fn")
                still, recs = [], []
                for it, res in zip(pending, out):
                    last[it.id] = (res, t + 1)
                    if int(_field(res, "thinking_tokens", 0) or 0) <= b or t + 1 == max_tries:
                        recs.append(_record(it, method, label, b, b, 0, it.prompt_text, res, grade_timeout_s,
                                            save_token_ids, tries=t + 1))
                    else:
                        still.append(it)
                writer.append(recs)
                bar.update(len(recs))
                pending = still
        bar.close()
    return [r for r in writer.records if r["method"] == method]


def majority_point(max_thinking_tokens: int) -> str:
    """Point label of majority-vote samples: the thinking cap is in it, so samples drawn under another cap are
    never voted together (a rerun with more budgets raises the cap)."""
    return f"sample@max={int(max_thinking_tokens)}"


def run_majority_vote(
    items: Sequence[EvalItem], generate_fn: GenerateFn, num_samples: int, *, writer: ResultsWriter,
    max_thinking_tokens: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 8,
    grade_timeout_s: float = 5.0, progress: bool = True, save_token_ids: bool = False, call_size: int | None = None,
) -> list[dict[str, Any]]:
    """``num_samples`` independent samples per item (seed + s); maj@k is computed from them in the summary."""
    for s in range(num_samples):
        todo = [it for it in items if not writer.done(MAJORITY, majority_point(max_thinking_tokens), it.id, s)]
        bar = _progress(len(items), f"{MAJORITY} sample {s}", progress)
        bar.update(len(items) - len(todo))
        size = _call_size(batch_size, call_size)
        for start in range(0, len(todo), size):
            batch = todo[start:start + size]
            prompts = [it.prompt_text for it in batch]
            out = generate_fn(prompts, max_thinking_tokens=max_thinking_tokens, num_ignore=0,
                              temperature=temperature, seed=seed + s)
            _check_len(out, len(batch), "generate_fn")
            writer.append([_record(it, MAJORITY, majority_point(max_thinking_tokens), s, None, s, p, r, grade_timeout_s,
                                   save_token_ids)
                           for it, p, r in zip(batch, prompts, out)])
            bar.update(len(batch))
        bar.close()
    return [r for r in writer.records if r["method"] == MAJORITY]


def _replace(obj: Any, **changes: Any) -> Any:
    """Copy of a dataclass / NamedTuple / plain object with some fields changed (Budget, Sampling)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **changes)
    if hasattr(obj, "_replace"):
        return obj._replace(**changes)
    return type(obj)(**{**vars(obj), **changes})


def make_generate_fns(model: Any, tok: Any, budget: Any, sampling: Any, system: str | None = None, *,
                      batch_size: int | None = None, max_cache_len: int | None = None,
                      ) -> tuple[GenerateFn, GenerateSweepFn]:
    """Bind ``s1jax.generate`` / ``s1jax.generate_sweep`` to a model into the two injected functions.

    ``budget`` / ``sampling`` are the base ``s1jax.Budget`` / ``s1jax.Sampling``; each call replaces only the
    fields a sweep varies (max_thinking_tokens, num_ignore, temperature, seed). ``system``, ``batch_size`` (device
    rows per jitted call) and ``max_cache_len`` (KV-cache slots; default: sized from the budget) are passed through
    to both when set. ``s1jax.generate`` is resolved at call time, so this module loads without the engine.
    """
    extra: dict[str, Any] = {k: v for k, v in (("system", system), ("batch_size", batch_size),
                                               ("max_cache_len", max_cache_len)) if v is not None}

    def generate_fn(prompts: list[str], *, max_thinking_tokens: int | Sequence[int] | None = None,
                    num_ignore: int | Sequence[int] | None = None, temperature: float | None = None,
                    seed: int | None = None) -> list[Any]:
        """The budget fields may be one value or one per prompt (``run_points`` merges points that way)."""
        def each(value: Any) -> list[Any]:
            return list(value) if isinstance(value, (list, tuple)) else [value] * len(prompts)

        b = [_replace(budget, max_thinking_tokens=m, num_ignore=n)
             for m, n in zip(each(max_thinking_tokens), each(num_ignore))]
        s = _replace(sampling, temperature=temperature, seed=seed)
        return s1jax.generate(model, tok, list(prompts), budget=b, sampling=s, **extra)

    generate_fn.per_prompt_budgets = True  # type: ignore[attr-defined]

    def generate_sweep_fn(prompts: list[str], budgets: list[Any]) -> dict[Any, list[Any]]:
        """Each entry of ``budgets`` is a thinking cap (at the base budget's num_ignore) or a (max_thinking_tokens,
        num_ignore) level; one shared run per prompt (``s1jax.generate_sweep``), keyed as given."""
        levels = [(int(b[0]), int(b[1])) if isinstance(b, (tuple, list)) else (int(b), int(budget.num_ignore))
                  for b in budgets]
        out = s1jax.generate_sweep(model, tok, list(prompts), levels=levels, budget=budget, sampling=sampling,
                                   **extra)
        return {b: out[lv] for b, lv in zip(budgets, levels)}

    generate_sweep_fn.takes_levels = True  # type: ignore[attr-defined]

    return generate_fn, generate_sweep_fn
