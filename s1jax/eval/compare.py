"""Two runs of one benchmark side by side, item by item: an s1jax eval directory or an lm-eval samples file each
(e.g. s1's PyTorch/vLLM run, ``samples_aime24_nofigures_<date>.jsonl``).

For every budget both runs have: accuracy of each with its standard error, the paired difference B - A with a
paired bootstrap CI (items resampled jointly), the agreement table (both right / only A / only B / both wrong) and
the mean thinking tokens of each. Items are matched by id when both runs use the same ids, else by the problem
text (whitespace-normalised), so an lm-eval file (integer ``doc_id``) lines up with an s1jax run (dataset ids).

A run is a mapping ``budget -> {item key: Answer}``; an lm-eval file holds one budget (s1 ran one lm-eval per
budget): its budget comes from ``generation_kwargs.max_tokens_thinking`` in the sibling ``results_*.json`` when
present, else it is ``None``, and a run with a single ``None`` budget is compared against every budget of the other.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import s1jax
from s1jax.eval.report import load_records
from s1jax.eval.stats import DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, mean_stderr, paired_bootstrap_diff

__all__ = ["Answer", "Run", "load_run", "load_s1jax_run", "load_lmeval_samples", "compare_runs", "markdown_table",
           "plot_comparison", "CompareError", "thinking_text", "THINK_END_MARKERS"]

# Where thinking ends in a response: s1's "<|im_start|>answer" (s1-32B), "</think>" (s1.1 / R1-style, the fork's SEP).
THINK_END_MARKERS = ("<|im_start|>answer", "</think>")


class CompareError(ValueError):
    """An input that cannot be compared; the message names the file and the fix."""


@dataclass(frozen=True)
class Answer:
    item_id: str
    problem: str
    correct: bool
    thinking_tokens: float | None


@dataclass
class Run:
    label: str
    points: dict[int | None, list[Answer]] = field(default_factory=dict)  # budget -> answers


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def load_s1jax_run(out_dir: str, method: str = "budget_forcing", label: str | None = None) -> Run:
    """The ``method`` records of an s1jax eval directory (results.jsonl), one point per budget."""
    path = os.path.join(out_dir, "results.jsonl")
    records = [r for r in load_records(path) if r.get("method") == method]
    if not records:
        raise CompareError(f"{out_dir!r} has no {method!r} records in results.jsonl; run `s1jax eval` there first "
                           f"or pick another --config.method")
    run = Run(label or os.path.basename(os.path.normpath(out_dir)))
    seen = set()
    for r in records:
        key = (r.get("budget"), r["item_id"], r.get("sample", 0))
        if key in seen or r.get("sample", 0) != 0:
            continue
        seen.add(key)
        budget = None if r.get("budget") is None else int(r["budget"])
        run.points.setdefault(budget, []).append(
            Answer(str(r["item_id"]), r.get("prompt", ""), bool(r["correct"]), float(r.get("thinking_tokens", 0))))
    return run


def _sample_problem(row: Mapping[str, Any]) -> str:
    doc = row.get("doc") or {}
    for k in ("problem", "question", "Question"):
        if isinstance(doc.get(k), str):
            return doc[k]
    args = row.get("arguments")
    if isinstance(args, dict):  # saved layout: {"gen_args_0": {"arg_0": prompt, ...}}
        first = args.get("gen_args_0") or {}
        if isinstance(first.get("arg_0"), str):
            return first["arg_0"]
    if isinstance(args, list) and args and isinstance(args[0], (list, tuple)) and args[0]:
        return str(args[0][0])
    return ""


def _sample_tokens(row: Mapping[str, Any]) -> float | None:
    for k in ("tok_think@1", "tok_think"):
        v = row.get(k)
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, (int, float)) and v >= 0:
            return float(v)
    return None


def thinking_text(response: str) -> str | None:
    """The thinking part of a full response (text before the first end-of-thinking marker); None without one."""
    cuts = [response.find(m) for m in THINK_END_MARKERS if m in response]
    return response[: min(cuts)] if cuts else None


def _response(row: Mapping[str, Any]) -> str | None:
    resps = row.get("resps")
    while isinstance(resps, list) and resps:
        resps = resps[0]
    return resps if isinstance(resps, str) else None


def _sibling_budget(path: str) -> int | None:
    """``max_tokens_thinking`` of the results_*.json next to an lm-eval samples file, if one names it."""
    folder = os.path.dirname(os.path.abspath(path))
    task = os.path.basename(path)[len("samples_"):].rsplit("_", 1)[0]
    for res in sorted(glob.glob(os.path.join(folder, "results_*.json")), reverse=True):
        try:
            with open(res, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        gen = ((data.get("configs") or {}).get(task) or {}).get("generation_kwargs") or {}
        value = gen.get("max_tokens_thinking")
        if value is None:  # s1's fork: --gen_kwargs max_tokens_thinking=N lands in config.gen_kwargs
            value = ((data.get("config") or {}).get("gen_kwargs") or {}).get("max_tokens_thinking") \
                if isinstance((data.get("config") or {}).get("gen_kwargs"), dict) else None
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return None


def load_lmeval_samples(path: str, label: str | None = None, budget: int | None = None,
                        tokenizer: Any = None) -> Run:
    """An lm-eval ``samples_*.jsonl`` as a one-point run (the first filter of each doc; ``exact_match`` > 0.5 is
    right). ``budget`` overrides the one read from a sibling results_*.json. Thinking tokens come from the file's
    ``tok_think@1`` when present, else, with a ``tokenizer`` (anything with ``encode``), from counting the tokens
    of the response before its end-of-thinking marker."""
    rows: dict[Any, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise CompareError(f"{path}:{n} is not JSON ({e}); pass an lm-eval samples_*.jsonl file") from e
            if "doc_id" not in row or "exact_match" not in row:
                raise CompareError(f"{path}:{n} has no doc_id/exact_match: not an lm-eval samples file with the "
                                   f"exact_match metric")
            rows.setdefault(row["doc_id"], row)  # several filters per doc: keep the first
    if not rows:
        raise CompareError(f"{path} holds no samples")
    answers = []
    for doc_id, row in rows.items():
        em = row["exact_match"]
        em = em[0] if isinstance(em, list) and em else em
        doc = row.get("doc") or {}
        item_id = str(doc.get("id", doc_id)) if isinstance(doc, dict) else str(doc_id)
        tokens = _sample_tokens(row)
        if tokens is None and tokenizer is not None:
            think = thinking_text(_response(row) or "")
            tokens = None if think is None else float(len(tokenizer.encode(think)))
        answers.append(Answer(item_id, _sample_problem(row), bool(em) and float(em) > 0.5, tokens))
    b = budget if budget else _sibling_budget(path)
    return Run(label or os.path.basename(path), {b: answers})


def load_run(spec: str, label: str | None = None, method: str = "budget_forcing", budget: int | None = None,
             tokenizer: str = "") -> Run:
    """An s1jax eval directory or an lm-eval samples file (``tokenizer``: a path for ``s1jax.load_tokenizer``,
    to count thinking tokens in files that do not record them)."""
    if os.path.isdir(spec):
        return load_s1jax_run(spec, method, label)
    if os.path.isfile(spec):
        if not spec.endswith(".jsonl"):
            raise CompareError(f"{spec!r} is neither an s1jax eval directory nor a samples_*.jsonl file")
        tok = s1jax.load_tokenizer(tokenizer) if tokenizer else None
        return load_lmeval_samples(spec, label, budget, tok)
    raise CompareError(f"{spec!r} does not exist; pass an s1jax eval output directory or an lm-eval "
                       f"samples_<task>_<date>.jsonl")


def _pair(a: Sequence[Answer], b: Sequence[Answer], match: str) -> tuple[list[tuple[Answer, Answer]], str]:
    """Pairs of answers to the same item, by id (when the id sets overlap) or by problem text."""
    by_id = {x.item_id: x for x in b}
    if match in ("auto", "id"):
        pairs = [(x, by_id[x.item_id]) for x in a if x.item_id in by_id]
        if match == "id" or len(pairs) == len(a) == len(b):
            return pairs, "id"
    texts_b: dict[str, Answer] = {}
    for x in b:
        texts_b.setdefault(_norm_text(x.problem), x)
    pairs = []
    for x in a:
        t = _norm_text(x.problem)
        hit = texts_b.get(t)
        if hit is None and t:  # one prompt may carry a suffix (an instruction) the other lacks
            hit = next((y for k, y in texts_b.items() if k and (k.startswith(t) or t.startswith(k))), None)
        if hit is not None:
            pairs.append((x, hit))
    return pairs, "problem text"


def _mean_tokens(xs: Sequence[Answer]) -> float | None:
    toks = [x.thinking_tokens for x in xs if x.thinking_tokens is not None]
    return sum(toks) / len(toks) if toks and len(toks) == len(xs) else None


def compare_runs(a: Run, b: Run, *, match: str = "auto", bootstrap_samples: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Per-budget comparison (see the module docstring); accuracies and differences in percentage points."""
    if set(a.points) == {None} and len(b.points) >= 1:
        budget_pairs = [(None, bb) for bb in sorted(b.points, key=lambda x: (x is None, x or 0))]
    elif set(b.points) == {None}:
        budget_pairs = [(ba, None) for ba in sorted(a.points, key=lambda x: (x is None, x or 0))]
    else:
        common = sorted(set(a.points) & set(b.points), key=lambda x: (x is None, x or 0))
        budget_pairs = [(x, x) for x in common]
    if not budget_pairs:
        raise CompareError(f"no budget in common: {a.label} has {sorted(map(str, a.points))}, {b.label} has "
                           f"{sorted(map(str, b.points))}")
    rows = []
    for ba, bb in budget_pairs:
        pairs, how = _pair(a.points[ba], b.points[bb], match)
        if not pairs:
            raise CompareError(f"no item of {a.label} (budget {ba}) matches one of {b.label} (budget {bb}) by id or "
                               f"problem text: are they the same benchmark?")
        ca = [100.0 * x.correct for x, _ in pairs]
        cb = [100.0 * y.correct for _, y in pairs]
        diff, ci = paired_bootstrap_diff(ca, cb, iters=bootstrap_samples, seed=seed, confidence=confidence)
        rows.append({
            "budget_a": ba, "budget_b": bb, "n": len(pairs), "matched_by": how,
            "unmatched_a": len(a.points[ba]) - len(pairs), "unmatched_b": len(b.points[bb]) - len(pairs),
            "accuracy_a": sum(ca) / len(ca), "stderr_a": mean_stderr(ca),
            "accuracy_b": sum(cb) / len(cb), "stderr_b": mean_stderr(cb),
            "difference": diff, "difference_ci": list(ci) if ci else None,
            "both_right": sum(x.correct and y.correct for x, y in pairs),
            "only_a": sum(x.correct and not y.correct for x, y in pairs),
            "only_b": sum(y.correct and not x.correct for x, y in pairs),
            "both_wrong": sum(not x.correct and not y.correct for x, y in pairs),
            "thinking_tokens_a": _mean_tokens([x for x, _ in pairs]),
            "thinking_tokens_b": _mean_tokens([y for _, y in pairs]),
        })
    return {"a": a.label, "b": b.label, "confidence": confidence, "bootstrap_samples": bootstrap_samples,
            "seed": seed, "rows": rows}


def _f(x: Any, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def markdown_table(result: Mapping[str, Any]) -> str:
    conf = f"{result['confidence']:.0%}"
    lines = [f"A = {result['a']}", f"B = {result['b']}", "",
             f"| Budget A | Budget B | n | Acc A (%) | Acc B (%) | B - A (pp) [{conf} paired CI] | both right | "
             "only A | only B | both wrong | Think tok A | Think tok B |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ci = r["difference_ci"]
        lines.append(
            f"| {_f(r['budget_a'], 'd')} | {_f(r['budget_b'], 'd')} | {r['n']} | {_f(r['accuracy_a'])} ± "
            f"{_f(r['stderr_a'])} | {_f(r['accuracy_b'])} ± {_f(r['stderr_b'])} | {r['difference']:+.1f} "
            f"[{_f(ci[0] if ci else None, '+.1f')}, {_f(ci[1] if ci else None, '+.1f')}] | {r['both_right']} | "
            f"{r['only_a']} | {r['only_b']} | {r['both_wrong']} | {_f(r['thinking_tokens_a'], '.0f')} | "
            f"{_f(r['thinking_tokens_b'], '.0f')} |")
    notes = sorted({f"matched by {r['matched_by']}" for r in result["rows"]})
    unmatched = [r for r in result["rows"] if r["unmatched_a"] or r["unmatched_b"]]
    if unmatched:
        notes.append("unmatched items left out: " + ", ".join(
            f"budget {r['budget_a'] if r['budget_a'] is not None else r['budget_b']}: A {r['unmatched_a']}, "
            f"B {r['unmatched_b']}" for r in unmatched))
    return "\n".join(lines + ["", "; ".join(notes)]) + "\n"


def plot_comparison(result: Mapping[str, Any], path: str) -> str:
    """Two panels: accuracy vs mean thinking tokens of A and B (±1 SE); the paired difference per budget with its
    CI. A run without token counts is plotted against its budget instead."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    accs = [r[f"accuracy_{s}"] for r in result["rows"] for s in "ab"]
    ax.set_ylim(max(0.0, min(accs) - 10.0), min(100.0, max(accs) + 10.0))
    ax.set_title("Accuracy vs thinking tokens", fontsize=10)
    ax_d.set_title("Paired difference per budget", fontsize=10)
    for side, name in (("a", result["a"]), ("b", result["b"])):
        xs, ys, es = [], [], []
        for r in result["rows"]:
            x = r[f"thinking_tokens_{side}"]
            x = x if x is not None else r[f"budget_{side}"] if r[f"budget_{side}"] is not None else None
            if x is None:
                continue
            xs.append(max(float(x), 1.0))
            ys.append(r[f"accuracy_{side}"])
            es.append(r[f"stderr_{side}"] or 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=es, fmt="o-" if side == "a" else "s--", capsize=3, label=f"{side.upper()}: {name}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("Mean thinking tokens")
    ax.set_ylabel("Accuracy (%, ±1 SE)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    labels, diffs, lo, hi = [], [], [], []
    for r in result["rows"]:
        labels.append(str(r["budget_a"] if r["budget_a"] is not None else r["budget_b"]))
        diffs.append(r["difference"])
        ci = r["difference_ci"] or [r["difference"], r["difference"]]
        lo.append(r["difference"] - ci[0])
        hi.append(ci[1] - r["difference"])
    ax_d.errorbar(range(len(diffs)), diffs, yerr=[lo, hi], fmt="o", capsize=4)
    ax_d.axhline(0.0, color="gray", lw=0.8)
    ax_d.set_xticks(range(len(labels)), labels)
    ax_d.set_xlabel("Budget")
    ax_d.set_ylabel(f"B - A (pp, {result['confidence']:.0%} paired bootstrap CI)")
    ax_d.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
