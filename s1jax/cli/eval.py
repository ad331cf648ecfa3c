"""``s1jax eval --config=configs/eval/aime24.py --config.model.path=PATH [--config.FIELD=VALUE ...]``: benchmark +
budget sweeps.

Loads the benchmark (local file or hub), the model and tokenizer, runs the enabled methods (budget forcing sweep,
"Wait" extrapolation, conditional-control baselines, rejection sampling, majority voting), appends every graded
generation to ``output_dir/results.jsonl`` (a rerun resumes), then writes summary.json, results.md and scaling.png.
The config and the benchmark file are checked before the model loads; ``output_dir`` is created when generation
starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ml_collections

import s1jax
from s1jax.builders import budget_from_config, sampling_from_config
from s1jax.cli import app
from s1jax.cli.checks import check_choice, check_dtype, check_int, check_int_sequence, check_number, check_path
from s1jax.config import ConfigError, format_config
from s1jax.eval import scaling as sc
from s1jax.data.sources import check_source, source_kind
from s1jax.eval.benchmarks import BENCHMARKS, load_benchmark
from s1jax.eval.report import ResultsWriter, write_reports

__all__ = ["COMMAND", "main", "validate"]

COMMAND = app.Command(
    name="eval",
    summary="AIME24 / MATH500 / GPQA evaluation and budget sweeps",
    doc=__doc__,
    fields_config=app.config_path("eval", "base.py"),
    shipped=("eval/*.py",),
)

_METHODS = ("budget_forcing", "num_ignore_sweep", "token_conditional", "token_conditional_bf", "step_conditional",
            "step_conditional_bf", "class_conditional", "class_conditional_bf", "rejection_sampling", "majority_vote")


def validate(cfg: ml_collections.ConfigDict) -> tuple[Any, Any]:
    """Every check that needs no model; returns (Budget, Sampling). Raises ConfigError naming the field."""
    if not cfg.model.path:
        raise ConfigError("set --config.model.path (HF dir, .gguf or s1jax checkpoint)")
    check_dtype(cfg.model.dtype, "model.dtype")
    if cfg.model.param_dtype:
        check_dtype(cfg.model.param_dtype, "model.param_dtype")
    if cfg.model.tokenizer:
        check_path(cfg.model.tokenizer, "model.tokenizer", "tokenizer")
    check_choice(cfg.benchmark.lower(), "benchmark", sorted(BENCHMARKS) + ["jsonl"] + ["aime", "math", "gpqa_diamond"])
    if cfg.data_path and source_kind(cfg.data_path) == "tfds":
        try:  # the built dataset's data dir, version and schema (small JSON files only)
            check_source(cfg.data_path, tfds_dir=cfg.get("tfds_dir", ""), field="data_path")
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(str(e).replace("the tfds_dir field", "--config.tfds_dir")) from None
    elif cfg.data_path:
        check_path(cfg.data_path, "data_path", "benchmark file")
    elif cfg.benchmark.lower() == "jsonl":
        raise ConfigError("benchmark='jsonl' needs --config.data_path (a local .jsonl/.json/.parquet file)")
    if not any(cfg[m] for m in _METHODS):
        raise ConfigError(f"no method is enabled; set one of {', '.join('--config.' + m + '=true' for m in _METHODS)}")
    budgets = check_int_sequence(cfg.budgets, "budgets", minimum=0)
    check_int_sequence(cfg.num_ignore, "num_ignore", minimum=0)
    check_int_sequence(cfg.steps, "steps", minimum=1)
    check_int_sequence(cfg.class_budgets, "class_budgets", minimum=0)
    for field, minimum in (("limit", 0), ("batch_size", 1), ("max_cache_len", 0), ("num_ignore_max_tokens", 0),
                           ("tokens_per_step", 1), ("rejection_max_tries", 1), ("majority_samples", 1),
                           ("budget.uncapped_thinking_tokens", 1)):
        group, _, leaf = field.rpartition(".")
        check_int((cfg[group] if group else cfg)[leaf], field, minimum)
    check_number(cfg.grade_timeout_s, "grade_timeout_s", minimum=0.001)
    check_number(cfg.majority_temperature, "majority_temperature", minimum=0.0)
    budget = budget_from_config(cfg.budget, max_thinking_tokens=max(budgets), num_ignore=0)
    sampling = sampling_from_config(cfg.sampling, seed=cfg.seed)
    return budget, sampling


def _run_methods(cfg: ml_collections.ConfigDict, items: list, gen_fn: Any, sweep_fn: Any, writer: Any) -> None:
    """Run every enabled method in a fixed order; each one resumes from the writer's records."""
    common = {"batch_size": cfg.batch_size, "grade_timeout_s": cfg.grade_timeout_s, "progress": cfg.progress,
              "save_token_ids": cfg.save_token_ids}
    uncapped = cfg.budget.uncapped_thinking_tokens
    if cfg.budget_forcing:
        sc.run_budget_sweep(items, sweep_fn, list(cfg.budgets), writer=writer, **common)
    if cfg.num_ignore_sweep:
        sc.run_num_ignore_sweep(items, gen_fn, list(cfg.num_ignore), writer=writer,
                                max_thinking_tokens=cfg.num_ignore_max_tokens, **common)
    for kind, on, on_bf, budgets in (
        ("token", cfg.token_conditional, cfg.token_conditional_bf, cfg.budgets),
        ("step", cfg.step_conditional, cfg.step_conditional_bf, cfg.steps),
        ("class", cfg.class_conditional, cfg.class_conditional_bf, cfg.class_budgets),
    ):
        for bf, enabled in ((False, on), (True, on_bf)):
            if enabled:
                pts = sc.conditional_points(kind, list(budgets), budget_forcing=bf, uncapped_tokens=uncapped,
                                            tokens_per_step=cfg.tokens_per_step, class_budgets=tuple(cfg.class_budgets))
                name = f"{kind}_conditional" + ("+budget_forcing" if bf else "")
                sc.run_points(items, gen_fn, pts, writer=writer, method=name, **common)
    if cfg.rejection_sampling:
        sc.run_rejection_sampling(items, gen_fn, list(cfg.budgets), writer=writer, uncapped_tokens=uncapped,
                                  max_tries=cfg.rejection_max_tries, seed=cfg.seed, **common)
    if cfg.majority_vote:
        sc.run_majority_vote(items, gen_fn, cfg.majority_samples, writer=writer, max_thinking_tokens=max(cfg.budgets),
                             temperature=cfg.majority_temperature, seed=cfg.seed, **common)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``s1jax eval``; returns the process exit code."""
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return 0
    budget, sampling = validate(cfg)
    try:
        items = load_benchmark(cfg.benchmark, cfg.data_path or None, limit=cfg.limit, seed=cfg.seed,
                               tfds_dir=cfg.get("tfds_dir", ""),
                               gpqa_ask_letter=cfg.gpqa_ask_letter)
    except (OSError, ValueError) as e:
        raise ConfigError(f"benchmark {cfg.benchmark!r}: {e}") from e
    if not items:
        raise ConfigError(f"benchmark {cfg.benchmark!r} from {cfg.data_path or 'the hub'} has no items")
    app.say(format_config(cfg))
    app.say(f"{cfg.benchmark}: {len(items)} items from {cfg.data_path or 'the hub'}")

    model = s1jax.load_model(cfg.model.path, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype or None,
                             attention_impl=cfg.model.attention_impl or None)
    tok = s1jax.load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    gen_fn, sweep_fn = sc.make_generate_fns(model, tok, budget, sampling, system=cfg.system or None,
                                            batch_size=cfg.batch_size, max_cache_len=cfg.max_cache_len or None)

    with app.output_dir(cfg.output_dir):
        writer = ResultsWriter(os.path.join(cfg.output_dir, "results.jsonl"))
        if writer.records:
            app.say(f"resuming: {len(writer.records)} generations already in {writer.path}")
        _run_methods(cfg, items, gen_fn, sweep_fn, writer)

    title = f"{cfg.benchmark} | {os.path.basename(os.path.normpath(cfg.model.path))}"
    paths = write_reports(writer.records, cfg.output_dir, title=title, grade_timeout_s=cfg.grade_timeout_s)
    with open(paths["markdown"], encoding="utf-8") as f:
        app.say(f.read())
    app.say("\n".join(f"{k}: {v}" for k, v in {"results": writer.path, **paths}.items()))
    return 0


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
