"""Evaluation outputs: a resumable JSONL of every graded generation, a summary JSON, a Markdown table and a plot.

The JSONL is the single source of truth: each record is one generation (method, point, item, sample) with its
extracted answer and grade, appended and flushed as soon as its batch finishes. A rerun reads it back, skips the
keys already present and recomputes the summary from all records, so a run killed at item 400 of 500 loses at
most one batch. A torn last line (killed mid-write) is ignored and overwritten.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from s1jax.eval.grading import grade_answer
from s1jax.eval.metrics import accuracy, control, finite_or_none, majority_vote, performance, scaling
from s1jax.eval.stats import DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, bootstrap_scaling_ci, mean_stderr

__all__ = ["ResultsWriter", "load_records", "summarize", "markdown_report", "plot_scaling", "write_reports",
           "record_key", "MAJORITY"]

MAJORITY = "majority_vote"


def record_key(rec: dict[str, Any]) -> tuple[str, str, str, int]:
    """Identity of a generation for resuming: (method, point, item id, sample index)."""
    return (str(rec["method"]), str(rec["point"]), str(rec["item_id"]), int(rec.get("sample", 0)))


def load_records(path: str) -> list[dict[str, Any]]:
    """All complete records of a results JSONL (a torn trailing line is skipped); [] if the file is missing."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn write from a kill: drop it
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


class ResultsWriter:
    """Append-only JSONL writer that knows which generations are already done.

    ``stamp`` fields (e.g. the run fingerprint digest) are added to every record appended, so records can be
    filtered by the run that wrote them."""

    def __init__(self, path: str, stamp: dict[str, Any] | None = None) -> None:
        self.path = path
        self.stamp = dict(stamp or {})
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.records = load_records(path)
        self._done = {record_key(r) for r in self.records}
        self._truncate_torn_tail()

    def _truncate_torn_tail(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def done(self, method: str, point: str, item_id: str, sample: int = 0) -> bool:
        return (method, point, str(item_id), int(sample)) in self._done

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Write records and fsync, so they survive a kill right after this returns."""
        records = [{**rec, **self.stamp} for rec in records] if self.stamp else list(records)
        if not records:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for rec in records:
            self._done.add(record_key(rec))
            self.records.append(rec)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _pp_stderr(correct: Sequence[bool]) -> float | None:
    """Standard error of an accuracy in percentage points."""
    return mean_stderr([100.0 * bool(c) for c in correct])


def _scaling_ci(by_point: list[list[dict[str, Any]]], iters: int, seed: int) -> list[float] | None:
    """Bootstrap CI of Scaling (pp / 1K tokens) over the items every point of the method answered."""
    if len(by_point) < 2 or iters <= 0:
        return None
    maps = [{(r["item_id"], r.get("sample", 0)): r for r in recs} for recs in by_point]
    common = sorted(set.intersection(*(set(m) for m in maps)), key=str)
    if len(common) < 2:
        return None
    correct = np.array([[float(bool(m[k]["correct"])) for m in maps] for k in common])  # [items, points]
    tokens = np.array([[float(m[k]["thinking_tokens"]) for m in maps] for k in common])
    ci = bootstrap_scaling_ci(correct, tokens, tokens_per_unit=1000.0, iters=iters, seed=seed)
    return None if ci is None else [ci[0], ci[1]]


def _method_summary(method: str, points: list[dict[str, Any]], budgeted: bool,
                    scaling_ci: list[float] | None = None) -> dict[str, Any]:
    xs = [(p["avg_thinking_tokens"], p["accuracy"]) for p in points]
    with_budget = [p for p in points if p.get("budget") is not None]
    per_sample = [p["samples_within_budget"] for p in with_budget]
    return {
        "method": method,
        "num_points": len(points),
        "control": control([p["avg_thinking_tokens"] for p in with_budget], [p["budget"] for p in with_budget])
        if budgeted and with_budget else None,
        "control_per_sample": _mean(per_sample) if budgeted and with_budget else None,
        "scaling_pp_per_token": finite_or_none(scaling(xs)),
        "scaling_pp_per_1k_tokens": finite_or_none(scaling(xs, tokens_per_unit=1000.0)),
        "scaling_pp_per_1k_tokens_ci": scaling_ci,
        "performance": performance([p["accuracy"] for p in points]),
        "points": points,
    }


def _majority_points(records: list[dict[str, Any]], timeout_s: float) -> list[dict[str, Any]]:
    """maj@k for k = 1, 2, 4, ... up to the samples present; compute is the summed thinking of the k votes."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_item[r["item_id"]].append(r)
    n = min(len(v) for v in by_item.values())
    ks = [k for k in (2**i for i in range(20)) if k <= n] + ([n] if n & (n - 1) else [])
    points = []
    for k in ks:
        correct, tokens = [], []
        for recs in by_item.values():
            recs = sorted(recs, key=lambda r: r["sample"])[:k]
            winner = majority_vote([r.get("extracted") for r in recs], recs[0]["kind"])
            correct.append(winner is not None and grade_answer(winner, recs[0]["reference"], recs[0]["kind"], timeout_s).correct)
            tokens.append(sum(r["thinking_tokens"] for r in recs))
        points.append({"point": f"maj@{k}", "x": k, "budget": None, "n": len(correct), "accuracy": accuracy(correct),
                       "accuracy_stderr": _pp_stderr(correct), "avg_thinking_tokens": _mean(tokens),
                       "samples_within_budget": None})
    return points


def summarize(records: Sequence[dict[str, Any]], grade_timeout_s: float = 5.0, *,
              bootstrap_samples: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Per point: accuracy (%) with its standard error, average thinking tokens, budget adherence; per method:
    Control / Scaling (with a bootstrap CI over items) / Performance.

    Points of a method are ordered by their swept value ``x`` (budget, num_ignore, ...). A method counts as
    budgeted (and gets a Control value) when its points carry a ``budget``.
    """
    by_method: OrderedDict[str, OrderedDict[str, list[dict[str, Any]]]] = OrderedDict()
    for r in records:
        by_method.setdefault(r["method"], OrderedDict()).setdefault(r["point"], []).append(r)
    methods = []
    for method, by_point in by_method.items():
        if method == MAJORITY:
            pts = _majority_points([r for recs in by_point.values() for r in recs], grade_timeout_s)
            methods.append(_method_summary(method, pts, budgeted=False))
            continue
        pts, point_records = [], {}
        for point, recs in by_point.items():
            point_records[point] = recs
            budget = recs[0].get("budget")
            toks = [r["thinking_tokens"] for r in recs]
            pts.append({
                "point": point, "x": recs[0].get("x"), "budget": budget, "n": len(recs),
                "accuracy": accuracy([r["correct"] for r in recs]),
                "accuracy_stderr": _pp_stderr([r["correct"] for r in recs]),
                "avg_thinking_tokens": _mean(toks),
                "samples_within_budget": control(toks, [budget] * len(toks)) if budget is not None else None,
                "avg_tries": _mean([r.get("tries", 1) for r in recs]),
            })
        pts.sort(key=lambda p: (p["x"] is None, p["x"] if isinstance(p["x"], (int, float)) else 0))
        ci = _scaling_ci([point_records[p["point"]] for p in pts], bootstrap_samples, seed)
        methods.append(_method_summary(method, pts, budgeted=any(p["budget"] is not None for p in pts), scaling_ci=ci))
    return {"num_records": len(records), "methods": methods,
            "uncertainty": {"accuracy_stderr": "sample std (ddof=1) / sqrt(n), in pp (lm-eval's mean_stderr)",
                            "scaling_ci": f"{DEFAULT_CONFIDENCE:.0%} percentile bootstrap over items",
                            "bootstrap_samples": bootstrap_samples, "seed": seed}}


def _fmt(x: Any, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _fmt_ci(ci: Any) -> str:
    return "-" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def markdown_report(summary: dict[str, Any], title: str = "s1jax evaluation") -> str:
    """Method table in the layout of s1's Table 3, then one accuracy-vs-compute table per method."""
    lines = [f"# {title}", "", "| Method | Control | Control (per sample) | Scaling (pp / 1K tok) | "
             "Scaling (pp / tok) | Performance | Runs | Scaling 95% CI |", "|---|---|---|---|---|---|---|---|"]
    for m in summary["methods"]:
        ctrl = None if m["control"] is None else 100 * m["control"]
        cps = None if m["control_per_sample"] is None else 100 * m["control_per_sample"]
        lines.append(f"| {m['method']} | {_fmt(ctrl)}{'%' if ctrl is not None else ''} | {_fmt(cps)}"
                     f"{'%' if cps is not None else ''} | {_fmt(m['scaling_pp_per_1k_tokens'], '.2f')} | "
                     f"{_fmt(m['scaling_pp_per_token'], '.5f')} | {_fmt(m['performance'])} | {m['num_points']} | "
                     f"{_fmt_ci(m.get('scaling_pp_per_1k_tokens_ci'))} |")
    for m in summary["methods"]:
        lines += ["", f"## {m['method']}", "", "| Point | Budget | n | Accuracy (%) | ± SE | Avg thinking tokens | "
                  "Samples within budget |", "|---|---|---|---|---|---|---|"]
        for p in m["points"]:
            swb = p.get("samples_within_budget")
            lines.append(f"| {p['point']} | {_fmt(p['budget'], 'd')} | {p['n']} | {_fmt(p['accuracy'])} | "
                         f"{_fmt(p.get('accuracy_stderr'))} | {_fmt(p['avg_thinking_tokens'], '.0f')} | "
                         f"{_fmt(None if swb is None else 100 * swb)} |")
    return "\n".join(lines) + "\n"


def plot_scaling(summary: dict[str, Any], path: str, title: str = "Accuracy vs thinking tokens") -> str:
    """PNG of accuracy vs average thinking tokens, one line per method (log2 x axis, as in s1's figures)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for m in summary["methods"]:
        pts = sorted(m["points"], key=lambda p: p["avg_thinking_tokens"])
        if not pts:
            continue
        xs = [max(p["avg_thinking_tokens"], 1.0) for p in pts]
        style = "o-" if m["method"] != MAJORITY else "s--"
        yerr = [p.get("accuracy_stderr") or 0.0 for p in pts]  # one standard error
        ax.errorbar(xs, [p["accuracy"] for p in pts], yerr=yerr, fmt=style, capsize=3, label=m["method"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("Average thinking tokens")
    ax.set_ylabel("Accuracy (%, bars: ±1 SE)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_reports(records: Sequence[dict[str, Any]], out_dir: str, title: str = "s1jax evaluation",
                  grade_timeout_s: float = 5.0, *, bootstrap_samples: int = DEFAULT_BOOTSTRAP) -> dict[str, str]:
    """summary.json, results.md and scaling.png in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(records, grade_timeout_s, bootstrap_samples=bootstrap_samples)
    paths = {"summary": os.path.join(out_dir, "summary.json"), "markdown": os.path.join(out_dir, "results.md"),
             "plot": os.path.join(out_dir, "scaling.png")}
    with open(paths["summary"], "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(markdown_report(summary, title))
    plot_scaling(summary, paths["plot"], title)
    return paths
