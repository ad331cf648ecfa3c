"""``s1jax generate --config=configs/generate/default.py [--config.FIELD=VALUE ...]``: budget-forced generation.

Questions come from ``prompt`` (one string) or ``questions_file`` (JSONL with a "question" or "problem" field, or
plain text lines); each result is written as one JSON line to ``output`` (and the answer printed) by process 0. With
``sweep_budgets`` set, one thinking pass per question branches an answer at every budget (one line per budget).
The whole config, the questions and their length against the model's context, the ``mesh`` against the model and the
devices and (multi-host, ``distributed``) the question list against every other host are checked before the model
loads; the weights are then read straight into their inference shardings (``s1jax.inference.mesh``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import ml_collections

import s1jax
from s1jax.builders import budget_from_config, sampling_from_config, tokenizer_path
from s1jax.cli import app, multihost
from s1jax.cli.checks import (
    check_choice,
    check_context,
    check_dtype,
    check_int,
    check_int_sequence,
    check_model_source,
    model_config_of,
)
from s1jax.config import ConfigError, format_config
from s1jax.data.files import ROW_FILE_SUFFIXES, read_rows
from s1jax.inference import hosts
from s1jax.inference.mesh import describe, prepare
from s1jax.model.api import load_model_from_group
from s1jax.sharding import INFERENCE_RULES

__all__ = ["COMMAND", "main", "read_questions", "validate"]

COMMAND = app.Command(
    name="generate",
    summary="budget-forced generation to JSONL",
    doc=__doc__,
    default_config=app.config_path("generate", "default.py"),
    shipped=("generate/*.py",),
)


def read_questions(path: str, limit: int = 0) -> list[str]:
    """Questions from a row file (.jsonl/.json/.parquet with a "question" or "problem" field) or a .txt file (one
    question per line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"questions_file not found: {path!r}")
    if not path.lower().endswith(ROW_FILE_SUFFIXES):
        with open(path, encoding="utf-8") as f:
            out = [line.strip() for line in f if line.strip()]
        return out[:limit] if limit else out
    out = []
    for n, rec in enumerate(read_rows(path), 1):
        q = rec.get("question", rec.get("problem"))
        if not isinstance(q, str):
            raise ValueError(f"{path}: row {n} has no string 'question' or 'problem' field")
        out.append(q)
        if limit and len(out) >= limit:
            break
    return out


def validate(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """Every check that needs no model: fields, budget, questions, tokenizer, prompts vs context. Returns what the
    run needs (budget, sampling, questions, tokenizer); raises ConfigError naming the field and the fix."""
    if bool(cfg.prompt) == bool(cfg.questions_file):
        raise ConfigError("set exactly one of --config.prompt or --config.questions_file")
    for field in ("limit", "batch_size", "max_cache_len"):
        check_int(cfg[field], field, minimum=0)
    sweep = check_int_sequence(cfg.sweep_budgets, "sweep_budgets", minimum=0, allow_empty=True)
    check_model_source(cfg.model)
    check_dtype(cfg.model.dtype, "model.dtype")
    if cfg.model.param_dtype:
        check_dtype(cfg.model.param_dtype, "model.param_dtype")
    check_choice(cfg.model.attention_impl, "model.attention_impl", ("", "xla", "cudnn", "chunked"))
    tok_path = tokenizer_path(cfg.model)
    if not tok_path:
        raise ConfigError("set --config.model.path (weights with their tokenizer) or --config.model.tokenizer")
    model_config = model_config_of(cfg.model)  # reads the checkpoint's metadata and file headers, no weights
    budget = budget_from_config(cfg.budget)
    sampling = sampling_from_config(cfg.sampling)
    if cfg.prompt:
        questions = [cfg.prompt]
    else:
        try:
            questions = read_questions(cfg.questions_file, cfg.limit)
        except (OSError, ValueError) as e:
            raise ConfigError(f"questions_file: {e}") from e
        if not questions:
            raise ConfigError(f"questions_file {cfg.questions_file!r} holds no questions; add some or use --config.prompt")
    try:
        tok = s1jax.load_tokenizer(tok_path, chat_format=str(cfg.model.get("chat_format") or ""))
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.tokenizer: cannot load a tokenizer from {tok_path!r}: {e}") from e
    if model_config.vocab_size < tok.vocab_size:
        raise ConfigError(f"the model's vocab ({model_config.vocab_size}) is smaller than the tokenizer's "
                          f"({tok.vocab_size}); use the tokenizer the model was trained with")
    system = "" if cfg.no_system else (cfg.system or None)
    prompts = [tok.chat.render_prefix(q, system) + budget.thinking_start for q in questions]
    check_context(tok, prompts, model_config, cfg.max_cache_len, what="questions")
    return dict(budget=budget, sampling=sampling, questions=questions, tok=tok, system=system, sweep=sweep,
                model_config=model_config)


def _write(records: list[dict[str, Any]], path: str) -> None:
    with app.output_dir(os.path.dirname(os.path.abspath(path))):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return 0
    run = validate(cfg)
    mesh = multihost.start(cfg, lambda: run["model_config"])  # jax.distributed + the checked mesh, before weights
    questions = run["questions"]
    try:
        hosts.check_same_on_hosts(questions)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    app.say(format_config(cfg))
    app.say(describe(mesh, run["model_config"]))

    model = load_model_from_group(cfg.model, mesh=mesh, rules=INFERENCE_RULES)
    model, _ = prepare(model, mesh)  # once for every generate call (KV heads expanded past the tensor axis)
    common = dict(sampling=run["sampling"], system=run["system"], max_cache_len=cfg.max_cache_len or None,
                  batch_size=cfg.batch_size or None, progress=cfg.progress)
    if run["sweep"]:
        sweep = s1jax.generate_budget_sweep(model, run["tok"], questions, list(run["sweep"]), budget=run["budget"],
                                            **common)
        records = [dict(question=q, budget=b, **r.to_dict()) for b, rs in sweep.items() for q, r in zip(questions, rs)]
    else:
        results = s1jax.generate(model, run["tok"], questions, budget=run["budget"], stream=bool(cfg.stream), **common)
        records = [dict(question=q, **r.to_dict()) for q, r in zip(questions, results)]
    for rec in records:
        tag = f"[budget {rec['budget']}] " if "budget" in rec else ""
        app.say(f"{tag}{rec['question'][:60]!r}: {rec['thinking_tokens']} thinking tokens, "
                f"{rec['num_ignored']} ignored, answer: {rec['answer'].strip()[:200]!r}")
    if cfg.output and app.is_main_process():
        _write(records, cfg.output)
        app.say(f"wrote {len(records)} results to {cfg.output}")
    return 0


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
