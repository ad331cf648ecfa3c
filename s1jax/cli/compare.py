"""``s1jax compare A B [--config.FIELD=VALUE ...]``: two runs of the same benchmark side by side.

A and B are each an s1jax eval output directory or an lm-eval ``samples_<task>_<date>.jsonl`` (s1's PyTorch/vLLM
run, for one). Prints, per budget: the accuracy of each with its standard error, the paired difference B - A with a
paired bootstrap CI, item agreement (both right / only A / only B / both wrong) and the mean thinking tokens of
each; writes comparison.md, comparison.json and comparison.png (accuracy vs thinking tokens, and the difference per
budget) to ``output_dir``. Items are matched by id, or by problem text when the ids differ.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence

from s1jax import exit_codes
from s1jax.cli import app
from s1jax.cli.checks import check_choice, check_int, check_number, check_path
from s1jax.config import ConfigError
from s1jax.eval.compare import CompareError, compare_runs, load_run, markdown_table, plot_comparison

__all__ = ["COMMAND", "main"]

COMMAND = app.Command(
    name="compare",
    summary="two eval runs (s1jax dirs or lm-eval samples files) item by item",
    doc=__doc__,
    default_config=app.config_path("compare.py"),
    shipped=("compare.py",),
)


def _positional(argv: Sequence[str]) -> list[str]:
    """``A B --config...`` -> ``--config.a=A --config.b=B --config...`` (positional runs come first)."""
    args = list(argv)
    names = []
    while args and not args[0].startswith("-") and len(names) < 2:
        names.append(args.pop(0))
    return [f"--config.{k}={v}" for k, v in zip("ab", names)] + args


def _slug(spec: str) -> str:
    base = os.path.basename(os.path.normpath(spec))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(base)[0] if base.endswith(".jsonl") else base)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = app.parse(COMMAND, _positional(argv))
    if cfg is None:
        return exit_codes.OK
    if not cfg.a or not cfg.b:
        raise ConfigError("give two runs: s1jax compare A B (each an s1jax eval directory or an lm-eval "
                          "samples_<task>_<date>.jsonl)")
    check_choice(cfg.match, "match", ["auto", "id", "text"])
    check_int(cfg.bootstrap_samples, "bootstrap_samples", 1)
    check_int(cfg.a_budget, "a_budget", 0)
    check_int(cfg.b_budget, "b_budget", 0)
    check_number(cfg.confidence, "confidence", minimum=0.5)
    if cfg.tokenizer:
        check_path(cfg.tokenizer, "tokenizer", "tokenizer")
    if cfg.confidence >= 1.0:
        raise ConfigError(f"--config.confidence must be below 1, got {cfg.confidence}")
    try:
        a = load_run(cfg.a, cfg.a_label or None, cfg.method, cfg.a_budget or None, cfg.tokenizer)
        b = load_run(cfg.b, cfg.b_label or None, cfg.method, cfg.b_budget or None, cfg.tokenizer)
        result = compare_runs(a, b, match=cfg.match, bootstrap_samples=cfg.bootstrap_samples, seed=cfg.seed,
                              confidence=cfg.confidence)
    except CompareError as e:
        raise ConfigError(str(e)) from e
    table = markdown_table(result)
    app.say(table)
    out = cfg.output_dir or os.path.join("runs", "compare", f"{_slug(cfg.a)}_vs_{_slug(cfg.b)}")
    with app.output_dir(out):
        with open(os.path.join(out, "comparison.md"), "w", encoding="utf-8") as f:
            f.write(table)
        with open(os.path.join(out, "comparison.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        plot = plot_comparison(result, os.path.join(out, "comparison.png"))
    app.say(f"written: {os.path.join(out, 'comparison.md')}, comparison.json, {plot}")
    return exit_codes.OK


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
