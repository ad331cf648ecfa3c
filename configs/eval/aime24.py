"""AIME24 (30 problems) with s1's budget-forcing sweep; s1-32B: 50.0 without, 56.7 with budget forcing.

    s1jax eval --config=configs/eval/aime24.py --config.model.path=PATH [--config.limit=5]

Enable baselines with --config.token_conditional=true, --config.rejection_sampling=true, --config.majority_vote=true ...
"""

from s1jax.cli.eval import default_config


def get_config():
    return default_config("aime24", "aime24.jsonl", budgets=(512, 1024, 2048, 4096, 8192))
