"""Process exit codes of the s1jax commands, so a scheduler (SLURM, a TPU queued resource, a shell loop) can tell
what happened without reading logs.

=====  ==================  =============================================================================================
code   name                meaning / what the launcher does
=====  ==================  =============================================================================================
0      FINISHED            the run finished (or stopped at ``train.stop_at_step``); nothing to do
1      ERROR               anything else (a bug, an unexpected exception): look at the traceback, do not requeue
2      CONFIG_ERROR        bad config, flag or input (also a resume whose run fingerprint changed): fix and resubmit
3      NON_FINITE_LOSS     the loss/gradient became NaN/inf (``nan_policy=stop``, or the ``skip`` limits were hit)
4      PARITY_MISMATCH     ``s1jax parity``: s1jax and transformers differ past the configured thresholds
74     STORAGE_FAILURE     a checkpoint/metrics write failed or timed out, or no checkpoint could be restored;
                           the last good checkpoint is intact: fix the storage, then resubmit (EX_IOERR)
75     PREEMPTED           SIGTERM (preemption): a checkpoint of the current step was saved; requeue (EX_TEMPFAIL)
130    INTERRUPTED         Ctrl-C: a checkpoint of the current step was saved; rerun to resume (128 + SIGINT)
=====  ==================  =============================================================================================

``launch/`` scripts requeue on ``PREEMPTED`` only.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = [
    "FINISHED", "ERROR", "CONFIG_ERROR", "NON_FINITE_LOSS", "PARITY_MISMATCH", "STORAGE_FAILURE", "PREEMPTED",
    "INTERRUPTED",
    "OK", "FAILURE", "USAGE", "NAMES", "DESCRIPTIONS", "leave_process",
]

FINISHED = 0
ERROR = 1
CONFIG_ERROR = 2
NON_FINITE_LOSS = 3
PARITY_MISMATCH = 4
STORAGE_FAILURE = 74
PREEMPTED = 75
INTERRUPTED = 130

# The names every command uses (0, 1 and 2 mean the same everywhere; the others are the trainer's outcomes).
OK = FINISHED  # the command did what was asked
FAILURE = ERROR  # a runtime failure after the work started
USAGE = CONFIG_ERROR  # bad command line, config or input file: reported before any model loads, nothing written

NAMES = {
    FINISHED: "finished", ERROR: "error", CONFIG_ERROR: "config error", NON_FINITE_LOSS: "non-finite loss",
    PARITY_MISMATCH: "parity mismatch",
    STORAGE_FAILURE: "storage failure", PREEMPTED: "preempted, checkpoint saved: requeue",
    INTERRUPTED: "interrupted, checkpoint saved",
}

DESCRIPTIONS: dict[int, str] = {
    OK: "success",
    FAILURE: "runtime failure after the work started",
    USAGE: "usage, config or input error (nothing was started or written)",
    NON_FINITE_LOSS: "train: the loss became NaN/inf",
    PARITY_MISMATCH: "parity: s1jax and transformers differ past the thresholds",
    STORAGE_FAILURE: "train: a checkpoint/metrics write failed (the last good checkpoint is intact)",
    PREEMPTED: "train: preempted (SIGTERM), checkpoint saved: requeue",
    INTERRUPTED: "interrupted (Ctrl-C); train saved a checkpoint",
}

# After a storage failure a background writer thread (Orbax's, tensorboardX's) may be stuck in a system call on a
# dead filesystem; Python waits for non-daemon threads at exit, so such a process would never end.
EXIT_GRACE_S = 20.0


def leave_process(code: int) -> None:
    """Make sure the process ends with ``code`` when it is the program (not a library call) that finishes.

    A storage failure ends the process at once (``os._exit`` after flushing stdout/stderr): everything worth keeping
    is already on disk, and waiting for threads blocked on the failed filesystem can hang forever. Other failures get
    a daemon watchdog that ends the process with ``code`` if the normal interpreter shutdown has not finished within
    ``EXIT_GRACE_S`` seconds. Code 0 returns and exits normally."""
    if code == FINISHED:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed/broken stream must not change the exit code
            pass
    if code == STORAGE_FAILURE:
        os._exit(code)
    watchdog = threading.Timer(EXIT_GRACE_S, os._exit, args=(code,))
    watchdog.daemon = True
    watchdog.start()
