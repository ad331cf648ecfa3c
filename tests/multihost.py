"""Two real processes under ``jax.distributed`` on one machine, for the multi-host tests (training and inference)."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def free_address() -> str:
    """A coordinator address on a free local port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def run_two_processes(script: str, timeout_s: float = 400) -> list[str]:
    """Run ``python -c script <process index>`` as processes 0 and 1, 2 CPU devices each (the suite's compile-time
    XLA flags kept: they only run tiny programs); both must exit 0. -> their combined stdout/stderr, by index."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {flags}", JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = []
    try:
        for p in procs:
            output, _ = p.communicate(timeout=timeout_s)
            assert p.returncode == 0, output[-4000:]
            outputs.append(output)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outputs
