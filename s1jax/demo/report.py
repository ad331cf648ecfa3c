"""The demo's printout: the results table, the verdict computed from the numbers, and the next-step commands.

Kept apart from the stages so what the demo says is one small, testable module that never tunes anything.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["BASE", "SFT", "SFT_WAIT", "format_table", "verdict", "accuracy_by_ops", "next_step_commands", "next_steps"]

# Method names in results.jsonl / summary.json / the plot.
BASE = "base"
SFT = "s1-demo"
SFT_WAIT = "s1-demo +Wait"


def _fmt(x: Any, spec: str = ".1f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def format_table(summary: dict[str, Any]) -> str:
    """One row per (method, point): budget, average thinking tokens, accuracy, share of runs within budget."""
    head = f"{'model':<15}{'point':<12}{'budget':>7}{'avg think tok':>15}{'accuracy %':>12}{'Control %':>11}"
    lines = [head, "-" * len(head)]
    for m in summary["methods"]:
        for p in m["points"]:
            swb = p.get("samples_within_budget")
            lines.append(f"{m['method']:<15}{p['point']:<12}{_fmt(p.get('budget'), 'd'):>7}"
                         f"{p['avg_thinking_tokens']:>15.1f}{p['accuracy']:>12.1f}"
                         f"{_fmt(None if swb is None else 100 * swb):>11}")
    lines += ["", f"{'method':<15}{'Control %':>11}{'Scaling (pp/1K tok)':>21}{'Performance %':>15}{'|A|':>5}",
              "-" * 67]
    for m in summary["methods"]:
        ctrl = None if m.get("control") is None else 100 * m["control"]
        lines.append(f"{m['method']:<15}{_fmt(ctrl):>11}{_fmt(m.get('scaling_pp_per_1k_tokens'), '+.2f'):>21}"
                     f"{_fmt(m.get('performance')):>15}{m['num_points']:>5}")
    return "\n".join(lines)


def _method(summary: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((m for m in summary["methods"] if m["method"] == name), None)


def accuracy_by_ops(records: list[dict[str, Any]], eval_rows: dict[str, dict[str, Any]], method: str, point: str
                    ) -> str:
    """"ops: correct/total" at one point: how accuracy falls with the length of the chain."""
    by: dict[int, list[bool]] = {}
    for r in records:
        if r["method"] == method and r["point"] == point and r["item_id"] in eval_rows:
            by.setdefault(int(eval_rows[r["item_id"]]["num_ops"]), []).append(bool(r["correct"]))
    return ", ".join(f"{k} ops {sum(v)}/{len(v)}" for k, v in sorted(by.items()))


def verdict(summary: dict[str, Any]) -> list[str]:
    """Plain statements derived from the numbers: does accuracy grow with thinking, did SFT help, does "Wait" help."""
    out = []
    sft, base, wait = _method(summary, SFT), _method(summary, BASE), _method(summary, SFT_WAIT)
    for m in (sft, base):
        if m is None or len(m["points"]) < 2:
            continue
        pts = sorted(m["points"], key=lambda p: p["x"])
        lo, hi = pts[0], pts[-1]
        s = m.get("scaling_pp_per_1k_tokens")
        rising = hi["accuracy"] > lo["accuracy"] and (s or 0) > 0
        out.append(
            f"{m['method']}: accuracy {lo['accuracy']:.1f}% at budget {lo['budget']} -> {hi['accuracy']:.1f}% at budget "
            f"{hi['budget']} (avg {lo['avg_thinking_tokens']:.0f} -> {hi['avg_thinking_tokens']:.0f} thinking tokens), "
            f"Scaling {_fmt(s, '+.1f')} pp/1K tokens: test-time scaling "
            + ("SHOWS (more thinking, higher accuracy)." if rising else "does NOT show on this run.")
        )
    if sft is not None and base is not None and sft["points"] and base["points"]:
        out.append(f"SFT: best accuracy {base['performance']:.1f}% (base) -> {sft['performance']:.1f}% (fine-tuned)"
                   + (": fine-tuning helped." if sft["performance"] > base["performance"] else
                      ": fine-tuning did NOT improve the best accuracy."))
    if wait is not None and len(wait["points"]) >= 2:
        pts = sorted(wait["points"], key=lambda p: p["x"])
        accs = ", ".join(f"{p['accuracy']:.1f}% ({p['avg_thinking_tokens']:.0f} tok) at num_ignore={p['x']}"
                         for p in pts)
        better = pts[-1]["accuracy"] > pts[0]["accuracy"]
        out.append(f"Wait extrapolation: {accs}: "
                   + ("suppressing the end of thinking helped." if better else "suppressing the end of thinking did "
                      "NOT help here."))
    return out


def _short(path: str) -> str:
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


def next_step_commands(out_dir: str, tokenizer_path: str) -> list[tuple[str, list[str]]]:
    """(comment, argv) of the commands the demo suggests; tests parse every one against its config file."""
    ckpt = _short(os.path.join(out_dir, "train", "checkpoints"))
    data = _short(os.path.join(out_dir, "data", "eval.jsonl"))
    tok = _short(tokenizer_path)
    return [
        ("the fine-tuned demo model, one question",
         ["s1jax", "generate", "--config=configs/generate/smollm2.py", f"--config.model.path={ckpt}",
          f"--config.model.tokenizer={tok}", '--config.prompt="Compute 7 + 5 - 3 from left to right."']),
        ("the fine-tuned demo model on the demo's eval set, with the eval CLI",
         ["s1jax", "eval", "--config=configs/eval/math500.py", "--config.benchmark=jsonl", f"--config.data_path={data}",
          f"--config.model.path={ckpt}", f"--config.model.tokenizer={tok}", "--config.model.dtype=float32",
          '--config.budgets="(16, 32, 64)"', f"--config.output_dir={_short(os.path.join(out_dir, 'eval_cli'))}"]),
        ("s1K SFT of a small Qwen on one GPU/TPU host",
         ["s1jax", "train", "--config=configs/train/qwen2_5_0_5b.py",
          "--config.model.path=/models/Qwen2.5-0.5B-Instruct"]),
        ("s1-32B: the paper's run (16 H100)",
         ["s1jax", "train", "--config=configs/train/s1_32b.py", "--config.model.path=/models/Qwen2.5-32B-Instruct"]),
        ("AIME24 budget-forcing sweep of the result",
         ["s1jax", "eval", "--config=configs/eval/aime24.py", "--config.model.path=runs/s1-32b/hf"]),
        ("MATH500 with the 'Wait' extrapolation sweep",
         ["s1jax", "eval", "--config=configs/eval/math500.py", "--config.model.path=runs/s1-32b/hf",
          "--config.num_ignore_sweep=true"]),
    ]


def next_steps(out_dir: str, tokenizer_path: str) -> str:
    cmds = next_step_commands(out_dir, tokenizer_path)
    lines = ["Next steps", "- With the demo's outputs (the checkpoint's tokenizer is the GGUF's):"]
    for i, (comment, argv) in enumerate(cmds):
        if i == 2:
            lines.append("- The real thing: a Qwen checkpoint (HF directory: config.json, *.safetensors, tokenizer.json) "
                         "on a GPU/TPU host:")
        lines.append(f"  # {comment}")
        lines.append("  " + " ".join(argv))
    lines.append("  (or evaluate a released s1 model directly: --config.model.path=/models/s1.1-32B)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- driver
