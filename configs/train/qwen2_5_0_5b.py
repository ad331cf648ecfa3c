"""A small real run: the s1 recipe on Qwen2.5-0.5B-Instruct, one GPU or TPU host (or CPU for a smoke test).

``:ARG`` is the data source (default the s1K hub dataset; a local .parquet/.jsonl works offline). Block 8192 keeps
one sequence per step within a single 80 GB GPU without flash attention; long s1K traces are truncated (as s1 does
at its block size). Set --config.model.path to a downloaded Qwen2.5-0.5B-Instruct directory.
"""

import os

from s1jax.config import load_config_file


def get_config(source: str = "simplescaling/s1K"):
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "base.py"))
    cfg.model.path = "checkpoints/Qwen2.5-0.5B-Instruct"
    cfg.model.preset = "qwen2_5_0_5b"
    cfg.model.dtype = "bfloat16"
    cfg.model.param_dtype = "float32"
    cfg.mesh.update(dict(data=1, fsdp=-1, tensor=1))
    cfg.target = "h100x1"  # one 80 GB GPU (`s1jax compile` checks it fits)
    cfg.data.source = source
    cfg.data.trace = ""
    cfg.data.block_size = 8192
    cfg.data.seq_len_multiple = 1024
    cfg.train.output_dir = "runs/s1-qwen2.5-0.5b"
    cfg.train.global_batch_size = 16
    cfg.train.grad_accum = 4  # micro-batch 4 x 8192 tokens
    cfg.train.remat = "full"
    cfg.train.loss_chunk = 1024
    cfg.train.save_every = 62
    return cfg
