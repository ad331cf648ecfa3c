"""Evaluate s1.1-32B (same Qwen2.5-32B shape as s1-32B, trained on s1K-1.1's DeepSeek-R1 traces): the targets, mesh
and row slots of ``configs/eval/s1_32b.py``. ``:TARGET[,BENCHMARK]``:

    s1jax eval --config=configs/eval/s1_1_32b.py:v5p-8 --config.model.path=/models/s1.1-32B
"""

import os

from s1jax.config import load_config_file


def get_config(arg: str = "v6e-8"):
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "s1_32b.py") + ":" + arg)
    cfg.output_dir = cfg.output_dir.replace("s1-32b", "s1.1-32b")
    return cfg
