"""One parsed GGUF file per path and version, shared by the model and the tokenizer loaders.

Parsing a GGUF's metadata (``gguf.GGUFReader``) walks every key-value field in Python: SmolLM2's 49,152-token vocab
and its merges take 3.5-5.6 s on 2 CPU cores, and loading a model and its tokenizer parsed the same file twice. The
reader memory-maps the tensors, so keeping it costs an open file, not memory; a changed file (mtime or size) is
parsed again.
"""

from __future__ import annotations

import functools
import os
from typing import Any

__all__ = ["open_gguf"]


def open_gguf(path: str | os.PathLike[str]) -> Any:
    """The ``gguf.GGUFReader`` of ``path`` (read-only; callers must not modify it)."""
    real = os.path.realpath(os.fspath(path))
    st = os.stat(real)
    return _parsed(real, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _parsed(path: str, mtime_ns: int, size: int) -> Any:
    from gguf import GGUFReader

    del mtime_ns, size  # part of the cache key only
    return GGUFReader(path, "r")
