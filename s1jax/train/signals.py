"""SIGTERM (preemption) and SIGINT (Ctrl-C) during training: save at the next step boundary, then stop.

- The first signal only sets a flag (the loop checks it at each step boundary, agreed across processes) and prints
  one line; the loop saves a checkpoint of the current step and returns ``stopped="sigterm"`` / ``"sigint"``.
- A second SIGTERM or SIGINT ends the process at once, by the signal's default action (exit status 128 + signal):
  a run stuck on a dead filesystem can always be stopped without SIGKILL. The checkpoint being written, if any, is
  left unfinished (Orbax writes into a temporary directory, so the previous checkpoint stays the latest).
- ``release()`` puts the previous handlers back; the loop calls it as soon as it stops or fails, so a process that
  is failing (closing files, exiting) can never swallow a SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import numpy as np

__all__ = ["StopSignals"]

HANDLED = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Installs the handlers (main thread only; elsewhere it is inert) until ``release()``."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first signal's number
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:  # the second one: give up now, by the default action of the signal
            os.write(2, f"\ns1jax train: second {name}: stopping now without saving\n".encode())
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        os.write(2, f"\ns1jax train: {name} received: saving a checkpoint at the end of this step, then stopping "
                    f"(send it again to stop at once)\n".encode())

    def requested(self) -> str | None:
        """``"sigterm"``/``"sigint"`` if any process received a stop signal (SIGTERM wins), else None."""
        code = int(self.received or 0)
        import jax

        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            codes = np.asarray(multihost_utils.process_allgather(np.array([code], np.int32))).reshape(-1)
            code = int(signal.SIGTERM) if int(signal.SIGTERM) in codes else int(codes.max())
        if not code:
            return None
        return signal.Signals(code).name.lower()

    def release(self) -> None:
        """Restore the handlers that were installed before (idempotent)."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):  # not the main thread any more / handler installed from C
                signal.signal(sig, signal.SIG_DFL)
