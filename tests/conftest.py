"""Test-wide setup: 8 fake CPU devices for sharding tests, no hub access, deterministic numerics, and one
persistent XLA compilation cache for the whole session.

Most of the suite's time is XLA compiling the same small programs again: every test that builds a train step or a
generation engine, and every CLI subprocess, compiles programs another test already compiled. A session-wide
persistent cache (a fresh temporary directory, so nothing leaks between runs and a stale entry can never be read)
turns those repeats into loads. It is set through the environment so subprocesses share it; a test that measures
the cache itself points JAX at its own directory.
"""

import atexit
import os
import shutil
import tempfile

# The suite is compile-bound: ~1,000 XLA programs, nearly all over tiny arrays that run in microseconds, so LLVM's
# optimisation passes are most of their cost. Without them (-O0, no expensive passes) the same programs compile
# ~40% faster (tests/test_attention.py: 43 -> 26 CPU-seconds) and still compute IEEE float32; the subprocesses that
# time or run real models (the demo, SmolLM2 CLI runs) set their own XLA_FLAGS.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE_DIR = tempfile.mkdtemp(prefix="s1jax-tests-xla-cache-")
    atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE_DIR
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EVAL_DATA = REPO_ROOT / "data" / "eval"  # the eval sets shipped with the repository


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    if not EVAL_DATA.is_dir():
        pytest.skip(f"the shipped eval sets are missing from {EVAL_DATA}")
    return EVAL_DATA


# ------------------------------------------------------------------------------------- compilations, counted
# What the suite spends on XLA (this process; CLI subprocesses count their own): every program that reaches the
# backend, how many were compiled and how many loaded from the session cache, and the seconds it took. Printed in
# the terminal summary so a test that adds compilations shows up in every CI log.
_XLA = {"programs": 0, "seconds": 0.0, "compiled": 0, "loaded": 0}


def _on_duration(event: str, duration: float, **_: object) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _XLA["programs"] += 1
        _XLA["seconds"] += float(duration)


def _on_event(event: str, **_: object) -> None:
    if event == "/jax/compilation_cache/cache_misses":
        _XLA["compiled"] += 1
    elif event == "/jax/compilation_cache/cache_hits":
        _XLA["loaded"] += 1


def pytest_configure(config: pytest.Config) -> None:
    from jax import monitoring

    monitoring.register_event_duration_secs_listener(_on_duration)
    monitoring.register_event_listener(_on_event)
    config._s1jax_worker_xla = []  # pytest-xdist: the workers' counts, gathered by the controller


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:  # noqa: ARG001 - pytest hook signature
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand its counts to the controller
        workeroutput["s1jax_xla"] = dict(_XLA)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: without xdist installed, pytest must not reject it
def pytest_testnodedown(node, error) -> None:  # noqa: ARG001 - pytest-xdist hook signature
    counts = getattr(node, "workeroutput", {}).get("s1jax_xla")
    if counts:
        node.config._s1jax_worker_xla.append(counts)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 - pytest hook signature
    parts = [_XLA] + list(getattr(config, "_s1jax_worker_xla", []))
    total = {k: sum(p[k] for p in parts) for k in _XLA}
    where = f"{len(parts) - 1} workers" if len(parts) > 1 else "this process"
    terminalreporter.write_line(
        f"xla ({where}; CLI subprocesses not counted): {total['programs']} programs, {total['compiled']} compiled, "
        f"{total['loaded']} loaded from the session's persistent cache, {total['seconds']:.0f} s in compilation")
