"""s1-32B: SFT of Qwen2.5-32B-Instruct on s1K (Gemini traces), the paper's recipe.

lr 1e-5, 5% linear warm-up then cosine to 0, AdamW (0.9, 0.95), wd 1e-4, 5 epochs, global batch 16, block 32768,
no packing, bf16 compute with fp32 master weights, full remat. ``:ARG`` picks the mesh:

- ``h100x16`` (default): 2 nodes x 8 H100: tensor=8 inside each node x fsdp=2 across the nodes, 8 accumulation
  steps of 2 sequences (one per fsdp shard), cuDNN flash attention. FSDP over all 16 GPUs with one sequence each
  (the first layout) needs 219 GiB per GPU (`s1jax compile`, docs/scale.md): the step's temporaries (196 GiB) are
  not split by fsdp; tensor=8 splits weights, gradients and activations inside a node (61 GiB of 75 GiB usable).
- ``v5p-128``: 64 chips. The global batch of 16 cannot be split 64 ways, so FSDP=16 (one sequence per FSDP
  shard) x tensor=4 (40 heads, 8 KV heads and the 27648-wide MLP all divide by 4); query-chunked attention.

Weights: ``huggingface-cli download Qwen/Qwen2.5-32B-Instruct --local-dir checkpoints/Qwen2.5-32B-Instruct``
(or set --config.model.path). Data: the hub dataset, or a local copy via --config.data.source.
"""

import os

from s1jax.config import load_config_file

MESHES = {
    "h100x16": dict(data=1, fsdp=2, tensor=8),
    "v5p-128": dict(data=1, fsdp=16, tensor=4),
}
GRAD_ACCUM = {"h100x16": 8, "v5p-128": 1}  # micro-batch = one sequence per fsdp shard


def get_config(target: str = "h100x16"):
    if target not in MESHES:
        raise ValueError(f"unknown target {target!r}; choose from {sorted(MESHES)}")
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "base.py"))
    cfg.model.path = "checkpoints/Qwen2.5-32B-Instruct"
    cfg.model.preset = "qwen2_5_32b"
    cfg.model.dtype = "bfloat16"
    cfg.model.param_dtype = "float32"
    # cuDNN flash attention on H100; query-chunked attention on TPU (never [heads, 32k, 32k] scores)
    cfg.model.attention_impl = "cudnn" if target.startswith("h100") else "chunked"
    cfg.mesh.update(MESHES[target])
    cfg.target = target  # `s1jax compile --config=configs/train/s1_32b.py:<target>` checks it fits
    cfg.data.source = "simplescaling/s1K"
    cfg.data.trace = "gemini"
    cfg.data.block_size = 32768
    cfg.data.seq_len_multiple = 4096  # at most 8 distinct batch shapes -> 8 compilations
    cfg.train.output_dir = "runs/s1-32b"
    cfg.train.epochs = 5
    cfg.train.global_batch_size = 16
    cfg.train.grad_accum = GRAD_ACCUM[target]
    cfg.train.lr = 1e-5
    cfg.train.warmup_ratio = 0.05
    cfg.train.weight_decay = 1e-4
    cfg.train.remat = "full"
    cfg.train.loss_chunk = 2048
    cfg.train.save_every = 62  # about once per epoch
    cfg.train.keep_checkpoints = 2
    cfg.train.export_hf = True
    cfg.train.export_dtype = "bfloat16"
    return cfg
