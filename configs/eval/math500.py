"""MATH500 with a budget-forcing sweep; s1-32B: 92.6 without, 93.0 with budget forcing.

    s1jax eval --config=configs/eval/math500.py --config.model.path=PATH
"""

from s1jax.cli.eval import default_config


def get_config():
    return default_config("math500", "math500.jsonl", budgets=(512, 1024, 2048, 4096))
