"""``s1jax compile --config=configs/train/s1_32b.py:v5p-128 [--config.target=v5p-128 --config.x=y ...]``.

Ahead-of-time compile of the config's real programs for its target (``cfg.target``) from a CPU-only host: the train
step for a training config, prefill + decode loop for an inference config (``configs/aot/*.py``). Prints bytes per
device against HBM, compile time, analytic FLOPs and predicted times. Exit codes: 0 every program fits; 1 a program
does not fit (the message names it, the bytes needed and available, and the knobs that help); 2 config or target
error, or the target's compiler (libtpu / CUDA plugin: ``make aot``) is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from s1jax import exit_codes
from s1jax.aot.host_env import BackendMissing, compile_host_env
from s1jax.aot.targets import TargetError
from s1jax.cli import app

__all__ = ["COMMAND", "main", "run"]

COMMAND = app.Command(
    name="compile",
    summary="ahead-of-time compile for a TPU/GPU target from a CPU host: does it fit?",
    doc=__doc__,
    fields_config=app.config_path("train", "base.py"),
    shipped=("train/*.py", "aot/*.py"),
)


def run(cfg: Any, config_name: str = "") -> int:
    """Validate, compile, print; returns the exit code. Takes the resolved ConfigDict (absl-port friendly)."""
    # s1jax.aot.compile / .report import JAX, which reads JAX_PLATFORMS when imported: they are imported here, after
    # main() ran compile_host_env(), never at the top of this module (s1jax.cli.main imports it before main runs)
    from s1jax.aot.compile import check_config, compile_for_target
    from s1jax.aot.report import does_not_fit_message, format_report

    try:
        check_config(cfg)  # one-line errors before any program is built or compiled
    except (TargetError, ValueError) as e:
        print(f"s1jax compile: {e}", file=sys.stderr)
        return exit_codes.USAGE
    try:
        report = compile_for_target(cfg, config_name)
    except (BackendMissing, TargetError, ValueError) as e:
        print(f"s1jax compile: {e}", file=sys.stderr)
        return exit_codes.USAGE
    print(format_report(report))
    if not report.fits:
        print("s1jax compile: " + does_not_fit_message(report), file=sys.stderr)
        return exit_codes.FAILURE
    print(f"fits: every program fits {report.target.name}")
    return exit_codes.OK


def main(argv: Sequence[str] | None = None) -> int:
    compile_host_env()  # before JAX is imported: CPU backend only, compilers loaded on demand
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = app.parse(COMMAND, argv)
    if cfg is None:
        return exit_codes.OK
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
    return run(cfg, spec)


if __name__ == "__main__":
    app.entry(main, COMMAND.name)
