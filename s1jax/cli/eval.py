"""``s1jax eval --config=configs/eval/aime24.py [--config.field=value ...]``: benchmark + budget sweeps.

Loads the benchmark (local file or hub), the model and tokenizer, runs the enabled methods (budget forcing sweep,
"Wait" extrapolation, conditional-control baselines, rejection sampling, majority voting), appends every graded
generation to ``output_dir/results.jsonl`` (a rerun resumes), then writes summary.json, results.md and scaling.png.
Heavy imports (JAX, the model) happen inside :func:`main`, so importing this module for ``default_config`` in a
config file is cheap.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import ml_collections

from s1jax.model.presets import model_group

__all__ = ["default_config", "main"]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.path.join(os.path.dirname(_REPO_ROOT), "shared", "data")


def default_config(benchmark: str, data_file: str | None, budgets: tuple[int, ...]) -> ml_collections.ConfigDict:
    """The eval config every configs/eval/*.py starts from; ``data_file`` is looked up in ../shared/data."""
    cfg = ml_collections.ConfigDict()
    # The model group every CLI shares; path (HF dir, .gguf or s1jax checkpoint) is required here, tokenizer
    # defaults to the one found with the weights.
    cfg.model = model_group(path="", preset="", dtype="bfloat16")
    cfg.system = ""  # "" = the chat format's default system message
    cfg.benchmark = benchmark
    local = os.path.join(SHARED_DATA, data_file) if data_file else ""
    cfg.data_path = local if local and os.path.isfile(local) else ""  # "" = load from the hub
    cfg.limit = 0  # number of items; 0 = all
    cfg.gpqa_ask_letter = False  # s1's GPQA prompt has no instruction; True appends one
    cfg.seed = 0
    cfg.output_dir = os.path.join("runs", "eval", benchmark)
    cfg.batch_size = 8  # questions per generate call (device rows) and per JSONL checkpoint
    cfg.max_cache_len = 0  # KV-cache slots per row; 0 = sized from the largest budget + max_answer_tokens
    cfg.grade_timeout_s = 5.0
    cfg.save_token_ids = False
    cfg.progress = True

    cfg.budget = ml_collections.ConfigDict()
    cfg.budget.max_answer_tokens = 512
    cfg.budget.ignore_str = "Wait"
    cfg.budget.uncapped_thinking_tokens = 32768  # "no budget forcing": only the context limits thinking

    cfg.sampling = ml_collections.ConfigDict()
    cfg.sampling.temperature = 0.0
    cfg.sampling.top_p = 1.0
    cfg.sampling.top_k = 0

    cfg.budget_forcing = True
    cfg.budgets = tuple(budgets)
    cfg.num_ignore_sweep = False
    cfg.num_ignore = (0, 1, 2, 4, 6)
    cfg.num_ignore_max_tokens = max(budgets)
    cfg.token_conditional = False
    cfg.token_conditional_bf = False
    cfg.step_conditional = False
    cfg.step_conditional_bf = False
    cfg.steps = (16, 32, 64, 128, 256)
    cfg.tokens_per_step = 100
    cfg.class_conditional = False
    cfg.class_conditional_bf = False
    cfg.class_budgets = (2048, 8192)
    cfg.rejection_sampling = False
    cfg.rejection_max_tries = 64
    cfg.majority_vote = False
    cfg.majority_samples = 8
    cfg.majority_temperature = 1.0
    return cfg


def _run_methods(cfg: ml_collections.ConfigDict, items: list, gen_fn: Any, sweep_fn: Any, writer: Any) -> None:
    """Run every enabled method in a fixed order; each one resumes from the writer's records."""
    from s1jax.eval import scaling as sc

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


def main(argv: list[str]) -> int:
    """Entry point for ``s1jax eval``; returns the process exit code."""
    from s1jax.config import format_config, parse_config_args

    cfg, rest = parse_config_args(argv)
    if rest:
        print(f"s1jax eval: unexpected arguments {rest}", file=sys.stderr)
        return 2
    if not cfg.model.path:
        print("s1jax eval: set --config.model.path (HF dir, .gguf or s1jax checkpoint)", file=sys.stderr)
        return 2
    print(format_config(cfg))

    from s1jax.eval.benchmarks import load_benchmark
    from s1jax.eval.report import ResultsWriter, write_reports
    from s1jax.eval.scaling import make_generate_fns

    items = load_benchmark(cfg.benchmark, cfg.data_path or None, limit=cfg.limit, seed=cfg.seed,
                           gpqa_ask_letter=cfg.gpqa_ask_letter)
    print(f"{cfg.benchmark}: {len(items)} items from {cfg.data_path or 'the hub'}")

    import s1jax

    model = s1jax.load_model(cfg.model.path, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype or None,
                             attention_impl=cfg.model.attention_impl or None)
    tok = s1jax.load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    budget = s1jax.Budget(max_thinking_tokens=max(cfg.budgets), num_ignore=0, ignore_str=cfg.budget.ignore_str,
                          max_answer_tokens=cfg.budget.max_answer_tokens)
    sampling = s1jax.Sampling(temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                              top_k=cfg.sampling.top_k, seed=cfg.seed)
    gen_fn, sweep_fn = make_generate_fns(model, tok, budget, sampling, system=cfg.system or None,
                                         batch_size=cfg.batch_size, max_cache_len=cfg.max_cache_len or None)

    os.makedirs(cfg.output_dir, exist_ok=True)
    writer = ResultsWriter(os.path.join(cfg.output_dir, "results.jsonl"))
    if writer.records:
        print(f"resuming: {len(writer.records)} generations already in {writer.path}")
    _run_methods(cfg, items, gen_fn, sweep_fn, writer)

    title = f"{cfg.benchmark} | {os.path.basename(os.path.normpath(cfg.model.path))}"
    paths = write_reports(writer.records, cfg.output_dir, title=title, grade_timeout_s=cfg.grade_timeout_s)
    with open(paths["markdown"], encoding="utf-8") as f:
        print(f.read())
    print("\n".join(f"{k}: {v}" for k, v in {"results": writer.path, **paths}.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
