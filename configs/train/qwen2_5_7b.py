"""The s1 recipe on Qwen2.5-7B-Instruct: one node of 8 H100, block 32768.

Same optimizer, schedule, data and epochs as ``s1_32b.py`` (lr 1e-5, 5% warm-up, cosine, global batch 16, 5 epochs).
``:h100x8``: tensor=4 x fsdp=2, 8 accumulation steps of 2 sequences (one per fsdp shard), cuDNN flash attention:
28 GiB per GPU (`s1jax compile`, docs/scale.md). FSDP over all 8 GPUs (2 x 8 sequences) needs 81 GiB, over the 75 GiB
usable: the step's temporaries are not split by fsdp.

Weights: ``huggingface-cli download Qwen/Qwen2.5-7B-Instruct --local-dir checkpoints/Qwen2.5-7B-Instruct``.
"""

import os

from s1jax.config import load_config_file

MESHES = {"h100x8": dict(data=1, fsdp=2, tensor=4)}


def get_config(target: str = "h100x8"):
    if target not in MESHES:
        raise ValueError(f"unknown target {target!r}; choose from {sorted(MESHES)}")
    cfg = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "base.py"))
    cfg.model.path = "checkpoints/Qwen2.5-7B-Instruct"
    cfg.model.preset = "qwen2_5_7b"
    cfg.model.dtype = "bfloat16"
    cfg.model.param_dtype = "float32"
    cfg.model.attention_impl = "cudnn" if target.startswith("h100") else "chunked"
    cfg.mesh.update(MESHES[target])
    cfg.target = target
    cfg.data.source = "simplescaling/s1K"
    cfg.data.trace = "gemini"
    cfg.data.block_size = 32768
    cfg.data.seq_len_multiple = 4096
    cfg.train.output_dir = "runs/s1-qwen2.5-7b"
    cfg.train.epochs = 5
    cfg.train.global_batch_size = 16
    cfg.train.grad_accum = 8  # micro-batch 2 = one sequence per fsdp shard
    cfg.train.remat = "full"
    cfg.train.loss_chunk = 2048
    cfg.train.save_every = 63
    return cfg
