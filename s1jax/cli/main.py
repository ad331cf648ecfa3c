"""``s1jax <command> [--config=FILE[:ARG]] [--config.FIELD=VALUE ...]``: dispatch to ``s1jax.cli.<command>.main``.

Commands are imported lazily (by name, from the table below) so ``s1jax eval`` never pays for importing the trainer,
and a missing optional dependency of one command cannot break the others. ``s1jax <command> --help`` lists the
command's config fields, their defaults and the shipped configs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from s1jax import exit_codes
from s1jax.cli import app

__all__ = ["COMMANDS", "main", "usage"]

COMMANDS = {
    "convert": "convert HF <-> s1jax checkpoints, GGUF -> HF",
    "train": "SFT with the s1 recipe",
    "generate": "budget-forced generation to JSONL",
    "eval": "AIME24 / MATH500 / GPQA evaluation and budget sweeps",
    "curate": "s1K curation: quality -> difficulty -> diversity",
    "demo": "the whole s1 pipeline on SmolLM2-135M on a CPU",
    "compile": "ahead-of-time compile for a TPU/GPU target from a CPU host: does it fit?",
    "compare": "two eval runs (s1jax dirs or lm-eval samples files) item by item",
    "data": "`data prepare`: s1K and the eval sets as TFDS array_record datasets",
    "parity": "numerical parity with transformers: logits, KL, top-1, budget forcing",
}


def usage() -> str:
    lines = ["usage: s1jax <command> [--config=FILE[:ARG]] [--config.FIELD=VALUE ...]", "", "commands:"]
    lines += [f"  {name:<9} {desc}" for name, desc in COMMANDS.items()]
    lines += ["", "s1jax <command> --help lists the command's config fields and shipped configs.",
              "exit codes: " + "; ".join(f"{c} {t}" for c, t in exit_codes.DESCRIPTIONS.items())]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command in-process and return its exit code (``python -m s1jax`` and the console script exit with
    it). No command, or an unknown one, is a usage error (2): a bare ``s1jax`` never silently succeeds."""
    if argv is None:
        app.entry(main, "s1jax")  # absl.app.run: sets up absl logging, then calls main(argv[1:]) and exits
    argv = list(argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage())
        return exit_codes.OK
    if not argv:
        print(usage(), file=sys.stderr)
        return exit_codes.USAGE
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"s1jax: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return exit_codes.USAGE
    module = importlib.import_module(f"s1jax.cli.{command}")
    return app.run(module.main, rest, command)


if __name__ == "__main__":
    main()
