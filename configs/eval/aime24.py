"""AIME24 (30 problems) with s1's budget-forcing sweep; s1-32B: 50.0 without, 56.7 with budget forcing.

    s1jax eval --config=configs/eval/aime24.py --config.model.path=PATH [--config.limit=5]

Enable baselines with --config.token_conditional=true, --config.rejection_sampling=true, --config.majority_vote=true ...
"""

import os

from s1jax.config import load_config_file


def get_config():
    return load_config_file(os.path.join(os.path.dirname(__file__), "base.py") + ":aime24")
