"""``s1jax demo [--config=configs/demo.py[:fast]] [--config.x=y ...]``: the whole s1 pipeline on SmolLM2-135M-Instruct
on a CPU (see s1jax/demo/pipeline.py and docs/demo.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["main", "DEFAULT_CONFIG"]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(_REPO_ROOT, "configs", "demo.py")


def _explicit_fields(argv: Sequence[str]) -> set[str]:
    """Dotted names given as ``--config.a.b=v`` / ``--config.a.b v`` (they win over the fast preset)."""
    out = set()
    for arg in argv:
        if arg.startswith("--config."):
            out.add(arg[len("--config."):].split("=", 1)[0])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from s1jax.config import parse_config_args

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print(f"default config: {DEFAULT_CONFIG}")
        return 0
    cfg, rest = parse_config_args(argv, default_config=DEFAULT_CONFIG)
    if rest:
        print(f"s1jax demo: unexpected arguments {rest}; use --config=FILE and --config.field=value", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from s1jax.demo.pipeline import DemoError, apply_fast_preset, run_demo

    apply_fast_preset(cfg, _explicit_fields(argv))
    try:
        run_demo(cfg)
    except DemoError as e:
        print(f"\ns1jax demo: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
