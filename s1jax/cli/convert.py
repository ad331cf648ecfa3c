"""``s1jax convert --config=configs/convert.py --config.input=IN --config.output=OUT``: HF <-> s1jax, GGUF -> HF.

The input, the output directory and every field are checked before the model loads; the output appears only when
it is completely written. Exit codes: 0 written, 2 config/input error (missing input, unknown architecture, bad
shapes, truncated file, existing output), 1 a failure while writing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import ml_collections

from s1jax import exit_codes
from s1jax.cli import app
from s1jax.cli.checks import DTYPES, check_checkpoint, check_number
from s1jax.model.io import resolve_checkpoint
from s1jax.config import ConfigError, format_config
from s1jax.jsonfile import read_json
from s1jax.model.api import load_model
from s1jax.model.io import detect_format, save_weights
from s1jax.model.io.native import read_model_json

__all__ = ["COMMAND", "main", "source_dtype", "validate", "check_inputs"]

COMMAND = app.Command(
    name="convert",
    summary="convert HF <-> s1jax checkpoints, GGUF -> HF",
    doc=__doc__,
    default_config=app.config_path("convert.py"),
    shipped=("convert.py",),
)


def source_dtype(path: str, fmt: str) -> str:
    """The dtype the checkpoint stores (HF torch_dtype/dtype, s1jax param_dtype); float32 for GGUF/unknown."""
    if fmt == "hf":
        hf = read_json(os.path.join(path, "config.json"))
        name = str(hf.get("torch_dtype") or hf.get("dtype") or "float32")
        return name if name in DTYPES else "float32"
    if fmt == "s1jax":
        _, stored = read_model_json(path)
        return stored if stored in DTYPES else "float32"
    return "float32"


def validate(cfg: ml_collections.ConfigDict) -> None:
    """The config's own fields; raises ConfigError naming the field."""
    if not cfg.input:
        raise ConfigError("--config.input is required (HF dir, .gguf file or s1jax checkpoint)")
    if not cfg.output:
        raise ConfigError("--config.output is required")
    if cfg.output_format not in ("hf", "s1jax"):
        raise ConfigError(f"--config.output_format must be 'hf' or 's1jax', got {cfg.output_format!r}")
    if cfg.dtype and cfg.dtype not in DTYPES:
        raise ConfigError(f"--config.dtype must be one of {sorted(DTYPES)} or empty, got {cfg.dtype!r}")
    check_number(cfg.max_shard_gb, "max_shard_gb", minimum=1e-9)


def check_inputs(cfg: ml_collections.ConfigDict) -> str:
    """The files: input present and readable as a checkpoint, output free; returns the input's format. Raises
    ConfigError naming the field (before any weight is read)."""
    check_checkpoint(cfg.input, "input", "checkpoint (HF dir, .gguf file or s1jax checkpoint)")
    if cfg.tokenizer and cfg.tokenizer != "none":
        check_checkpoint(cfg.tokenizer, "tokenizer", "tokenizer")
    out = os.path.abspath(cfg.output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"--config.output {cfg.output!r} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not cfg.overwrite:
        raise ConfigError(f"--config.output {cfg.output!r} is not empty; pick another directory or set "
                          "--config.overwrite=true to replace it")
    try:
        cfg.input = resolve_checkpoint(cfg.input)  # a hub id -> its downloaded snapshot
        return detect_format(cfg.input)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--config.input: {e}") from e


def _tokenizer_source(cfg: ml_collections.ConfigDict, fmt: str) -> str | None:
    if cfg.tokenizer == "none":
        return None
    if cfg.tokenizer:
        return cfg.tokenizer
    if fmt == "gguf":
        return cfg.input  # the embedded tokenizer, exported with transformers when installed
    if any(os.path.isfile(os.path.join(cfg.input, n)) for n in ("tokenizer.json", "tokenizer.model")):
        return cfg.input
    return None


def main(argv: Sequence[str] | None = None) -> int:
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return exit_codes.OK
    validate(cfg)
    try:
        fmt = check_inputs(cfg)
    except ConfigError as e:
        print(f"s1jax convert: error: {e}", file=sys.stderr)
        return exit_codes.USAGE
    app.say("config:\n" + format_config(cfg))
    try:
        dtype = cfg.dtype or source_dtype(cfg.input, fmt)
        model = load_model(cfg.input, dtype=dtype)
        tokenizer = _tokenizer_source(cfg, fmt)
        out = save_weights(
            model,
            cfg.output,
            format=cfg.output_format,
            max_shard_bytes=int(cfg.max_shard_gb * 2**30),
            tokenizer_path=tokenizer,
            overwrite=cfg.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"s1jax convert: error: {e}", file=sys.stderr)
        return exit_codes.USAGE
    c = model.config
    app.say(
        f"wrote {cfg.output_format} checkpoint to {out}: {c.architecture}, {c.num_layers} layers, "
        f"{c.num_params / 1e6:.1f}M params, {dtype}" + (f", tokenizer from {tokenizer}" if tokenizer else "")
    )
    return exit_codes.OK


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
