"""The persistent compilation cache the demo switches on: a second process loads what the first compiled, and the
counters say so (what the demo prints as the time the cache saved)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from s1jax.compilation_cache import enable_compilation_cache
stats = enable_compilation_cache(sys.argv[1])
import jax, jax.numpy as jnp
def body(x):
    for _ in range(40):  # a program big enough to take measurable compile time
        x = jnp.sin(x) @ x.T + jnp.cos(x)
    return x
out = jax.jit(body)(jnp.ones((16, 16))).block_until_ready()
print("STATS " + json.dumps({"hits": stats.hits, "misses": stats.misses, "saved": stats.saved_s,
                             "summary": stats.summary()}))
"""


def _run(cache_dir: pathlib.Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT") and k != "JAX_COMPILATION_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(cache_dir)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("STATS "))
    return json.loads(line[len("STATS "):])


def test_second_process_loads_what_the_first_compiled(tmp_path):
    cache = tmp_path / "xla-cache"
    first = _run(cache)
    assert first["hits"] == 0 and first["misses"] >= 1
    assert f"{first['misses']} programs compiled, 0 loaded" in first["summary"]
    assert any(cache.iterdir()), "nothing was written to the cache directory"
    second = _run(cache)
    assert second["hits"] >= 1 and second["misses"] == 0, second
    # saved = the compile time stored with each entry minus the time to load it (negative for a program that
    # compiles faster than it loads); the summary reports it either way
    assert f"0 programs compiled, {second['hits']} loaded" in second["summary"]
    assert f"{second['saved']:.1f} s of compilation saved" in second["summary"]
