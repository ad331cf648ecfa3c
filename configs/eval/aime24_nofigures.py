"""AIME24 as s1 evaluated it (lm-eval task aime24_nofigures: figure code kept only where a problem needs it).

    s1jax eval --config=configs/eval/aime24_nofigures.py --config.model.path=PATH [--config.limit=5]

Same 30 problems as configs/eval/aime24.py; two differ in text (data/eval/README.md). Compare with an s1 PyTorch/vLLM
run: s1jax compare runs/eval/aime24_nofigures/<run> samples_aime24_nofigures_<date>.jsonl
"""

import os

from s1jax.config import load_config_file


def get_config():
    return load_config_file(os.path.join(os.path.dirname(__file__), "base.py") + ":aime24_nofigures")
