"""``s1jax generate --config=configs/generate/default.py [--config.field=value ...]``: budget-forced generation.

Questions come from ``prompt`` (one string) or ``questions_file`` (JSONL with a "question" or "problem" field, or
plain text lines); each result is written as one JSON line to ``output`` (and the answer printed). With
``sweep_budgets`` set, one thinking pass per question branches an answer at every budget (one line per budget).
Heavy imports happen inside :func:`main`, so config files can import :func:`default_config` cheaply.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import ml_collections

__all__ = ["default_config", "main", "budget_from_config", "sampling_from_config", "read_questions"]


def default_config() -> ml_collections.ConfigDict:
    from s1jax.model.presets import model_group

    cfg = ml_collections.ConfigDict()
    cfg.model = model_group(preset="tiny")  # path: HF dir / .gguf / checkpoint; empty = random `preset`
    cfg.prompt = ""  # one question; or
    cfg.questions_file = ""  # JSONL ("question" or "problem") or .txt (one question per line)
    cfg.limit = 0  # questions to use from the file; 0 = all
    cfg.output = "runs/generate/results.jsonl"  # "" = print only
    cfg.system = ""  # "" = the chat format's default system message
    cfg.no_system = False  # True: no system turn at all
    cfg.stream = False  # print the first question's text as it is decoded
    cfg.batch_size = 8
    cfg.max_cache_len = 0  # 0 = prompt + budgets (rounded up to a bucket)
    cfg.sweep_budgets = ()  # e.g. (512, 1024, 2048): think once, answer at each budget
    cfg.progress = True

    cfg.budget = ml_collections.ConfigDict()
    cfg.budget.max_thinking_tokens = -1  # -1 = unlimited (the cache / max_position_embeddings limits it)
    cfg.budget.min_thinking_tokens = 0
    cfg.budget.num_ignore = 0
    cfg.budget.ignore_str = "Wait"
    cfg.budget.thinking_start = "<|im_start|>think"
    cfg.budget.thinking_end = "<|im_start|>answer"
    cfg.budget.stop_thinking = "<|im_start|>"
    cfg.budget.final_answer_str = "Final Answer:"
    cfg.budget.max_answer_tokens = 512
    cfg.budget.answer_stop = "<|im_end|>"

    cfg.sampling = ml_collections.ConfigDict()
    cfg.sampling.temperature = 0.0
    cfg.sampling.top_p = 1.0
    cfg.sampling.top_k = 0
    cfg.sampling.seed = 0
    return cfg


def budget_from_config(group: Any) -> Any:
    from s1jax.inference.budget import Budget

    fields = dict(group.to_dict() if hasattr(group, "to_dict") else group)
    mx = fields.get("max_thinking_tokens")
    fields["max_thinking_tokens"] = None if mx is None or mx == -1 else int(mx)
    return Budget(**fields)


def sampling_from_config(group: Any) -> Any:
    from s1jax.inference.sampling import Sampling

    return Sampling(**dict(group.to_dict() if hasattr(group, "to_dict") else group))


def read_questions(path: str, limit: int = 0) -> list[str]:
    """Questions from a row file (.jsonl/.json/.parquet with a "question" or "problem" field) or a .txt file (one
    question per line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"questions_file not found: {path!r}")
    from s1jax.data.files import ROW_FILE_SUFFIXES, read_rows

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


def main(argv: list[str]) -> int:
    from s1jax.config import format_config, parse_config_args

    cfg, rest = parse_config_args(argv, default_config=_DEFAULT if os.path.isfile(_DEFAULT) else None)
    if rest:
        print(f"s1jax generate: unexpected arguments {rest}", file=sys.stderr)
        return 2
    if bool(cfg.prompt) == bool(cfg.questions_file):
        print("s1jax generate: set exactly one of --config.prompt or --config.questions_file", file=sys.stderr)
        return 2
    tok_path = cfg.model.tokenizer or cfg.model.path
    if not tok_path:
        print("s1jax generate: set --config.model.path (weights) or --config.model.tokenizer", file=sys.stderr)
        return 2
    budget = budget_from_config(cfg.budget)
    sampling = sampling_from_config(cfg.sampling)
    questions = [cfg.prompt] if cfg.prompt else read_questions(cfg.questions_file, cfg.limit)
    print(format_config(cfg))

    import s1jax
    from s1jax.model.presets import load_model_from_group

    tok = s1jax.load_tokenizer(tok_path)
    model = load_model_from_group(cfg.model)
    if model.config.vocab_size < tok.vocab_size:
        print(f"s1jax generate: the model's vocab ({model.config.vocab_size}) is smaller than the tokenizer's "
              f"({tok.vocab_size})", file=sys.stderr)
        return 2
    system = "" if cfg.no_system else (cfg.system or None)
    common = dict(sampling=sampling, system=system, max_cache_len=cfg.max_cache_len or None,
                  batch_size=cfg.batch_size or None, progress=cfg.progress)
    if cfg.sweep_budgets:
        sweep = s1jax.generate_budget_sweep(model, tok, questions, list(cfg.sweep_budgets), budget=budget, **common)
        records = [dict(question=q, budget=b, **r.to_dict()) for b, rs in sweep.items() for q, r in zip(questions, rs)]
    else:
        results = s1jax.generate(model, tok, questions, budget=budget, stream=bool(cfg.stream), **common)
        records = [dict(question=q, **r.to_dict()) for q, r in zip(questions, results)]
    for rec in records:
        tag = f"[budget {rec['budget']}] " if "budget" in rec else ""
        print(f"{tag}{rec['question'][:60]!r}: {rec['thinking_tokens']} thinking tokens, "
              f"{rec['num_ignored']} ignored, answer: {rec['answer'].strip()[:200]!r}")
    if cfg.output:
        os.makedirs(os.path.dirname(os.path.abspath(cfg.output)), exist_ok=True)
        with open(cfg.output, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"wrote {len(records)} results to {cfg.output}")
    return 0


_DEFAULT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "configs", "generate", "default.py")
