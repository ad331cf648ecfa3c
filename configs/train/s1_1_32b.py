"""s1.1-32B: the s1 recipe on s1K-1.1 with the DeepSeek-R1 traces, block 20000.

Same optimizer and schedule as ``s1_32b.py``; ``:ARG`` picks the mesh the same way (``h100x16`` | ``v5p-128``).
"""

import os

from s1jax.config import load_config_file


def get_config(target: str = "h100x16"):
    cfg = load_config_file(os.path.join(os.path.dirname(__file__), "s1_32b.py") + ":" + target)
    cfg.data.source = "simplescaling/s1K-1.1"
    cfg.data.trace = "deepseek"
    cfg.data.block_size = 20000
    cfg.data.seq_len_multiple = 2500  # 8 distinct shapes up to 20000
    cfg.train.output_dir = "runs/s1.1-32b"
    return cfg
