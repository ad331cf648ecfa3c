"""Per-step metrics to ``<dir>/metrics.jsonl`` and TensorBoard (``<dir>/tb``), written by a background thread that
can fail but never hang the training loop.

- Idempotent per step: a run resumed from step ``s`` first drops the rows after ``s`` from ``metrics.jsonl`` (the
  file is rewritten atomically) and opens TensorBoard with ``purge_step=s + 1``, so steps replayed after a crash are
  recorded once.
- Valid JSON: a non-finite value (NaN/inf loss) is written as ``null`` and its key listed in ``"nonfinite"``.
- Failures surface in the main thread: an I/O error in the writer thread (disk full, read-only, ...), a dead
  TensorBoard writer thread, or a write that has not finished within ``timeout_s`` raises ``StorageError`` from the
  next ``write``/``check``/``flush``/``close`` call. The main thread only ever enqueues, so a blocked filesystem
  cannot block training (or a signal handler) indefinitely; the writer thread is a daemon and cannot keep a failed
  process alive.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from typing import Any

from s1jax.train.errors import StorageError

__all__ = ["MetricsWriter", "truncate_after", "json_record"]

_CLOSE = object()


def json_record(step: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """``{"step": step, **metrics}`` as plain JSON values; non-finite floats -> None, listed under "nonfinite"."""
    record: dict[str, Any] = {"step": int(step)}
    bad = []
    for key, value in metrics.items():
        value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(key)
            value = None
        record[key] = value
    if bad:
        record["nonfinite"] = bad
    return record


def truncate_after(path: str, step: int) -> int:
    """Drop the rows of the JSONL file ``path`` whose ``step`` is > ``step`` (and unparsable rows, e.g. a line cut by
    a crash); returns how many were dropped. Atomic: a new file replaces the old one."""
    if not os.path.exists(path):
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row_step = int(json.loads(line)["step"])
            except (ValueError, KeyError, TypeError):
                dropped += 1
                continue
            if row_step > step:
                dropped += 1
            else:
                kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, path)
    return dropped


def _tb_thread_alive(tb: Any) -> bool:
    """Whether tensorboardX's own event-writer thread still runs (it dies silently on an I/O error, after which
    every further event blocks forever on its full queue). True when the internals are not recognisable."""
    try:
        worker = tb.file_writer.event_writer._worker
    except AttributeError:
        return True
    return worker is None or worker.is_alive()


class MetricsWriter:
    """Appends one JSON object per step to ``<out_dir>/metrics.jsonl`` and mirrors finite scalars to TensorBoard
    (``<out_dir>/tb``). Inactive (no files, no thread) when ``enabled`` is False, e.g. on processes other than 0."""

    def __init__(self, out_dir: str, *, enabled: bool = True, tensorboard: bool = True, resume_step: int = 0,
                 timeout_s: float = 60.0) -> None:
        self.enabled = enabled
        self.timeout_s = float(timeout_s)
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self._error: BaseException | None = None
        self._busy_since: float | None = None  # when the writer thread started the item it is working on
        self._queue: queue.Queue = queue.Queue(maxsize=1024)
        self._thread: threading.Thread | None = None
        if not enabled:
            return
        try:
            os.makedirs(out_dir, exist_ok=True)
            truncate_after(self.path, int(resume_step))
        except OSError as e:
            raise StorageError(f"cannot prepare {self.path}: {type(e).__name__}: {e}") from e
        self._tb_dir = os.path.join(out_dir, "tb") if tensorboard else None
        self._resume_step = int(resume_step)
        self._thread = threading.Thread(target=self._run, name="s1jax-metrics", daemon=True)
        self._thread.start()

    # --------------------------------------------------------------------------------------------- writer thread

    def _open_tb(self) -> Any:
        if self._tb_dir is None:
            return None
        try:
            from tensorboardX import SummaryWriter
        except ImportError:  # optional: JSONL is the record of truth
            return None
        purge = self._resume_step + 1 if self._resume_step > 0 else None  # TensorBoard drops replayed steps
        return SummaryWriter(self._tb_dir, purge_step=purge)

    def _run(self) -> None:
        jsonl = tb = None
        try:
            jsonl = open(self.path, "a", encoding="utf-8")
            tb = self._open_tb()
            while True:
                item = self._queue.get()
                self._busy_since = time.monotonic()
                if item is _CLOSE:
                    break
                kind, payload = item
                if kind == "row":
                    jsonl.write(json.dumps(payload, allow_nan=False) + "\n")
                    jsonl.flush()
                    if tb is not None:
                        for key, value in payload.items():
                            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                                tb.add_scalar(f"train/{key}", value, payload["step"])
                elif kind == "text" and tb is not None:
                    tb.add_text(payload[0], payload[1], 0)
                if tb is not None and not _tb_thread_alive(tb):
                    raise OSError(f"the TensorBoard event writer thread for {self._tb_dir} died (see its traceback)")
                self._busy_since = None
                self._queue.task_done()
            if tb is not None:
                tb.close()
                tb = None
            jsonl.close()
            jsonl = None
            self._busy_since = None
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            self._error = e
            self._busy_since = None
        finally:
            for handle in (jsonl,):
                if handle is not None:
                    try:
                        handle.close()
                    except Exception:  # noqa: BLE001 - the first error is the one reported
                        pass

    # ----------------------------------------------------------------------------------------------- main thread

    def check(self) -> None:
        """Raise ``StorageError`` if the writer thread failed or has been stuck on one write for ``timeout_s``."""
        if not self.enabled:
            return
        if self._error is not None:
            raise StorageError(f"writing metrics to {self.path} failed: {type(self._error).__name__}: "
                               f"{str(self._error).splitlines()[0] if str(self._error) else ''}") from self._error
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > self.timeout_s:
            raise StorageError(f"writing metrics to {self.path} has been stuck for more than {self.timeout_s:g} s "
                               "(train.metrics_timeout_s)")
        if self._thread is not None and not self._thread.is_alive() and self._queue.qsize():
            raise StorageError(f"the metrics writer for {self.path} stopped with rows still queued")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.check()
        self._put(("row", json_record(step, metrics)))

    def text(self, tag: str, text: str) -> None:
        if self.enabled:
            self._put(("text", (tag, text)))

    def _put(self, item: Any) -> None:
        try:
            self._queue.put(item, timeout=self.timeout_s)
        except queue.Full:
            raise StorageError(f"the metrics writer for {self.path} is {self._queue.maxsize} rows behind for "
                               f"{self.timeout_s:g} s (train.metrics_timeout_s)") from None

    def flush(self) -> None:
        """Wait until every queued row is written (at most ``timeout_s``), raising ``StorageError`` on failure."""
        if not self.enabled or self._thread is None:
            return
        deadline = time.monotonic() + self.timeout_s
        while self._queue.unfinished_tasks and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.check()
        if self._queue.unfinished_tasks and self._thread.is_alive():
            raise StorageError(f"writing metrics to {self.path} did not finish within {self.timeout_s:g} s "
                               "(train.metrics_timeout_s)")

    def close(self) -> None:
        """Write what is queued, close the files (at most ``timeout_s``); ``StorageError`` if that failed."""
        if not self.enabled or self._thread is None:
            return
        thread, self._thread = self._thread, None
        if thread.is_alive():
            try:
                self._queue.put(_CLOSE, timeout=self.timeout_s)
            except queue.Full:
                pass
            thread.join(self.timeout_s)
        if self._error is not None or thread.is_alive():
            self._thread = thread
            self.check()
            raise StorageError(f"closing the metrics files in {os.path.dirname(self.path)} did not finish within "
                               f"{self.timeout_s:g} s (train.metrics_timeout_s)")


def _plain(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if hasattr(value, "shape") and getattr(value, "shape", None) == ():
            return float(value)
    except Exception:  # noqa: BLE001
        pass
    return value
