"""GPQA Diamond (198 questions, choices shuffled with a fixed seed per item); s1-32B: 56.6 without, 59.6 with.

No local copy ships with the repo (gated dataset): set --config.data_path to a .jsonl/.parquet with the hub's
columns (Question, Correct Answer, Incorrect Answer 1..3), or leave it empty to load Idavidrein/gpqa from the hub.

    s1jax eval --config=configs/eval/gpqa.py --config.model.path=PATH [--config.gpqa_ask_letter=true]
"""

from s1jax.cli.eval import default_config


def get_config():
    return default_config("gpqa", "gpqa_diamond.jsonl", budgets=(512, 1024, 2048, 4096, 8192))
