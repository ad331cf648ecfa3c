"""MATH500 with a budget-forcing sweep; s1-32B: 92.6 without, 93.0 with budget forcing.

    s1jax eval --config=configs/eval/math500.py --config.model.path=PATH
"""

import os

from s1jax.config import load_config_file


def get_config():
    return load_config_file(os.path.join(os.path.dirname(__file__), "base.py") + ":math500")
