"""Exit codes of every ``s1jax`` command (documented in docs/architecture.md and each command's ``--help``).

Scripts and launchers (``launch/``) branch on these, so a code never changes meaning. Commands may add codes for
their own runtime outcomes (e.g. the trainer's preemption); 0, 1 and 2 mean the same everywhere.
"""

from __future__ import annotations

__all__ = ["OK", "FAILURE", "USAGE", "INTERRUPTED", "DESCRIPTIONS"]

OK = 0  # the command did what was asked
FAILURE = 1  # a runtime failure after the work started (e.g. non-finite loss, out of memory, a crashed step)
USAGE = 2  # bad command line, config or input file: reported before any model is loaded, nothing written
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it

DESCRIPTIONS: dict[int, str] = {
    OK: "success",
    FAILURE: "runtime failure after the work started",
    USAGE: "usage, config or input error (nothing was started or written)",
    INTERRUPTED: "interrupted (Ctrl-C)",
}
