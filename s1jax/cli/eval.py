"""``s1jax eval --config=configs/eval/aime24.py --config.model.path=PATH [--config.FIELD=VALUE ...]``: benchmark +
budget sweeps.

Loads the benchmark (local file, the copy shipped in data/eval, or the hub), the model and tokenizer, runs the
enabled methods (budget forcing sweep, "Wait" extrapolation, conditional-control baselines, rejection sampling,
majority voting), appends every graded generation to ``output_dir/results.jsonl``, then writes summary.json,
results.md and scaling.png (accuracy with standard errors, Scaling with a bootstrap CI) and lm-eval's
``results_<date>.json`` + ``samples_<task>_<date>.jsonl``.

A rerun resumes only a run with the same fingerprint (model weights, tokenizer, system prompt, sampling/budget/method
settings, benchmark items, s1jax version: ``fingerprint.json``); any other run in ``output_dir`` stops the command
before the model loads, naming what differs (``--config.overwrite=true`` replaces it). More budgets or a larger
``limit`` extend a run, and the report counts exactly the records of the current settings. An empty ``output_dir``
means ``runs/eval/<benchmark>/<model>-<fingerprint>``. ``run_config.json`` keeps the resolved config and versions.

Multi-host (``distributed``): every host runs the same generations; process 0 alone writes and prints, and every host
resumes from process 0's results file. The config, the benchmark file, the ``mesh`` (against the model and the
devices) and the item list (against every other host) are checked before the model loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

import s1jax
from s1jax.builders import budget_from_config, sampling_from_config
from s1jax.cli import app, multihost
from s1jax.cli.checks import (check_chat_format, check_checkpoint, check_choice, check_dtype, check_int,
                              check_int_sequence, check_number, check_path, model_config_of)
from s1jax.config import ConfigError, format_config
from s1jax.eval import fingerprint as fpr
from s1jax.eval import scaling as sc
from s1jax.data.sources import check_source, source_kind
from s1jax.eval.benchmarks import canonical_name, known_names, load_benchmark
from s1jax.eval.lmeval_files import write_lmeval_files
from s1jax.eval.report import ResultsWriter, write_reports
from s1jax.eval.selection import planned_keys, select_records
from s1jax.inference import hosts
from s1jax.inference.mesh import describe, prepare
from s1jax.sharding import INFERENCE_RULES

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
        check_checkpoint(cfg.model.tokenizer, "model.tokenizer", "tokenizer")
    check_chat_format(cfg.model.get("chat_format"), "model.chat_format")
    check_choice(cfg.benchmark.lower(), "benchmark", known_names())
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
    for field, minimum in (("limit", 0), ("batch_size", 1), ("call_size", 0), ("max_cache_len", 0), ("num_ignore_max_tokens", 0),
                           ("tokens_per_step", 1), ("rejection_max_tries", 1), ("majority_samples", 1),
                           ("budget.uncapped_thinking_tokens", 1)):
        group, _, leaf = field.rpartition(".")
        check_int((cfg[group] if group else cfg)[leaf], field, minimum)
    check_number(cfg.grade_timeout_s, "grade_timeout_s", minimum=0.001)
    check_int(cfg.bootstrap_samples, "bootstrap_samples", 0)
    check_number(cfg.majority_temperature, "majority_temperature", minimum=0.0)
    budget = budget_from_config(cfg.budget, max_thinking_tokens=max(budgets), num_ignore=0)
    sampling = sampling_from_config(cfg.sampling, seed=cfg.seed)
    check_checkpoint(cfg.model.path, "model.path")
    return budget, sampling


def _run_methods(cfg: ml_collections.ConfigDict, items: list, gen_fn: Any, sweep_fn: Any, writer: Any) -> None:
    """Run every enabled method in a fixed order; each one resumes from the writer's records."""
    common = {"batch_size": cfg.batch_size, "call_size": cfg.get("call_size", 0) or None, "grade_timeout_s": cfg.grade_timeout_s, "progress": cfg.progress,
              "save_token_ids": cfg.save_token_ids}
    uncapped = cfg.budget.uncapped_thinking_tokens
    if cfg.budget_forcing or cfg.num_ignore_sweep:
        # one shared thinking run per question for both: each budget and each num_ignore branches off it
        wait = dict(num_ignores=list(cfg.num_ignore), num_ignore_max_tokens=cfg.num_ignore_max_tokens)
        sc.run_budget_sweep(items, sweep_fn, list(cfg.budgets) if cfg.budget_forcing else [], writer=writer,
                            **(wait if cfg.num_ignore_sweep else {}), **common)
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


def resolve_run(cfg: ml_collections.ConfigDict, all_items: list) -> tuple[dict, fpr.ResumeDecision]:
    """The run's fingerprint and what to do with its output directory (``cfg.output_dir`` is filled in when
    empty). Reads only; raises ConfigError when the directory holds another run and ``overwrite`` is off."""
    fp = fpr.build_fingerprint(cfg, all_items)
    if not cfg.output_dir:
        cfg.output_dir = fpr.default_output_dir(os.path.join("runs", "eval"), canonical_name(cfg.benchmark),
                                                cfg.model.path, fp)
    try:
        decision = fpr.check_output_dir(cfg.output_dir, fp, overwrite=cfg.overwrite)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return fp, decision


def _agreed_run(cfg: ml_collections.ConfigDict, all_items: list) -> tuple[dict, fpr.ResumeDecision]:
    """``resolve_run`` as process 0 sees ``output_dir`` (hosts need not share a file system): its decision, or its
    refusal, reaches every host, so all of them resume, start or stop together."""
    if jax.process_count() == 1:
        return resolve_run(cfg, all_items)
    message: dict[str, Any] = {}
    if hosts.is_writer():
        try:
            fp, decision = resolve_run(cfg, all_items)
            message = {"action": decision.action, "out_dir": decision.out_dir,
                       "differences": list(decision.differences), "output_dir": cfg.output_dir}
        except ConfigError as e:
            message = {"error": str(e)}
    message = json.loads(hosts.broadcast_bytes(json.dumps(message).encode("utf-8")))
    if "error" in message:
        raise ConfigError(message["error"])
    cfg.output_dir = message["output_dir"]
    fp = fpr.build_fingerprint(cfg, all_items)
    return fp, fpr.ResumeDecision(message["action"], message["out_dir"], tuple(message["differences"]))


def _settings(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    return {"temperature": cfg.sampling.temperature, "top_p": cfg.sampling.top_p, "top_k": cfg.sampling.top_k,
            "max_answer_tokens": cfg.budget.max_answer_tokens, "batch_size": cfg.batch_size}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``s1jax eval``; returns the process exit code."""
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return 0
    budget, sampling = validate(cfg)
    try:
        all_items = load_benchmark(cfg.benchmark, cfg.data_path or None, seed=cfg.seed,
                                   tfds_dir=cfg.get("tfds_dir", ""), gpqa_ask_letter=cfg.gpqa_ask_letter,
                                   revision=cfg.data_revision or None)
    except (OSError, ValueError) as e:
        raise ConfigError(f"benchmark {cfg.benchmark!r}: {e}") from e
    items = all_items[: cfg.limit] if cfg.limit > 0 else all_items
    # jax.distributed + the checked mesh (the architecture is read from the checkpoint's metadata), before any weight
    mesh = multihost.start(cfg, lambda: model_config_of(cfg.model))
    try:  # every host must run the same items in the same order
        hosts.check_same_on_hosts([(it.id, it.prompt_text, it.answer) for it in items], "benchmark items")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    fp, decision = _agreed_run(cfg, all_items)
    digest = fpr.fingerprint_digest(fp)
    app.say(format_config(cfg))
    app.say(f"{cfg.benchmark}: {len(items)} of {len(all_items)} items from {cfg.data_path or 'the shipped copy / hub'}")
    app.say(f"run fingerprint {digest[:16]} -> {cfg.output_dir} ({decision.action})")
    if mesh is not None:
        app.say(describe(mesh, model_config_of(cfg.model)))

    model = s1jax.load_model(cfg.model.path, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype or None,
                             attention_impl=cfg.model.attention_impl or None, mesh=mesh, rules=INFERENCE_RULES)
    model, _ = prepare(model, mesh)  # once for every generate call (KV heads expanded past the tensor axis)
    tok = s1jax.load_tokenizer(cfg.model.tokenizer or cfg.model.path, chat_format=str(cfg.model.get("chat_format") or ""))
    gen_fn, sweep_fn = sc.make_generate_fns(model, tok, budget, sampling, system=cfg.system or None,
                                            batch_size=cfg.batch_size, max_cache_len=cfg.max_cache_len or None)

    keys = planned_keys(cfg, [it.id for it in items])
    with app.output_dir(cfg.output_dir):
        if hosts.is_writer():
            if decision.action == "overwrite":
                removed = fpr.remove_outputs(cfg.output_dir)
                why = "; ".join(decision.differences[:3])
                app.say(f"overwrite: removed {len(removed)} files of the previous run ({why})")
            fpr.write_run_files(cfg.output_dir, fp, cfg, argv)
        # multi-host: process 0 writes; the others resume from (and append to) a private copy of its file
        writer = ResultsWriter(hosts.writer_path(os.path.join(cfg.output_dir, "results.jsonl")),
                               stamp={"fingerprint": digest[:16]})
        if writer.records:
            reused = len(select_records(writer.records, keys))
            app.say(f"resuming: {len(writer.records)} generations already in {writer.path}, {reused} of them "
                    f"among the {len(keys)} these settings need")
        _run_methods(cfg, items, gen_fn, sweep_fn, writer)

    if not hosts.is_writer():
        return 0
    selected = select_records(writer.records, keys, fingerprint=digest[:16])
    title = f"{cfg.benchmark} | {os.path.basename(os.path.normpath(cfg.model.path))}"
    paths = write_reports(selected, cfg.output_dir, title=title, grade_timeout_s=cfg.grade_timeout_s,
                          bootstrap_samples=cfg.bootstrap_samples)
    if cfg.lmeval_outputs:
        lm = write_lmeval_files(selected, all_items, cfg.output_dir, benchmark=canonical_name(cfg.benchmark),
                                settings=_settings(cfg), model_name=cfg.model.path,
                                model_args=f"pretrained={cfg.model.path},dtype={cfg.model.dtype}",
                                system=cfg.system or None, versions=fpr.versions(), fingerprint=digest,
                                limit=cfg.limit or None, seed=cfg.seed, bootstrap_samples=cfg.bootstrap_samples)
        paths["lm-eval results"] = lm.pop("results")
        paths["lm-eval samples"] = f"{len(lm)} files samples_<task>_<date>.jsonl"
    with open(paths["markdown"], encoding="utf-8") as f:
        app.say(f.read())
    app.say("\n".join(f"{k}: {v}" for k, v in {"results": writer.path, **paths}.items()))
    return 0


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
