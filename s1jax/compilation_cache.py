"""JAX's persistent compilation cache, switched on for a run, with a count of what it saved.

XLA compilation is most of the wall time of a short CPU run (the demo compiles a dozen programs, each for seconds).
With the cache on disk, a second run with the same shapes loads the executables instead of compiling them; JAX
reports every hit and the compile time it saved through ``jax.monitoring``, which :class:`CacheStats` collects so
the run can say what the cache was worth.
"""

from __future__ import annotations

import dataclasses
import os
import threading

import jax
from jax import monitoring

__all__ = ["CacheStats", "enable_compilation_cache"]

_HIT = "/jax/compilation_cache/cache_hits"
_MISS = "/jax/compilation_cache/cache_misses"
_SAVED = "/jax/compilation_cache/compile_time_saved_sec"


@dataclasses.dataclass
class CacheStats:
    """Counters of one process's persistent-cache traffic since :func:`enable_compilation_cache`."""

    cache_dir: str
    hits: int = 0
    misses: int = 0
    saved_s: float = 0.0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def summary(self) -> str:
        if self.hits == 0 and self.misses == 0:
            return f"compilation cache {self.cache_dir}: no program compiled"
        line = (f"compilation cache {self.cache_dir}: {self.misses} programs compiled, {self.hits} loaded from the "
                f"cache ({self.saved_s:.1f} s of compilation saved)")
        if self.misses:
            line += "; a second run with the same shapes loads the compiled ones too"
        return line


_STATS: CacheStats | None = None


def _on_event(event: str, **_: object) -> None:
    stats = _STATS
    if stats is None:
        return
    with stats._lock:
        if event == _HIT:
            stats.hits += 1
        elif event == _MISS:
            stats.misses += 1


def _on_duration(event: str, duration: float, **_: object) -> None:
    stats = _STATS
    if stats is not None and event == _SAVED:
        with stats._lock:
            stats.saved_s += float(duration)  # compile time recorded with the entry minus the time to load it


def enable_compilation_cache(cache_dir: str, *, min_compile_time_s: float = 0.0) -> CacheStats:
    """Store every compiled program taking at least ``min_compile_time_s`` under ``cache_dir`` and reuse it.

    Call before the first compilation. Returns the live counters (one set per process: a second call re-points the
    cache and resets them)."""
    global _STATS
    cache_dir = os.path.abspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # every size (the default skips none)
    if _STATS is None:
        monitoring.register_event_listener(_on_event)
        monitoring.register_event_duration_secs_listener(_on_duration)
    _STATS = CacheStats(cache_dir=cache_dir)
    return _STATS
