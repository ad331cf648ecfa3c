"""``s1jax parity --config=configs/parity.py --config.model.path=HF_DIR_OR_HUB_ID``: transformers vs s1jax.

For each dtype in ``dtypes``, transformers (PyTorch) and then s1jax load the checkpoint (one at a time) and run the
prompts: max |logit difference| (absolute and relative), mean and max per-token KL, top-1 agreement; then greedy
budget forcing on the first ``budget_forcing_prompts`` prompts (in ``budget_forcing_dtypes``), the s1 reference
loop on PyTorch against ``s1jax.generate``: tokens agreeing and the first divergence (a near-tie or not). Prints a
table, writes ``output`` (JSON) when set, and exits 4 when a threshold (``thresholds.<dtype>.*``) is exceeded. torch
and transformers are test extras: without them the command stops with the install line, before anything loads.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import ml_collections

import s1jax
from s1jax import exit_codes
from s1jax.builders import budget_from_config
from s1jax.cli import app
from s1jax.cli.checks import (DTYPES, check_chat_format, check_checkpoint, check_context, check_int, check_number,
                              model_config_of)
from s1jax.cli.generate import read_questions
from s1jax.config import ConfigError, format_config
from s1jax.model.io import detect_format, looks_like_hub_id
from s1jax.parity import runner
from s1jax.parity.torch_reference import require_torch

__all__ = ["COMMAND", "main", "validate"]

COMMAND = app.Command(
    name="parity",
    summary="numerical parity with transformers: logits, KL, top-1, budget forcing",
    doc=__doc__,
    default_config=app.config_path("parity.py"),
    shipped=("parity.py",),
)


def _thresholds(cfg: ml_collections.ConfigDict, dtype: str) -> runner.Thresholds:
    group = cfg.thresholds.get(dtype)
    if group is None:
        raise ConfigError(f"no --config.thresholds.{dtype} group; add one (max_abs_diff_rel, max_kl, mean_kl, "
                          "min_top1) or drop the dtype")
    values = {}
    for field in ("max_abs_diff_rel", "max_kl", "mean_kl"):
        values[field] = check_number(group.get(field), f"thresholds.{dtype}.{field}", minimum=0.0)
    values["min_top1"] = check_number(group.get("min_top1"), f"thresholds.{dtype}.min_top1", minimum=0.0, maximum=1.0)
    return runner.Thresholds(**values)


def validate(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """Every check before a model loads: fields, thresholds, the torch extras, the checkpoint's format and config,
    the tokenizer and the prompts against the context. Raises ConfigError naming the field and the fix."""
    path = str(cfg.model.path)
    if not path:
        raise ConfigError("set --config.model.path to a HF checkpoint directory or a hub id (org/name[@revision])")
    check_checkpoint(path, "model.path", "HF checkpoint directory")
    if cfg.model.tokenizer:
        check_checkpoint(cfg.model.tokenizer, "model.tokenizer", "tokenizer")
    check_chat_format(cfg.model.chat_format)
    dtypes = tuple(cfg.dtypes) if isinstance(cfg.dtypes, (tuple, list)) else (cfg.dtypes,)
    if not dtypes:
        raise ConfigError("--config.dtypes is empty; e.g. --config.dtypes=\"('float32', 'bfloat16')\"")
    for d in dtypes:
        if d not in DTYPES:
            raise ConfigError(f"--config.dtypes: {d!r} is not one of {list(DTYPES)}")
    thresholds = {d: _thresholds(cfg, d) for d in dtypes}
    bf_dtypes = tuple(cfg.budget_forcing_dtypes) if isinstance(cfg.budget_forcing_dtypes, (tuple, list)) else (
        cfg.budget_forcing_dtypes,)
    for d in bf_dtypes:
        if d not in dtypes:
            raise ConfigError(f"--config.budget_forcing_dtypes: {d!r} is not in --config.dtypes={dtypes}")
    check_int(cfg.budget_forcing_prompts, "budget_forcing_prompts", minimum=0)
    check_int(cfg.logits_width, "logits_width", minimum=0)
    check_int(cfg.torch_threads, "torch_threads", minimum=0)
    device = str(cfg.torch_device)
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"--config.torch_device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    budget = budget_from_config(cfg.budget)
    if cfg.prompts_file:
        try:
            prompts = read_questions(cfg.prompts_file)
        except (OSError, ValueError) as e:
            raise ConfigError(f"prompts_file: {e}") from e
    else:
        prompts = [str(p) for p in (cfg.prompts if isinstance(cfg.prompts, (tuple, list)) else (cfg.prompts,))]
    if not prompts or not all(prompts):
        raise ConfigError("no prompts: set --config.prompts=\"('What is 2+2?',)\" or --config.prompts_file")

    try:
        require_torch()
    except ImportError as e:
        raise ConfigError(str(e)) from e
    if not looks_like_hub_id(path) or os.path.exists(path):
        fmt = detect_format(path)
        if fmt != "hf":
            raise ConfigError(f"--config.model.path {path!r} is a {fmt} checkpoint; parity needs a HF directory that "
                              "transformers loads: s1jax convert --config=configs/convert.py --config.input=... "
                              "--config.output=DIR first")
    model_config = model_config_of(cfg.model)  # downloads a hub id (config, weights, tokenizer files)
    try:
        tok = s1jax.load_tokenizer(cfg.model.tokenizer or cfg.model.path, chat_format=str(cfg.model.chat_format))
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.tokenizer: cannot load a tokenizer from {cfg.model.tokenizer or path!r}: {e}") from e
    system = cfg.system or None
    texts = [tok.chat.render_prefix(q, system) + budget.thinking_start for q in prompts]
    longest = check_context(tok, texts, model_config, what="prompts")
    if cfg.logits_width and longest > cfg.logits_width:
        raise ConfigError(f"--config.logits_width={cfg.logits_width} is shorter than the longest prompt "
                          f"({longest} tokens); raise it or set 0")
    return dict(dtypes=dtypes, bf_dtypes=bf_dtypes, thresholds=thresholds, budget=budget, prompts=prompts, system=system)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return exit_codes.OK
    # JAX must not reserve most of a GPU before PyTorch has loaded and freed its copy (set before JAX's backend starts).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    run = validate(cfg)
    app.say(format_config(cfg))
    report = runner.run_parity(
        str(cfg.model.path), run["prompts"], budget=run["budget"], thresholds=run["thresholds"], dtypes=run["dtypes"],
        tokenizer=str(cfg.model.tokenizer), chat_format=str(cfg.model.chat_format), system=run["system"], budget_forcing_prompts=cfg.budget_forcing_prompts,
        budget_forcing_dtypes=run["bf_dtypes"], logits_width=cfg.logits_width, torch_device=str(cfg.torch_device),
        torch_threads=cfg.torch_threads, say=app.say,
    )
    app.say(report.table())
    if cfg.output and app.is_main_process():
        with app.output_dir(os.path.dirname(os.path.abspath(cfg.output))):
            with open(cfg.output, "w", encoding="utf-8") as f:
                json.dump(report.to_dict(), f, indent=1)
        app.say(f"wrote {cfg.output}")
    if not report.passed:
        print(f"s1jax parity: {sum(len(r.failures) for r in report.results)} check(s) past the thresholds",
              file=sys.stderr)
        return exit_codes.PARITY_MISMATCH
    return exit_codes.OK


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
