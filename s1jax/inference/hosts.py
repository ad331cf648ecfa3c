"""Multi-host generation and evaluation: every host runs the same host loop, process 0 alone writes.

With ``jax.distributed`` each host (process) drives its own devices through the same Python program: the engine's
programs are collective, so every host must make the same calls with the same inputs, in the same order. Hence:

- ``check_same_on_hosts``: the question list (and whatever else shapes the run) is hashed on every host and compared
  before the model loads; a host that read another file fails with the counts and hashes of both.
- ``is_writer``: process 0 alone writes result files and prints; the others compute the same thing silently.
- ``writer_path``: eval resume. Process 0 reads its results file; the other hosts get a private copy of it, so every
  host skips the same finished items (with or without a shared filesystem) and appends only to its own copy.

Single-process runs skip all of it (no collective, no copy).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

__all__ = ["distributed_group", "is_writer", "fingerprint", "check_same_on_hosts", "writer_path", "broadcast_bytes"]


def distributed_group(mode: str = "auto") -> ml_collections.ConfigDict:
    """The ``distributed`` group of the generate / eval configs, as in training (``s1jax.train.distributed``):
    ``mode`` auto starts ``jax.distributed`` when the environment shows several processes (TPU slice with several
    workers, SLURM with several tasks, or an explicit coordinator address)."""
    return ml_collections.ConfigDict(dict(mode=mode, coordinator_address="", num_processes=0, process_id=-1,
                                          local_device_ids="", initialization_timeout=300))


def is_writer() -> bool:
    """True on process 0 (the one that writes results and prints)."""
    return jax.process_index() == 0


def fingerprint(values: Sequence[Any]) -> str:
    """sha256 of the JSON of ``values`` (order matters)."""
    blob = json.dumps(list(values), ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _allgather(local: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local, tiled=False))  # [processes, ...]


def check_same_on_hosts(values: Sequence[Any], what: str = "questions") -> None:
    """Raise ValueError on every host unless all hosts hold the same ``values`` in the same order."""
    if jax.process_count() == 1:
        return
    digest = fingerprint(values)
    local = np.array([len(values)] + [int(digest[i:i + 8], 16) for i in range(0, 64, 8)], np.int64)  # [9]
    table = _allgather(local)  # [processes, 9]
    for pid in range(1, table.shape[0]):
        if not np.array_equal(table[pid], table[0]):
            h0 = "".join(f"{int(x):08x}" for x in table[0, 1:])[:12]
            hp = "".join(f"{int(x):08x}" for x in table[pid, 1:])[:12]
            raise ValueError(
                f"hosts disagree on the {what}: process 0 has {int(table[0, 0])} (sha256 {h0}...) but process {pid} "
                f"has {int(table[pid, 0])} (sha256 {hp}...); every host must run the same {what} in the same order "
                "(give every host the same input files and config)")


def broadcast_bytes(data: bytes | None) -> bytes:
    """Process 0's ``data`` on every host (other hosts' argument is ignored)."""
    if jax.process_count() == 1:
        return data or b""
    from jax.experimental import multihost_utils

    mine = (data or b"") if is_writer() else b""
    size = int(np.asarray(multihost_utils.broadcast_one_to_all(np.array([len(mine)], np.int64)))[0])
    if size == 0:
        return b""
    buf = np.zeros((size,), np.uint8)
    if is_writer():
        buf[:] = np.frombuffer(mine, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buf)).astype(np.uint8).tobytes()


def writer_path(path: str) -> str:
    """Where this host keeps the results file at ``path``: process 0 the file itself; any other host a private copy
    of process 0's file, so resume decisions agree across hosts; what they append there is discarded at exit."""
    if jax.process_count() == 1:
        return path
    content = None
    if is_writer() and os.path.isfile(path):
        with open(path, "rb") as f:
            content = f.read()
    content = broadcast_bytes(content)
    if is_writer():
        return path
    private = tempfile.mkdtemp(prefix=f"s1jax-host{jax.process_index()}-")
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    copy = os.path.join(private, os.path.basename(path))
    if content:
        with open(copy, "wb") as f:
            f.write(content)
    return copy
