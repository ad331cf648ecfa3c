"""``s1jax demo [--config=configs/demo.py[:fast]] [--config.FIELD=VALUE ...]``: the whole s1 pipeline on
SmolLM2-135M-Instruct on a CPU (see s1jax/demo/pipeline.py and docs/demo.md). Runs offline."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# The demo never touches the hub; huggingface_hub reads these when it is first imported (by the pipeline below).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from s1jax import exit_codes
from s1jax.cli import app  # noqa: E402
from s1jax.demo.pipeline import DemoError, apply_fast_preset, run_demo  # noqa: E402

__all__ = ["COMMAND", "DEFAULT_CONFIG", "main"]

DEFAULT_CONFIG = app.config_path("demo.py")

COMMAND = app.Command(
    name="demo",
    summary="the whole s1 pipeline on SmolLM2-135M on a CPU",
    doc=__doc__,
    default_config=DEFAULT_CONFIG,
    shipped=("demo.py",),
)


def _explicit_fields(argv: Sequence[str]) -> set[str]:
    """Dotted names given as ``--config.a.b=v`` / ``--config.a.b v`` (they win over the fast preset)."""
    out = set()
    for arg in argv:
        if arg.startswith("--config."):
            out.add(arg[len("--config."):].split("=", 1)[0])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return exit_codes.OK
    apply_fast_preset(cfg, _explicit_fields(argv))
    try:
        run_demo(cfg)
    except DemoError as e:
        print(f"\ns1jax demo: {e}", file=sys.stderr)
        return exit_codes.FAILURE
    return exit_codes.OK


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
