"""Evaluate s1-32B (a Qwen2.5-32B fine-tune: 64 GB of bf16 weights, 256 KiB of KV cache per token) with 32768-token
rows on one TPU slice or one 8-GPU node. ``:TARGET[,BENCHMARK]`` picks the machine and the benchmark (aime24 |
math500 | gpqa, default aime24):

    s1jax eval --config=configs/eval/s1_32b.py:v6e-8 --config.model.path=/models/s1-32B        # one TPU VM
    s1jax eval --config=configs/eval/s1_32b.py:h100x8,math500 --config.model.path=/models/s1-32B
    launch/tpu_eval.sh / launch/gpu_eval.sbatch                                                # multi-host

Tensor parallel over every chip (40 heads, 8 KV heads and the 27648-wide MLP all divide by 4 and 8), rows over data
(1 here), so the weights are split, never all-gathered per token (``s1jax/inference/mesh.py``). ``batch_size`` is the
number of row slots decoded together, each holding a 32768-slot KV cache: the most that fits next to the weights,
from the analytic per-device model (``s1jax.inference.mesh.per_device_bytes``: weights / tensor + rows x 8 GiB /
tensor) and the AOT compile of the earlier engine in docs/scale.md (decode temporaries included):

| target | chips x HBM | mesh (data, fsdp, tensor) | rows | weights + KV cache per chip | next power of two |
|---|---|---|---|---|---|
| ``v5p-8`` | 4 x 95 GiB | 1, 1, 4 | 16 | 15.3 + 32.0 = 47.3 GiB | 32 rows: 79.3 GiB + decode temporaries > 95 |
| ``v6e-8`` | 8 x 32 GiB | 1, 1, 8 | 16 | 7.6 + 16.0 = 23.6 GiB | 32 rows: 39.6 GiB > 32 |
| ``h100x8`` | 8 x 79.1 GiB (75.2 usable) | 1, 1, 8 | 32 | 7.6 + 32.0 = 39.6 GiB | 64 rows: 71.6 GiB + temporaries > 75.2 |

Re-check with the compiler where libtpu / the CUDA plugin are installed: ``make aot ARGS="--only eval_32b"``.
``max_cache_len`` is fixed at 32768 so every generate call of the run reuses one compiled decode program.
"""

import os

from s1jax.config import load_config_file

# target -> (mesh, row slots)
TARGETS = {
    "v5p-8": (dict(data=1, fsdp=1, tensor=4), 16),
    "v6e-8": (dict(data=1, fsdp=1, tensor=8), 16),
    "h100x8": (dict(data=1, fsdp=1, tensor=8), 32),
}
CONTEXT = 32768  # s1's evaluation context: prompt + thinking + answer


def get_config(arg: str = "v6e-8"):
    target, _, benchmark = arg.partition(",")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {sorted(TARGETS)} (e.g. :v6e-8 or :h100x8,math500)")
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "base.py") + ":" + (benchmark or "aime24"))
    mesh, rows = TARGETS[target]
    cfg.model.path = ""  # required: HF dir of s1-32B (simplescaling/s1-32B) or an s1jax checkpoint / export
    cfg.model.preset = "qwen2_5_32b"
    cfg.model.dtype = "bfloat16"
    cfg.mesh.update(mesh)
    cfg.batch_size = rows
    cfg.max_cache_len = CONTEXT
    cfg.budget.uncapped_thinking_tokens = CONTEXT - 1024  # room for the prompt and the answer in one row
    cfg.output_dir = os.path.join("runs", "eval", f"s1-32b-{target}", cfg.benchmark)
    return cfg
