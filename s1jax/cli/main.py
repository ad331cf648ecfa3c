"""``s1jax <command> --config=FILE --config.x=y``: dispatch to ``s1jax.cli.<command>.main``.

Commands are imported lazily so ``s1jax eval`` never pays for importing the trainer, and a missing optional
dependency of one command cannot break the others.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "convert": "convert HF <-> s1jax checkpoints, GGUF -> HF",
    "train": "SFT with the s1 recipe",
    "generate": "budget-forced generation to JSONL",
    "eval": "AIME24 / MATH500 / GPQA evaluation and budget sweeps",
    "curate": "s1K curation: quality -> difficulty -> diversity",
    "demo": "the whole s1 pipeline on SmolLM2-135M on a CPU",
    "compile": "ahead-of-time compile for a TPU/GPU target from a CPU host: does it fit?",
}


def _usage() -> str:
    lines = ["usage: s1jax <command> --config=FILE [--config.field=value ...]", "", "commands:"]
    lines += [f"  {name:<9} {desc}" for name, desc in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"s1jax: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"s1jax.cli.{command}")
    from s1jax.config import ConfigError

    try:
        return int(module.main(rest) or 0)
    except ConfigError as e:
        print(f"s1jax {command}: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
