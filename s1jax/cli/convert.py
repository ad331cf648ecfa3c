"""``s1jax convert --config=configs/convert.py --config.input=IN --config.output=OUT``: HF <-> s1jax, GGUF -> HF.

Exit codes: 0 written, 2 config/input error (missing input, unknown architecture, bad shapes, existing output).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from s1jax.config import ConfigError, format_config, parse_config_args

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs", "convert.py")
_DTYPES = {"float32", "bfloat16", "float16"}


def source_dtype(path: str, fmt: str) -> str:
    """The dtype the checkpoint stores (HF torch_dtype/dtype, s1jax param_dtype); float32 for GGUF/unknown."""
    if fmt == "hf":
        with open(os.path.join(path, "config.json")) as f:
            hf = json.load(f)
        name = str(hf.get("torch_dtype") or hf.get("dtype") or "float32")
        return name if name in _DTYPES else "float32"
    if fmt == "s1jax":
        from s1jax.model.weights_native import read_model_json

        _, stored = read_model_json(path)
        return stored if stored in _DTYPES else "float32"
    return "float32"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, rest = parse_config_args(argv, default_config=_DEFAULT_CONFIG)
    if rest:
        raise ConfigError(f"unexpected arguments {rest}; use --config.field=value")
    if not cfg.input:
        raise ConfigError("--config.input is required (HF dir, .gguf file or s1jax checkpoint)")
    if not cfg.output:
        raise ConfigError("--config.output is required")
    if cfg.output_format not in ("hf", "s1jax"):
        raise ConfigError(f"--config.output_format must be 'hf' or 's1jax', got {cfg.output_format!r}")
    if cfg.dtype and cfg.dtype not in _DTYPES:
        raise ConfigError(f"--config.dtype must be one of {sorted(_DTYPES)} or empty, got {cfg.dtype!r}")
    print("config:\n" + format_config(cfg))

    from s1jax.model.loading import load_model
    from s1jax.model.weights import detect_format, save_weights

    try:
        fmt = detect_format(cfg.input)
        dtype = cfg.dtype or source_dtype(cfg.input, fmt)
        model = load_model(cfg.input, dtype=dtype)
        tokenizer = cfg.tokenizer
        if tokenizer == "none":
            tokenizer = None
        elif not tokenizer:
            if fmt == "gguf":
                tokenizer = cfg.input  # the embedded tokenizer, exported with transformers when installed
            elif any(os.path.isfile(os.path.join(cfg.input, n)) for n in ("tokenizer.json", "tokenizer.model")):
                tokenizer = cfg.input
            else:
                tokenizer = None
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
        return 2
    c = model.config
    print(
        f"wrote {cfg.output_format} checkpoint to {out}: {c.architecture}, {c.num_layers} layers, "
        f"{c.num_params / 1e6:.1f}M params, {dtype}" + (f", tokenizer from {tokenizer}" if tokenizer else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
