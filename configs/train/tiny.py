"""Tiny random-init model on local s1K-format fixture data: the trainer end to end on a CPU in seconds.

Usage: ``python tests/train_fixtures.py runs/tiny_fixture`` (writes tokenizer.json + train.jsonl), then
``s1jax train --config=configs/train/tiny.py:runs/tiny_fixture``.
The argument is a directory with ``tokenizer.json`` (< 512 ids) and ``train.jsonl`` (s1K columns).
"""

import os

from s1jax.config import load_config_file


def get_config(data_dir: str = "runs/tiny_fixture"):
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "base.py"))
    cfg.model.preset = "tiny"
    cfg.model.tokenizer = os.path.join(data_dir, "tokenizer.json")
    cfg.model.dtype = "float32"  # exact CPU numerics for the resume / parity tests
    cfg.model.param_dtype = "float32"
    cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor = 1, -1, 1
    cfg.data.source = os.path.join(data_dir, "train.jsonl")
    cfg.data.block_size = 256
    cfg.data.seq_len_multiple = 64
    cfg.train.output_dir = "runs/tiny"
    cfg.train.epochs = 3
    cfg.train.global_batch_size = 8
    cfg.train.lr = 3e-3
    cfg.train.warmup_ratio = 0.1
    cfg.train.remat = "none"
    cfg.train.loss_chunk = 64
    cfg.train.save_every = 4
    cfg.train.async_checkpoint = False
    cfg.train.export_hf = False
    cfg.distributed.mode = "off"
    return cfg
